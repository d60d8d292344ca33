//! The figures of one window: those SQL answers read in one transaction, so that they agree
//! with each other; FAST, the stage flow and the channel overlap from the facts in memory.

use quanyu_proto::analytics::v1 as pb;
use quanyu_proto::analytics::v1::{Metric, MetricValue};
use quanyu_runtime::db::begin_read;
use quanyu_runtime::error::FieldViolation;
use sea_orm::DatabaseConnection;

use super::index::{FactIndex, TenantFacts};
use crate::domain::aipl::{Flow, Windows};
use crate::domain::fast::{self, Ask, Fast, Rules, Wanted, day_number};
use crate::domain::rfm::{self, Buyer, Thresholds};
use crate::domain::window::{days_between, months_between, ratio, top_count, top_share};
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

/// The FAST metrics: read from the facts in memory, in one pass.
pub const FAST: [Metric; 5] = [
    Metric::FastFertility,
    Metric::FastAdvancing,
    Metric::FastMembers,
    Metric::FastHighValueMembers,
    Metric::FastThriving,
];

/// The figures of `asked`. The FAST figures come from the facts in memory as of the call's
/// start, the others from one database transaction begun after.
pub async fn get_metrics(
    db: &DatabaseConnection,
    index: &FactIndex,
    scope: &Scope,
    asked: &[Metric],
    parameters: &Parameters,
) -> Result<Vec<MetricValue>, AnalyticsError> {
    let fast = if asked.iter().any(|metric| FAST.contains(metric)) {
        let rules = Rules {
            windows: parameters.aipl,
            high_value_min_spend: parameters.high_value_min_spend,
        };
        let wanted = Wanted {
            flow: asked.contains(&Metric::FastFertility) || asked.contains(&Metric::FastAdvancing),
            year: asked.contains(&Metric::FastHighValueMembers),
            thriving: asked.contains(&Metric::FastThriving),
        };
        let read = move |tenant: &TenantFacts, (part, parts): (usize, usize), ask: &Ask<'_>| {
            let fast = fast::fast(tenant.consumers((part, parts)), ask, &rules, wanted);
            // Members are counted once, with the first part, not by each.
            let members = if part == 0 {
                tenant.enrolments().by_last_day(ask)
            } else {
                (0, 0)
            };
            (fast, members)
        };
        let combine = |(fast, (members, at_place)): (Fast, (i64, i64)), (other, (more, more_at_place))| {
            (fast.merge(other), (members + more, at_place + more_at_place))
        };
        Some(read_facts(index, scope, read, combine).await?)
    } else {
        None
    };
    let (fast, (members, members_at_place)) = fast.unwrap_or_default();
    let txn = begin_read(db).await?;
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
            Metric::FastFertility => (fast.flow.reached(), 1),
            Metric::FastAdvancing => (fast.flow.advanced(), fast.flow.started()),
            Metric::FastMembers => (members_at_place, 1),
            Metric::FastHighValueMembers => (high_value_members(&fast, parameters), members),
            Metric::FastThriving => (fast.thriving, members),
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
fn high_value_members(fast: &Fast, parameters: &Parameters) -> i64 {
    if parameters.high_value_min_spend > 0 {
        return fast.spent_enough;
    }
    let buyers = usize::try_from(fast.buyers_of_the_year).unwrap_or(0);
    i64::try_from(top_count(buyers, parameters.top_percent)).unwrap_or(i64::MAX)
}

/// How consumers moved between the AIPL stages from the window's first day to its last.
pub async fn stage_flow(index: &FactIndex, scope: &Scope, windows: &Windows) -> Result<Flow, AnalyticsError> {
    let windows = *windows;
    let read = move |tenant: &TenantFacts, part, ask: &Ask<'_>| fast::stage_flow(tenant.consumers(part), ask, &windows);
    read_facts(index, scope, read, Flow::merge).await
}

/// Which members buy on which channels: each pair of channels, and the members who bought on both.
pub async fn channel_overlap(index: &FactIndex, scope: &Scope) -> Result<Vec<pb::ChannelOverlap>, AnalyticsError> {
    let read = |tenant: &TenantFacts, part, ask: &Ask<'_>| {
        let places = tenant.places();
        let mut channels: Vec<i32> = places.iter().map(|place| place.channel).collect();
        channels.sort_unstable();
        channels.dedup();
        let channel_of: Vec<usize> = places
            .iter()
            .map(|place| channels.partition_point(|channel| *channel < place.channel))
            .collect();
        fast::channel_overlap(tenant.consumers(part), ask, (&channels, &channel_of))
    };
    let pairs = read_facts(index, scope, read, fast::merge_overlaps).await?;
    Ok(pairs
        .into_iter()
        .map(|(channel, other_channel, members)| pb::ChannelOverlap {
            channel,
            other_channel,
            members,
        })
        .collect())
}

/// Runs `read` over the scope's tenant's consumers as of now, with the window and the places
/// the scope selects, on threads that may block: the consumers in as many parts as there are
/// cores, the parts' answers put together by `combine`. A pass over a million consumers takes
/// tens of milliseconds of CPU, which the runtime's threads should not wait on.
async fn read_facts<T: Send + 'static>(
    index: &FactIndex,
    scope: &Scope,
    read: impl Fn(&TenantFacts, (usize, usize), &Ask<'_>) -> T + Send + Sync + 'static,
    combine: impl Fn(T, T) -> T + Send + 'static,
) -> Result<T, AnalyticsError> {
    let day = |day: &str, field: &str| {
        day_number(day).ok_or_else(|| AnalyticsError::from(FieldViolation::new(field, "must be a date")))
    };
    let (first_day, last_day) = (
        day(&scope.window.first_day, "start_date")?,
        day(&scope.window.last_day, "end_date")?,
    );
    let (tenant_id, selected) = (scope.tenant_id.clone(), scope.place.clone());
    let facts = index.current().await?;
    let parts = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    tokio::task::spawn_blocking(move || {
        let none = TenantFacts::default();
        let tenant = facts.tenant(&tenant_id).unwrap_or(&none);
        let selects: Vec<bool> = tenant.places().iter().map(|place| selected.selects(place)).collect();
        let ask = Ask {
            first_day,
            last_day,
            places: &selects,
        };
        let (read, ask) = (&read, &ask);
        std::thread::scope(|threads| {
            let others: Vec<_> = (1..parts)
                .map(|part| threads.spawn(move || read(tenant, (part, parts), ask)))
                .collect();
            let mut answer = read(tenant, (0, parts), ask);
            for other in others {
                // A part that panicked is a bug: let the call fail as the first part's would.
                answer = combine(
                    answer,
                    other.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
                );
            }
            answer
        })
    })
    .await
    .map_err(|error| AnalyticsError::Internal(format!("reading the facts in memory failed: {error}")))
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
