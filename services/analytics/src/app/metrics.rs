//! The figures of one window, read in one transaction so that they agree with each other.

use quanyu_proto::analytics::v1::{Metric, MetricValue};
use quanyu_runtime::db::begin_read;
use sea_orm::DatabaseConnection;

use crate::domain::window::{ratio, top_share};
use crate::error::AnalyticsError;
use crate::store::metrics::{self, Scope};

/// The figures of `asked`; `top_percent` is the top of METRIC_TOP_MEMBERS_SHARE_OF_SPEND.
pub async fn get_metrics(
    db: &DatabaseConnection,
    scope: &Scope,
    asked: &[Metric],
    top_percent: u32,
) -> Result<Vec<MetricValue>, AnalyticsError> {
    let txn = begin_read(db).await?;
    let mut values = Vec::with_capacity(asked.len());
    for metric in asked {
        let (numerator, denominator) = match metric {
            Metric::NewMembers => (metrics::new_members(&txn, scope).await?, 1),
            Metric::MemberShareOfSales => metrics::sales(&txn, scope).await?,
            Metric::RepurchaseRate => metrics::repeat_buyers(&txn, scope).await?,
            Metric::ActiveMemberRate => metrics::active_members(&txn, scope).await?,
            Metric::TopMembersShareOfSpend => top_share(&metrics::spend_by_buyer(&txn, scope).await?, top_percent),
            Metric::SpendPerMember => metrics::spend_to_date(&txn, scope).await?,
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

/// Which members buy on which channels: each pair of channels, and the members who bought on both.
pub async fn channel_overlap(
    db: &DatabaseConnection,
    scope: &Scope,
) -> Result<Vec<quanyu_proto::analytics::v1::ChannelOverlap>, AnalyticsError> {
    let txn = begin_read(db).await?;
    let pairs = metrics::channel_overlap(&txn, scope).await?;
    txn.commit().await?;
    Ok(pairs
        .into_iter()
        .map(
            |(channel, other_channel, members)| quanyu_proto::analytics::v1::ChannelOverlap {
                channel,
                other_channel,
                members,
            },
        )
        .collect())
}
