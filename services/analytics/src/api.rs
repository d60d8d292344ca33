//! The gRPC face of analytics: authorises each call, validates it, runs the use case.

use quanyu_proto::analytics::v1 as pb;
use quanyu_proto::analytics::v1::analytics_service_server::AnalyticsService;
use quanyu_proto::common::v1::Channel;
use quanyu_runtime::auth::{Access, authorize};
use quanyu_runtime::error::Violations;
use sea_orm::DatabaseConnection;
use tonic::{Request, Response, Status};

use crate::app;
use crate::domain::window::Window;
use crate::error::AnalyticsError;
use crate::store::facts::Place;
use crate::store::metrics::{LineFilter, Scope};

pub struct AnalyticsApi {
    db: DatabaseConnection,
}

impl AnalyticsApi {
    pub fn new(db: DatabaseConnection) -> Self {
        Self { db }
    }
}

/// The top of METRIC_TOP_MEMBERS_SHARE_OF_SPEND when the request names none: the 80/20 rule's.
const DEFAULT_TOP_PERCENT: u32 = 20;

/// The metrics asked, each known and named once, in the order asked.
fn metrics(asked: &[i32], violations: &mut Violations) -> Vec<pb::Metric> {
    if asked.is_empty() {
        violations.add("metrics", "name at least one metric");
    }
    let mut metrics = Vec::with_capacity(asked.len());
    for (index, value) in asked.iter().enumerate() {
        match pb::Metric::try_from(*value) {
            Ok(pb::Metric::Unspecified) | Err(_) => {
                violations.add(format!("metrics[{index}]"), format!("{value} is not a metric"));
            }
            Ok(metric) if metrics.contains(&metric) => {
                violations.add(format!("metrics[{index}]"), "is asked twice");
            }
            Ok(metric) => metrics.push(metric),
        }
    }
    metrics
}

/// What a request asks about: the caller's tenant, the window and the filter, checked; each field
/// at fault is added to `violations` (the scope is not to be used then).
fn scope_of(
    tenant_id: std::sync::Arc<str>,
    (start_date, end_date): (&str, &str),
    filter: Option<&pb::Filter>,
    violations: &mut Violations,
) -> Scope {
    let window = Window::parse(start_date, end_date, violations).unwrap_or_default();
    let filter = filter.cloned().unwrap_or_default();
    if Channel::try_from(filter.channel).is_err() {
        violations.add("filter.channel", format!("{} is not a channel", filter.channel));
    }
    Scope {
        tenant_id,
        window,
        place: Place {
            brand_id: filter.brand_id,
            channel: filter.channel,
            store_id: filter.store_id,
        },
        line: LineFilter {
            category: filter.category,
            sku: filter.sku,
        },
    }
}

/// The filter field naming lines, when one is set.
fn line_field(line: &LineFilter) -> &'static str {
    if line.category.is_empty() {
        "filter.sku"
    } else {
        "filter.category"
    }
}

#[tonic::async_trait]
impl AnalyticsService for AnalyticsApi {
    async fn get_metrics(
        &self,
        request: Request<pb::GetMetricsRequest>,
    ) -> Result<Response<pb::GetMetricsResponse>, Status> {
        let actor = authorize(&request, Access::READ)?;
        let input = request.get_ref();
        let mut violations = Violations::default();
        let asked = metrics(&input.metrics, &mut violations);
        let scope = scope_of(
            actor.tenant_id,
            (&input.start_date, &input.end_date),
            input.filter.as_ref(),
            &mut violations,
        );
        if scope.line.is_set() && asked.iter().any(|metric| *metric != pb::Metric::MemberShareOfSales) {
            violations.add(
                line_field(&scope.line),
                "filters METRIC_MEMBER_SHARE_OF_SALES only; ask other metrics apart",
            );
        }
        let top_percent = match u32::try_from(input.top_percent) {
            Ok(0) => DEFAULT_TOP_PERCENT,
            Ok(percent @ 1..=100) => percent,
            _ => {
                violations.add("top_percent", "must be 1-100 (or 0 for 20)");
                DEFAULT_TOP_PERCENT
            }
        };
        violations.into_result().map_err(AnalyticsError::from)?;
        let values = app::metrics::get_metrics(&self.db, &scope, &asked, top_percent).await?;
        Ok(Response::new(pb::GetMetricsResponse { values }))
    }

    async fn get_channel_overlap(
        &self,
        request: Request<pb::GetChannelOverlapRequest>,
    ) -> Result<Response<pb::GetChannelOverlapResponse>, Status> {
        let actor = authorize(&request, Access::READ)?;
        let input = request.get_ref();
        let mut violations = Violations::default();
        let scope = scope_of(
            actor.tenant_id,
            (&input.start_date, &input.end_date),
            input.filter.as_ref(),
            &mut violations,
        );
        if scope.place.channel != 0 {
            violations.add("filter.channel", "must be unset: the overlap is across channels");
        }
        if scope.line.is_set() {
            violations.add(line_field(&scope.line), "must be unset: members overlap, not lines");
        }
        violations.into_result().map_err(AnalyticsError::from)?;
        let overlaps = app::metrics::channel_overlap(&self.db, &scope).await?;
        Ok(Response::new(pb::GetChannelOverlapResponse { overlaps }))
    }
}
