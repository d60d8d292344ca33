//! The gRPC face of analytics: authorises each call, validates it, runs the use case.

use std::pin::Pin;

use chrono::FixedOffset;
use quanyu_proto::analytics::v1 as pb;
use quanyu_proto::analytics::v1::analytics_service_server::AnalyticsService;
use quanyu_proto::common::v1::Channel;
use quanyu_runtime::auth::{Access, authorize};
use quanyu_runtime::clock::{Clock, to_proto};
use quanyu_runtime::error::{FieldViolation, Violations};
use quanyu_runtime::page;
use sea_orm::DatabaseConnection;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::{Stream, StreamExt as _};
use tonic::{Request, Response, Status};

use crate::app;
use crate::app::index::FactIndex;
use crate::app::metrics::Parameters;
use crate::domain::Place;
use crate::domain::aipl::{Stage, Windows};
use crate::domain::window::{Window, month_window};
use crate::error::AnalyticsError;
use crate::store::audiences::{AsOf, Saved};
use crate::store::metrics::{LineFilter, Scope};

pub struct AnalyticsApi {
    db: DatabaseConnection,
    /// The facts FAST, the stage flow and the channel overlap are read from.
    index: FactIndex,
    clock: Clock,
    /// The time zone whose calendar days windows name.
    offset: FixedOffset,
}

impl AnalyticsApi {
    pub fn new(db: DatabaseConnection, index: FactIndex, clock: Clock, offset: FixedOffset) -> Self {
        Self {
            db,
            index,
            clock,
            offset,
        }
    }

    /// What the tenant's audiences are read as of: today, in analytics' time zone.
    fn as_of(&self, tenant_id: &str) -> AsOf {
        AsOf {
            tenant_id: tenant_id.to_owned(),
            today: app::audiences::today(self.clock.now(), self.offset),
        }
    }
}

/// Members per batch of ListAudienceMembers when the request names no size, and at most.
const DEFAULT_AUDIENCE_BATCH: u64 = 1_000;
const MAX_AUDIENCE_BATCH: u64 = 10_000;

/// The top of METRIC_TOP_MEMBERS_SHARE_OF_SPEND when the request names none: the 80/20 rule's.
const DEFAULT_TOP_PERCENT: u32 = 20;
/// The days a new member's first purchase counts within when the request names none.
const DEFAULT_FIRST_PURCHASE_DAYS: i64 = 30;

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

/// A request that asks about a window of days and a filter.
trait Windowed {
    /// The first and last day asked about.
    fn days(&self) -> (&str, &str);
    fn filter(&self) -> Option<&pb::Filter>;
}

/// Implements [`Windowed`] for requests whose days are the fields `$first` and `$last`.
macro_rules! windowed {
    ($($request:ty: $first:ident, $last:ident;)*) => {$(
        impl Windowed for $request {
            fn days(&self) -> (&str, &str) {
                (&self.$first, &self.$last)
            }

            fn filter(&self) -> Option<&pb::Filter> {
                self.filter.as_ref()
            }
        }
    )*};
}

windowed! {
    pb::GetMetricsRequest: start_date, end_date;
    pb::GetChannelOverlapRequest: start_date, end_date;
    pb::GetStageFlowRequest: start_date, end_date;
    pb::GetRfmSegmentsRequest: end_date, end_date;
    pb::GetFieldEfficiencyRequest: start_date, end_date;
}

/// What a reader's request asks about: the caller's tenant, the window and the filter, checked;
/// each field at fault is in the violations returned (the scope is not to be used then).
fn scope_of_request<T: Windowed>(request: &Request<T>) -> Result<(Scope, Violations), Status> {
    let actor = authorize(request, Access::READ)?;
    let input = request.get_ref();
    let mut violations = Violations::default();
    let (first, last) = input.days();
    let window = Window::parse(first, last, &mut violations).unwrap_or_default();
    let scope = scope_in(actor.tenant_id, window, input.filter(), &mut violations);
    Ok((scope, violations))
}

/// The scope of a window checked already and a filter; each field at fault is added to
/// `violations`.
fn scope_in(
    tenant_id: std::sync::Arc<str>,
    window: Window,
    filter: Option<&pb::Filter>,
    violations: &mut Violations,
) -> Scope {
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

/// Refuses a line filter where members, not lines, are counted.
fn no_lines(scope: &Scope, violations: &mut Violations) {
    if scope.line.is_set() {
        violations.add(line_field(&scope.line), "must be unset: members are counted, not lines");
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

/// How the metrics that take a parameter are read, as asked (0 takes each default); each field
/// at fault is added to `violations`.
fn parameters_of(input: &pb::GetMetricsRequest, violations: &mut Violations) -> Parameters {
    let top_percent = match u32::try_from(input.top_percent) {
        Ok(0) => DEFAULT_TOP_PERCENT,
        Ok(percent @ 1..=100) => percent,
        _ => {
            violations.add("top_percent", "must be 1-100 (or 0 for 20)");
            DEFAULT_TOP_PERCENT
        }
    };
    if input.high_value_min_spend_minor < 0 {
        violations.add("high_value_min_spend_minor", "must not be negative");
    }
    let first_purchase_days = match input.first_purchase_days {
        0 => DEFAULT_FIRST_PURCHASE_DAYS,
        days @ 1..=366 => i64::from(days),
        _ => {
            violations.add("first_purchase_days", "must be 1-366 (or 0 for 30)");
            DEFAULT_FIRST_PURCHASE_DAYS
        }
    };
    Parameters {
        top_percent,
        high_value_min_spend: input.high_value_min_spend_minor,
        aipl: Windows::from_pb(input.aipl.as_ref(), "aipl", violations),
        first_purchase_days,
    }
}

#[tonic::async_trait]
impl AnalyticsService for AnalyticsApi {
    async fn get_metrics(
        &self,
        request: Request<pb::GetMetricsRequest>,
    ) -> Result<Response<pb::GetMetricsResponse>, Status> {
        let (scope, mut violations) = scope_of_request(&request)?;
        let input = request.get_ref();
        let asked = metrics(&input.metrics, &mut violations);
        if scope.line.is_set() && asked.iter().any(|metric| *metric != pb::Metric::MemberShareOfSales) {
            violations.add(
                line_field(&scope.line),
                "filters METRIC_MEMBER_SHARE_OF_SALES only; ask other metrics apart",
            );
        }
        let parameters = parameters_of(input, &mut violations);
        for (metric, set, field) in [
            (
                pb::Metric::CrossBrandPurchaseRate,
                !scope.place.brand_id.is_empty(),
                "filter.brand_id",
            ),
            (
                pb::Metric::CrossStorePurchaseRate,
                !scope.place.store_id.is_empty(),
                "filter.store_id",
            ),
        ] {
            if set && asked.contains(&metric) {
                violations.add(field, format!("must be unset for {}", metric.as_str_name()));
            }
        }
        violations.into_result().map_err(AnalyticsError::from)?;
        let values = app::metrics::get_metrics(&self.db, &self.index, &scope, &asked, &parameters).await?;
        Ok(Response::new(pb::GetMetricsResponse { values }))
    }

    async fn get_channel_overlap(
        &self,
        request: Request<pb::GetChannelOverlapRequest>,
    ) -> Result<Response<pb::GetChannelOverlapResponse>, Status> {
        let (scope, mut violations) = scope_of_request(&request)?;
        if scope.place.channel != 0 {
            violations.add("filter.channel", "must be unset: the overlap is across channels");
        }
        no_lines(&scope, &mut violations);
        violations.into_result().map_err(AnalyticsError::from)?;
        let overlaps = app::metrics::channel_overlap(&self.index, &scope).await?;
        Ok(Response::new(pb::GetChannelOverlapResponse { overlaps }))
    }

    async fn record_interactions(
        &self,
        request: Request<pb::RecordInteractionsRequest>,
    ) -> Result<Response<pb::RecordInteractionsResponse>, Status> {
        let actor = authorize(&request, Access::WRITE)?;
        let interactions = &request.get_ref().interactions;
        let now = self.clock.now();
        let results = app::interactions::record(&self.db, &actor.tenant_id, interactions, now, self.offset).await?;
        Ok(Response::new(pb::RecordInteractionsResponse { results }))
    }

    async fn get_stage_flow(
        &self,
        request: Request<pb::GetStageFlowRequest>,
    ) -> Result<Response<pb::GetStageFlowResponse>, Status> {
        let (scope, mut violations) = scope_of_request(&request)?;
        let input = request.get_ref();
        if scope.line.is_set() {
            violations.add(
                line_field(&scope.line),
                "must be unset: stages are of consumers, not lines",
            );
        }
        let windows = Windows::from_pb(input.windows.as_ref(), "windows", &mut violations);
        violations.into_result().map_err(AnalyticsError::from)?;
        let flow = app::metrics::stage_flow(&self.index, &scope, &windows).await?;
        let counts = |count: &dyn Fn(Stage) -> i64| -> Vec<pb::StageCount> {
            Stage::REACHED
                .iter()
                .map(|stage| pb::StageCount {
                    stage: stage.to_pb().into(),
                    consumers: count(*stage),
                })
                .collect()
        };
        Ok(Response::new(pb::GetStageFlowResponse {
            start: counts(&|stage| flow.at_start(stage)),
            end: counts(&|stage| flow.at_end(stage)),
            flows: flow
                .pairs()
                .map(|(from, to, consumers)| pb::StageFlow {
                    from_stage: from.to_pb().into(),
                    to_stage: to.to_pb().into(),
                    consumers,
                })
                .collect(),
            stayed: flow.stayed(),
            advanced: flow.advanced(),
            churned: flow.churned(),
            arrived: flow.arrived(),
        }))
    }

    async fn get_cohorts(
        &self,
        request: Request<pb::GetCohortsRequest>,
    ) -> Result<Response<pb::GetCohortsResponse>, Status> {
        let actor = authorize(&request, Access::READ)?;
        let input = request.get_ref();
        let mut violations = Violations::default();
        let months = month_window(&input.start_month, &input.end_month, &mut violations).unwrap_or_default();
        let scope = scope_in(actor.tenant_id, months, input.filter.as_ref(), &mut violations);
        no_lines(&scope, &mut violations);
        violations.into_result().map_err(AnalyticsError::from)?;
        let today = app::audiences::today(self.clock.now(), self.offset)
            .format("%Y-%m-%d")
            .to_string();
        let cohorts = app::metrics::cohorts(&self.db, &scope, &today).await?;
        Ok(Response::new(pb::GetCohortsResponse { cohorts }))
    }

    async fn get_rfm_segments(
        &self,
        request: Request<pb::GetRfmSegmentsRequest>,
    ) -> Result<Response<pb::GetRfmSegmentsResponse>, Status> {
        let (scope, mut violations) = scope_of_request(&request)?;
        let input = request.get_ref();
        no_lines(&scope, &mut violations);
        let thresholds = input.thresholds.unwrap_or_default();
        for (field, value) in [
            ("thresholds.recency_days", i64::from(thresholds.recency_days)),
            ("thresholds.purchases", thresholds.purchases),
            ("thresholds.spend_minor", thresholds.spend_minor),
        ] {
            if value < 0 {
                violations.add(field, "must not be negative (0 takes the median)");
            }
        }
        violations.into_result().map_err(AnalyticsError::from)?;
        let segments = app::metrics::rfm_segments(&self.db, &scope, input.thresholds.as_ref()).await?;
        Ok(Response::new(segments))
    }

    async fn get_field_efficiency(
        &self,
        request: Request<pb::GetFieldEfficiencyRequest>,
    ) -> Result<Response<pb::GetFieldEfficiencyResponse>, Status> {
        let (scope, mut violations) = scope_of_request(&request)?;
        let input = request.get_ref();
        no_lines(&scope, &mut violations);
        let by_guide = match pb::Field::try_from(input.by) {
            Ok(pb::Field::Store) => false,
            Ok(pb::Field::Guide) => true,
            _ => {
                violations.add("by", "must be FIELD_STORE or FIELD_GUIDE");
                false
            }
        };
        violations.into_result().map_err(AnalyticsError::from)?;
        let fields = app::metrics::field_efficiency(&self.db, &scope, by_guide).await?;
        Ok(Response::new(pb::GetFieldEfficiencyResponse { fields }))
    }

    async fn count_audience(
        &self,
        request: Request<pb::CountAudienceRequest>,
    ) -> Result<Response<pb::CountAudienceResponse>, Status> {
        let actor = authorize(&request, Access::READ)?;
        let selected = request
            .get_ref()
            .audience
            .as_ref()
            .and_then(|selector| selector.audience.as_ref());
        let rule = app::audiences::rule_of(&self.db, &actor.tenant_id, selected, "audience").await?;
        let as_of = self.as_of(&actor.tenant_id);
        let members = app::audiences::count(&self.db, &rule, &as_of).await?;
        Ok(Response::new(pb::CountAudienceResponse {
            members,
            as_of_date: as_of.today.format("%Y-%m-%d").to_string(),
        }))
    }

    type ListAudienceMembersStream =
        Pin<Box<dyn Stream<Item = Result<pb::ListAudienceMembersResponse, Status>> + Send>>;

    async fn list_audience_members(
        &self,
        request: Request<pb::ListAudienceMembersRequest>,
    ) -> Result<Response<Self::ListAudienceMembersStream>, Status> {
        let actor = authorize(&request, Access::READ)?;
        let input = request.into_inner();
        let batch = match u64::try_from(input.batch_size) {
            Ok(0) => DEFAULT_AUDIENCE_BATCH,
            Ok(size @ 1..=MAX_AUDIENCE_BATCH) => size,
            _ => {
                let why = format!("must be 1-{MAX_AUDIENCE_BATCH} (or 0 for {DEFAULT_AUDIENCE_BATCH})");
                return Err(AnalyticsError::from(FieldViolation::new("batch_size", why)).into());
            }
        };
        let selected = input.audience.as_ref().and_then(|selector| selector.audience.as_ref());
        let rule = app::audiences::rule_of(&self.db, &actor.tenant_id, selected, "audience").await?;
        let (outgoing, incoming) = tokio::sync::mpsc::channel(2);
        let as_of = self.as_of(&actor.tenant_id);
        tokio::spawn(app::audiences::drain(
            self.db.clone(),
            rule,
            as_of,
            input.after_member_id,
            batch,
            outgoing,
        ));
        let mut listed = 0i64;
        let batches = ReceiverStream::new(incoming).map(move |batch| match batch {
            Ok(member_ids) => {
                listed += i64::try_from(member_ids.len()).unwrap_or(i64::MAX);
                Ok(pb::ListAudienceMembersResponse { member_ids, listed })
            }
            Err(error) => Err(Status::from(error)),
        });
        Ok(Response::new(Box::pin(batches)))
    }

    async fn match_audience(
        &self,
        request: Request<pb::MatchAudienceRequest>,
    ) -> Result<Response<pb::MatchAudienceResponse>, Status> {
        let actor = authorize(&request, Access::READ)?;
        let input = request.get_ref();
        let selected = input.audience.as_ref().and_then(|selector| selector.audience.as_ref());
        let rule = app::audiences::rule_of(&self.db, &actor.tenant_id, selected, "audience").await?;
        let as_of = self.as_of(&actor.tenant_id);
        let member_ids = app::audiences::matching(&self.db, &rule, &as_of, &input.member_ids).await?;
        Ok(Response::new(pb::MatchAudienceResponse { member_ids }))
    }

    async fn save_audience(
        &self,
        request: Request<pb::SaveAudienceRequest>,
    ) -> Result<Response<pb::SaveAudienceResponse>, Status> {
        let actor = authorize(&request, Access::WRITE)?;
        let input = request.get_ref();
        let at = self.clock.now();
        let (saved, created) = app::audiences::save(&self.db, &actor.tenant_id, (&input.name, &input.rule), at).await?;
        Ok(Response::new(pb::SaveAudienceResponse {
            audience: Some(audience_to_pb(saved)),
            created,
        }))
    }

    async fn list_audiences(
        &self,
        request: Request<pb::ListAudiencesRequest>,
    ) -> Result<Response<pb::ListAudiencesResponse>, Status> {
        let actor = authorize(&request, Access::READ)?;
        let input = request.get_ref();
        let mut violations = Violations::default();
        let limit = violations
            .check(page::size(input.page_size))
            .unwrap_or(page::DEFAULT_PAGE_SIZE);
        let after = violations
            .check(page::after(&input.page_token))
            .flatten()
            .unwrap_or_default();
        violations.into_result().map_err(AnalyticsError::from)?;
        let saved = app::audiences::list(&self.db, &actor.tenant_id, &after, limit).await?;
        let next_page_token = match saved.last() {
            Some(last) if saved.len() as u64 == limit => page::token(&last.name),
            _ => String::new(),
        };
        Ok(Response::new(pb::ListAudiencesResponse {
            audiences: saved.into_iter().map(audience_to_pb).collect(),
            next_page_token,
        }))
    }

    async fn delete_audience(
        &self,
        request: Request<pb::DeleteAudienceRequest>,
    ) -> Result<Response<pb::DeleteAudienceResponse>, Status> {
        let actor = authorize(&request, Access::WRITE)?;
        app::audiences::delete(&self.db, &actor.tenant_id, &request.get_ref().name).await?;
        Ok(Response::new(pb::DeleteAudienceResponse {}))
    }

    async fn get_campaign_results(
        &self,
        request: Request<pb::GetCampaignResultsRequest>,
    ) -> Result<Response<pb::GetCampaignResultsResponse>, Status> {
        let actor = authorize(&request, Access::READ)?;
        let input = request.get_ref();
        let asked = (&input.campaign_ids[..], &input.coupon_template_ids[..]);
        let (campaigns, coupon_templates) = app::campaigns::results(&self.db, &actor.tenant_id, asked).await?;
        Ok(Response::new(pb::GetCampaignResultsResponse {
            campaigns,
            coupon_templates,
        }))
    }
}

fn audience_to_pb(saved: Saved) -> pb::Audience {
    pb::Audience {
        name: saved.name,
        rule: saved.rule,
        created_at: Some(to_proto(saved.created_at)),
        updated_at: Some(to_proto(saved.updated_at)),
    }
}
