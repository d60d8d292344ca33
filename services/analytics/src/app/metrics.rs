//! The figures of one window, read in one transaction so that they agree with each other.

use quanyu_proto::analytics::v1::{Metric, MetricValue};
use quanyu_runtime::db::begin_read;
use sea_orm::{DatabaseConnection, DatabaseTransaction};

use quanyu_proto::analytics::v1 as pb;

use crate::domain::aipl::{Flow, Stage, Windows};
use crate::domain::rfm::{self, Buyer, Thresholds};
use crate::domain::window::{days_before, days_between, months_between, ratio, top_count, top_share};
use crate::error::AnalyticsError;
use crate::store::metrics::{self, Scope};

/// How the metrics that take a parameter are read.
#[derive(Debug, Clone, Copy)]
pub struct Parameters {
    /// The top of METRIC_TOP_MEMBERS_SHARE_OF_SPEND and of the high-value rule.
    pub top_percent: u32,
    /// The least 365-day spend of a high-value member; 0 ranks by `top_percent`.
    pub high_value_min_spend: i64,
    pub aipl: Windows,
    /// The days after enrolment a new member's first purchase counts within.
    pub first_purchase_days: i64,
}

/// The figures of `asked`.
pub async fn get_metrics(
    db: &DatabaseConnection,
    scope: &Scope,
    asked: &[Metric],
    parameters: &Parameters,
) -> Result<Vec<MetricValue>, AnalyticsError> {
    let txn = begin_read(db).await?;
    // Fertility and Advancing read the same flow: from the day before the window to its last.
    let mut flow: Option<Flow> = None;
    let mut values = Vec::with_capacity(asked.len());
    for metric in asked {
        let (numerator, denominator) = match metric {
            Metric::NewMembers => (metrics::new_members(&txn, scope).await?, 1),
            Metric::MemberShareOfSales => metrics::sales(&txn, scope).await?,
            Metric::RepurchaseRate => metrics::repeat_buyers(&txn, scope).await?,
            Metric::ActiveMemberRate => metrics::active_members(&txn, scope).await?,
            Metric::TopMembersShareOfSpend => {
                top_share(&metrics::spend_by_buyer(&txn, scope).await?, parameters.top_percent)
            }
            Metric::SpendPerMember => metrics::spend_to_date(&txn, scope).await?,
            Metric::FastFertility | Metric::FastAdvancing => {
                let flow = match &mut flow {
                    Some(flow) => flow,
                    None => {
                        let start = days_before(&scope.window.first_day, 1);
                        let days = (start.as_str(), scope.window.last_day.as_str());
                        flow.insert(stage_flow_between(&txn, scope, days, &parameters.aipl).await?)
                    }
                };
                if *metric == Metric::FastFertility {
                    (flow.reached(), 1)
                } else {
                    (flow.advanced(), flow.started())
                }
            }
            Metric::FastMembers => (metrics::members_at_place(&txn, scope).await?, 1),
            Metric::FastHighValueMembers => (
                high_value_members(&txn, scope, parameters).await?,
                metrics::members(&txn, scope).await?,
            ),
            Metric::FastThriving => metrics::thriving_members(&txn, scope).await?,
            Metric::NewMembersFirstPurchaseRate => {
                metrics::new_members_first_purchase(&txn, scope, parameters.first_purchase_days).await?
            }
            Metric::ExistingMembersFirstPurchaseRate => metrics::existing_members_first_purchase(&txn, scope).await?,
            Metric::CrossBrandPurchaseRate => metrics::bought_in_several(&txn, scope, "brand_id").await?,
            Metric::CrossStorePurchaseRate => metrics::bought_in_several(&txn, scope, "store_id").await?,
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

/// Members whose 365-day net spend makes them high-value, by the rule of `parameters`.
async fn high_value_members(
    txn: &DatabaseTransaction,
    scope: &Scope,
    parameters: &Parameters,
) -> Result<i64, AnalyticsError> {
    let (spent_enough, buyers) = metrics::buyers_of_the_year(txn, scope, parameters.high_value_min_spend).await?;
    if parameters.high_value_min_spend > 0 {
        return Ok(spent_enough);
    }
    let buyers = usize::try_from(buyers).unwrap_or(0);
    Ok(i64::try_from(top_count(buyers, parameters.top_percent)).unwrap_or(i64::MAX))
}

async fn stage_flow_between(
    txn: &DatabaseTransaction,
    scope: &Scope,
    days: (&str, &str),
    windows: &Windows,
) -> Result<Flow, AnalyticsError> {
    let mut flow = Flow::default();
    for (start, end, consumers) in metrics::stage_signals(txn, scope, days, windows).await? {
        flow.add(Stage::of(start), Stage::of(end), consumers);
    }
    Ok(flow)
}

/// How consumers moved between the AIPL stages from the window's first day to its last.
pub async fn stage_flow(db: &DatabaseConnection, scope: &Scope, windows: &Windows) -> Result<Flow, AnalyticsError> {
    let txn = begin_read(db).await?;
    let days = (scope.window.first_day.as_str(), scope.window.last_day.as_str());
    let flow = stage_flow_between(&txn, scope, days, windows).await?;
    txn.commit().await?;
    Ok(flow)
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

/// Each month's new members, and how many of them bought in each month since, up to `today`.
pub async fn cohorts(db: &DatabaseConnection, scope: &Scope, today: &str) -> Result<Vec<pb::Cohort>, AnalyticsError> {
    let txn = begin_read(db).await?;
    let (sizes, retained) = metrics::cohorts(&txn, scope).await?;
    txn.commit().await?;
    Ok(sizes
        .into_iter()
        .map(|(month, members)| {
            let followed = months_between(&month, today).unwrap_or(0).max(0) + 1;
            let mut cohort = pb::Cohort {
                retained: vec![0; usize::try_from(followed).unwrap_or(0)],
                month,
                members,
            };
            for (_, bought, buyers) in retained.iter().filter(|(of, _, _)| *of == cohort.month) {
                let since = months_between(&cohort.month, bought).and_then(|months| usize::try_from(months).ok());
                if let Some(slot) = since.and_then(|months| cohort.retained.get_mut(months)) {
                    *slot = *buyers;
                }
            }
            cohort
        })
        .collect())
}

/// The RFM segments of the members who bought in the 365 days to the window's last day.
pub async fn rfm_segments(
    db: &DatabaseConnection,
    scope: &Scope,
    asked: Option<&pb::RfmThresholds>,
) -> Result<pb::GetRfmSegmentsResponse, AnalyticsError> {
    let txn = begin_read(db).await?;
    let rows = metrics::buyers_by_recency(&txn, scope).await?;
    txn.commit().await?;
    let last_day = scope.window.last_day.as_str();
    let buyers: Vec<Buyer> = rows
        .into_iter()
        .map(|(last_purchase, purchases, spend_minor)| Buyer {
            recency_days: days_between(&last_purchase, last_day),
            purchases,
            spend_minor,
        })
        .collect();
    let thresholds = Thresholds::asked_or_median(asked, &buyers);
    Ok(pb::GetRfmSegmentsResponse {
        thresholds: Some(pb::RfmThresholds {
            recency_days: i32::try_from(thresholds.recency_days).unwrap_or(i32::MAX),
            purchases: thresholds.purchases,
            spend_minor: thresholds.spend_minor,
        }),
        segments: rfm::segments(&buyers, &thresholds),
    })
}

/// Per store or per guide: bound members, active members and their spend in the window.
pub async fn field_efficiency(
    db: &DatabaseConnection,
    scope: &Scope,
    by_guide: bool,
) -> Result<Vec<pb::FieldEfficiency>, AnalyticsError> {
    let txn = begin_read(db).await?;
    let fields = metrics::fields(&txn, scope, by_guide).await?;
    txn.commit().await?;
    Ok(fields
        .into_iter()
        .map(|field| pb::FieldEfficiency {
            store_id: field.store_id,
            guide_id: field.guide_id,
            bound_members: field.bound_members,
            active_members: field.active_members,
            spend_minor: field.spend_minor,
        })
        .collect())
}
