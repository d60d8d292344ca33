//! The figures of one window, read in one transaction so that they agree with each other.

use quanyu_proto::analytics::v1::{Metric, MetricValue};
use quanyu_runtime::db::begin_read;
use sea_orm::DatabaseConnection;

use crate::domain::window::ratio;
use crate::error::AnalyticsError;
use crate::store::metrics::{self, Scope};

pub async fn get_metrics(
    db: &DatabaseConnection,
    scope: &Scope<'_>,
    asked: &[Metric],
) -> Result<Vec<MetricValue>, AnalyticsError> {
    let txn = begin_read(db).await?;
    let mut values = Vec::with_capacity(asked.len());
    for metric in asked {
        let (numerator, denominator) = match metric {
            Metric::NewMembers => (metrics::new_members(&txn, scope).await?, 1),
            Metric::MemberShareOfSales => metrics::sales(&txn, scope).await?,
            Metric::RepurchaseRate => metrics::repeat_buyers(&txn, scope).await?,
            Metric::ActiveMemberRate => metrics::active_members(&txn, scope).await?,
            Metric::Unspecified => continue,
        };
        values.push(MetricValue {
            metric: (*metric).into(),
            numerator,
            denominator,
            value: ratio(numerator, denominator),
        });
    }
    txn.commit().await?;
    Ok(values)
}
