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
        let window = Window::parse(&input.start_date, &input.end_date, &mut violations);
        let filter = input.filter.clone().unwrap_or_default();
        if Channel::try_from(filter.channel).is_err() {
            violations.add("filter.channel", format!("{} is not a channel", filter.channel));
        }
        let line = LineFilter {
            category: filter.category,
            sku: filter.sku,
        };
        if line.is_set() && asked.iter().any(|metric| *metric != pb::Metric::MemberShareOfSales) {
            let field = if line.category.is_empty() {
                "filter.sku"
            } else {
                "filter.category"
            };
            violations.add(
                field,
                "filters METRIC_MEMBER_SHARE_OF_SALES only; ask other metrics apart",
            );
        }
        violations.into_result().map_err(AnalyticsError::from)?;
        let window = window.unwrap_or_default();
        let place = Place {
            brand_id: filter.brand_id,
            channel: filter.channel,
            store_id: filter.store_id,
        };
        let scope = Scope {
            tenant_id: &actor.tenant_id,
            window: &window,
            place: &place,
            line: &line,
        };
        let values = app::metrics::get_metrics(&self.db, &scope, &asked).await?;
        Ok(Response::new(pb::GetMetricsResponse { values }))
    }
}
