//! The gRPC face of campaign: authorises each call, validates it, runs the use case.

use quanyu_proto::campaign::v1 as pb;
use quanyu_proto::campaign::v1::campaign_service_server::CampaignService;
use quanyu_proto::common::v1::Channel;
use quanyu_runtime::auth::{Access, Role, authorize, is_slug};
use quanyu_runtime::clock::Clock;
use quanyu_runtime::error::{FieldViolation, Violations};
use quanyu_runtime::page;
use sea_orm::DatabaseConnection;
use tonic::{Request, Response, Status};

use crate::app;
use crate::app::Keyed;
use crate::app::coupons::{Issue, Redemption};
use crate::domain::code;
use crate::domain::coupon::Order;
use crate::error::CampaignError;

/// Checking and redeeming coupons, and reading one: what a till does.
const REDEEM: Access = Access::till("redeem");
/// Reading one coupon by its code: tills and every reader.
const READ_COUPON: Access = Access::new(
    "read-coupon",
    &[Role::Platform, Role::Service, Role::Pos, Role::Analyst],
);

/// The most codes one order names.
const MAX_CODES: usize = 20;
/// The most codes one ImportCouponCodes call adds.
const MAX_IMPORT: usize = 1_000;

pub struct CampaignApi {
    db: DatabaseConnection,
    clock: Clock,
    audiences: std::sync::Arc<dyn app::audiences::AudienceSource>,
}

impl CampaignApi {
    pub fn new(
        db: DatabaseConnection,
        clock: Clock,
        audiences: std::sync::Arc<dyn app::audiences::AudienceSource>,
    ) -> Self {
        Self { db, clock, audiences }
    }
}

type Reply<T> = Result<Response<T>, Status>;

fn template_id(violations: &mut Violations, id: &str) {
    if !is_slug(id) {
        violations.add("template_id", "must be 1-64 of [a-z0-9_.-]");
    }
}

/// Checks what an issue or a claim names: the template, the member and the idempotency key.
fn issued_to(violations: &mut Violations, (template, member_id, key): (&str, &str, &str)) {
    template_id(violations, template);
    violations.text("member_id", member_id, 64, true);
    violations.text("idempotency_key", key, 128, true);
}

/// Checks an order; the order as the rules read it.
fn order(order: Option<&pb::Order>, violations: &mut Violations) -> Order {
    let Some(order) = order else {
        violations.add("order", "is required");
        return Order {
            channel: 0,
            brand_id: String::new(),
            store_id: String::new(),
            amount_minor: 0,
            currency: String::new(),
            member_id: None,
        };
    };
    violations.text("order.source", &order.source, 64, true);
    violations.text("order.order_id", &order.order_id, 128, true);
    violations.text("order.brand_id", &order.brand_id, 64, false);
    violations.text("order.store_id", &order.store_id, 64, false);
    violations.text("order.member_id", &order.member_id, 64, false);
    if Channel::try_from(order.channel).is_err() {
        violations.add("order.channel", format!("{} is not a channel", order.channel));
    }
    let amount = order.amount.clone().unwrap_or_default();
    if order.amount.is_none() {
        violations.add("order.amount", "is required");
    } else if amount.amount_minor < 0 {
        violations.add("order.amount", "must not be negative");
    }
    if amount.currency.len() != 3 || !amount.currency.chars().all(|c| c.is_ascii_uppercase()) {
        violations.add("order.amount.currency", "must be an ISO 4217 code such as CNY");
    }
    Order {
        channel: order.channel,
        brand_id: order.brand_id.clone(),
        store_id: order.store_id.clone(),
        amount_minor: amount.amount_minor,
        currency: amount.currency,
        member_id: (!order.member_id.is_empty()).then(|| order.member_id.clone()),
    }
}

/// Checks an order's codes; the codes as kept (normalized).
fn codes(codes: &[String], violations: &mut Violations) -> Vec<String> {
    if codes.is_empty() || codes.len() > MAX_CODES {
        violations.add("codes", format!("must hold 1-{MAX_CODES} codes, got {}", codes.len()));
    }
    codes
        .iter()
        .enumerate()
        .map(|(index, typed)| {
            let code = code::normalize(typed);
            if code.is_empty() || code.len() > 64 {
                violations.add(format!("codes[{index}]"), "must be 1-64 characters");
            }
            code
        })
        .collect()
}

/// The normalized code of a request that names one coupon.
fn one_code(typed: &str, violations: &mut Violations) -> String {
    let code = code::normalize(typed);
    if code.is_empty() || code.len() > 64 {
        violations.add("code", "must be 1-64 characters");
    }
    code
}

#[tonic::async_trait]
impl CampaignService for CampaignApi {
    async fn create_coupon_template(
        &self,
        request: Request<pb::CreateCouponTemplateRequest>,
    ) -> Reply<pb::CreateCouponTemplateResponse> {
        let actor = authorize(&request, Access::WRITE)?;
        let Some(template) = request.into_inner().template else {
            return Err(
                CampaignError::from(quanyu_runtime::error::FieldViolation::new("template", "is required")).into(),
            );
        };
        let template = app::templates::create(&self.db, &actor.tenant_id, template, self.clock.now()).await?;
        Ok(Response::new(pb::CreateCouponTemplateResponse {
            template: Some(template),
        }))
    }

    async fn get_coupon_template(
        &self,
        request: Request<pb::GetCouponTemplateRequest>,
    ) -> Reply<pb::GetCouponTemplateResponse> {
        let actor = authorize(&request, Access::READ)?;
        let mut violations = Violations::default();
        template_id(&mut violations, &request.get_ref().template_id);
        violations.into_result().map_err(CampaignError::from)?;
        let (row, _) = app::templates::load(&self.db, &actor.tenant_id, &request.get_ref().template_id).await?;
        Ok(Response::new(pb::GetCouponTemplateResponse {
            template: Some(app::template_to_pb(&row)?),
        }))
    }

    async fn issue_coupon(&self, request: Request<pb::IssueCouponRequest>) -> Reply<pb::IssueCouponResponse> {
        let actor = authorize(&request, Access::WRITE)?;
        let input = request.get_ref();
        let mut violations = Violations::default();
        issued_to(
            &mut violations,
            (&input.template_id, &input.member_id, &input.idempotency_key),
        );
        violations.into_result().map_err(CampaignError::from)?;
        let issue = Issue {
            template_id: &input.template_id,
            member_id: &input.member_id,
            origin: pb::CouponOrigin::Issued,
            channel: 0,
        };
        let keyed = Keyed::of("issue", &input.idempotency_key, input);
        let coupon = app::coupons::issue(&self.db, &actor.tenant_id, (&issue, &keyed), self.clock.now()).await?;
        Ok(Response::new(pb::IssueCouponResponse { coupon: Some(coupon) }))
    }

    async fn claim_coupon(&self, request: Request<pb::ClaimCouponRequest>) -> Reply<pb::ClaimCouponResponse> {
        let actor = authorize(&request, Access::WRITE)?;
        let input = request.get_ref();
        let mut violations = Violations::default();
        issued_to(
            &mut violations,
            (&input.template_id, &input.member_id, &input.idempotency_key),
        );
        if matches!(Channel::try_from(input.channel), Ok(Channel::Unspecified) | Err(_)) {
            violations.add("channel", "is required: the channel the member claims from");
        }
        violations.into_result().map_err(CampaignError::from)?;
        let issue = Issue {
            template_id: &input.template_id,
            member_id: &input.member_id,
            origin: pb::CouponOrigin::Claimed,
            channel: input.channel,
        };
        let keyed = Keyed::of("claim", &input.idempotency_key, input);
        let coupon = app::coupons::issue(&self.db, &actor.tenant_id, (&issue, &keyed), self.clock.now()).await?;
        Ok(Response::new(pb::ClaimCouponResponse { coupon: Some(coupon) }))
    }

    async fn import_coupon_codes(
        &self,
        request: Request<pb::ImportCouponCodesRequest>,
    ) -> Reply<pb::ImportCouponCodesResponse> {
        let actor = authorize(&request, Access::WRITE)?;
        let input = request.get_ref();
        let mut violations = Violations::default();
        template_id(&mut violations, &input.template_id);
        if input.codes.is_empty() || input.codes.len() > MAX_IMPORT {
            violations.add(
                "codes",
                format!("must hold 1-{MAX_IMPORT} codes, got {}", input.codes.len()),
            );
        }
        violations.into_result().map_err(CampaignError::from)?;
        let codes: Vec<String> = input.codes.iter().map(|typed| code::normalize(typed)).collect();
        let response = app::coupons::import(&self.db, &actor.tenant_id, &input.template_id, &codes).await?;
        Ok(Response::new(response))
    }

    async fn validate_coupons(
        &self,
        request: Request<pb::ValidateCouponsRequest>,
    ) -> Reply<pb::ValidateCouponsResponse> {
        let actor = authorize(&request, REDEEM)?;
        let input = request.get_ref();
        let mut violations = Violations::default();
        let order = order(input.order.as_ref(), &mut violations);
        let codes = codes(&input.codes, &mut violations);
        violations.into_result().map_err(CampaignError::from)?;
        let response = app::coupons::validate(&self.db, &actor.tenant_id, &order, &codes, self.clock.now()).await?;
        Ok(Response::new(response))
    }

    async fn redeem_coupons(&self, request: Request<pb::RedeemCouponsRequest>) -> Reply<pb::RedeemCouponsResponse> {
        let actor = authorize(&request, REDEEM)?;
        let input = request.get_ref();
        let mut violations = Violations::default();
        let checked_order = order(input.order.as_ref(), &mut violations);
        let codes = codes(&input.codes, &mut violations);
        violations.into_result().map_err(CampaignError::from)?;
        let order = input
            .order
            .as_ref()
            .ok_or_else(|| Status::invalid_argument("order is required"))?;
        let redemption = Redemption {
            order,
            checked_order,
            codes,
            keyed: Keyed::of(format!("redeem:{}", order.source), &order.order_id, input),
        };
        let response = app::coupons::redeem(&self.db, &actor.tenant_id, &redemption, self.clock.now()).await?;
        Ok(Response::new(response))
    }

    async fn void_coupon(&self, request: Request<pb::VoidCouponRequest>) -> Reply<pb::VoidCouponResponse> {
        let actor = authorize(&request, Access::WRITE)?;
        let input = request.get_ref();
        let mut violations = Violations::default();
        let code = one_code(&input.code, &mut violations);
        violations.text("reason", &input.reason, 200, true);
        violations.into_result().map_err(CampaignError::from)?;
        let coupon = app::coupons::void(&self.db, &actor.tenant_id, &code, &input.reason, self.clock.now()).await?;
        Ok(Response::new(pb::VoidCouponResponse { coupon: Some(coupon) }))
    }

    async fn get_coupon(&self, request: Request<pb::GetCouponRequest>) -> Reply<pb::GetCouponResponse> {
        let actor = authorize(&request, READ_COUPON)?;
        let mut violations = Violations::default();
        let code = one_code(&request.get_ref().code, &mut violations);
        violations.into_result().map_err(CampaignError::from)?;
        let coupon = app::coupons::get(&self.db, &actor.tenant_id, &code, self.clock.now()).await?;
        Ok(Response::new(pb::GetCouponResponse { coupon: Some(coupon) }))
    }

    async fn list_coupons(&self, request: Request<pb::ListCouponsRequest>) -> Reply<pb::ListCouponsResponse> {
        let actor = authorize(&request, Access::READ)?;
        let input = request.get_ref();
        let mut violations = Violations::default();
        violations.text("member_id", &input.member_id, 64, true);
        let state = pb::CouponState::try_from(input.state).unwrap_or_else(|_| {
            violations.add("state", format!("{} is not a coupon state", input.state));
            pb::CouponState::Unspecified
        });
        let (after, size) = page_of(&mut violations, (input.page_size, &input.page_token));
        violations.into_result().map_err(CampaignError::from)?;
        let (coupons, next_page_token) = app::coupons::list(
            &self.db,
            &actor.tenant_id,
            &input.member_id,
            state,
            (after, size),
            self.clock.now(),
        )
        .await?;
        Ok(Response::new(pb::ListCouponsResponse {
            coupons,
            next_page_token,
        }))
    }

    async fn create_campaign(&self, request: Request<pb::CreateCampaignRequest>) -> Reply<pb::CreateCampaignResponse> {
        let actor = authorize(&request, Access::WRITE)?;
        let Some(campaign) = request.into_inner().campaign else {
            return Err(CampaignError::from(FieldViolation::new("campaign", "is required")).into());
        };
        let campaign = app::campaigns::create(
            (&self.db, self.audiences.as_ref()),
            &actor.tenant_id,
            campaign,
            self.clock.now(),
        )
        .await?;
        Ok(Response::new(pb::CreateCampaignResponse {
            campaign: Some(campaign),
        }))
    }

    async fn get_campaign(&self, request: Request<pb::GetCampaignRequest>) -> Reply<pb::GetCampaignResponse> {
        let actor = authorize(&request, Access::READ)?;
        let campaign_id = checked_campaign_id(&request.get_ref().campaign_id)?;
        let campaign = app::campaigns::get(&self.db, &actor.tenant_id, campaign_id, self.clock.now()).await?;
        Ok(Response::new(pb::GetCampaignResponse {
            campaign: Some(campaign),
        }))
    }

    async fn list_campaigns(&self, request: Request<pb::ListCampaignsRequest>) -> Reply<pb::ListCampaignsResponse> {
        let actor = authorize(&request, Access::READ)?;
        let input = request.get_ref();
        let mut violations = Violations::default();
        let (after, size) = page_of(&mut violations, (input.page_size, &input.page_token));
        violations.into_result().map_err(CampaignError::from)?;
        let page = (after, size);
        let (campaigns, next_page_token) =
            app::campaigns::list(&self.db, &actor.tenant_id, page, self.clock.now()).await?;
        Ok(Response::new(pb::ListCampaignsResponse {
            campaigns,
            next_page_token,
        }))
    }

    async fn change_campaign_state(
        &self,
        request: Request<pb::ChangeCampaignStateRequest>,
    ) -> Reply<pb::ChangeCampaignStateResponse> {
        let actor = authorize(&request, Access::WRITE)?;
        let input = request.get_ref();
        let campaign_id = checked_campaign_id(&input.campaign_id)?;
        let target = match pb::CampaignState::try_from(input.state) {
            Ok(
                target @ (pb::CampaignState::Scheduled
                | pb::CampaignState::Active
                | pb::CampaignState::Paused
                | pb::CampaignState::Ended),
            ) => target,
            _ => {
                let why = "must be SCHEDULED, ACTIVE (to resume), PAUSED or ENDED";
                return Err(CampaignError::from(FieldViolation::new("state", why)).into());
            }
        };
        let now = self.clock.now();
        let campaign = app::campaigns::change(&self.db, &actor.tenant_id, campaign_id, target, now).await?;
        Ok(Response::new(pb::ChangeCampaignStateResponse {
            campaign: Some(campaign),
        }))
    }

    async fn get_campaign_run(&self, request: Request<pb::GetCampaignRunRequest>) -> Reply<pb::GetCampaignRunResponse> {
        let actor = authorize(&request, Access::READ)?;
        let campaign_id = checked_campaign_id(&request.get_ref().campaign_id)?;
        Ok(Response::new(
            app::campaigns::run(&self.db, &actor.tenant_id, campaign_id).await?,
        ))
    }

    async fn get_invite_code(&self, request: Request<pb::GetInviteCodeRequest>) -> Reply<pb::GetInviteCodeResponse> {
        let actor = authorize(&request, Access::WRITE)?;
        let input = request.get_ref();
        let (campaign_id, member_id) = checked_campaign_member(&input.campaign_id, &input.member_id)?;
        let code =
            app::referrals::invite_code(&self.db, &actor.tenant_id, (campaign_id, member_id), self.clock.now()).await?;
        Ok(Response::new(pb::GetInviteCodeResponse { code }))
    }

    async fn attribute_referral(
        &self,
        request: Request<pb::AttributeReferralRequest>,
    ) -> Reply<pb::AttributeReferralResponse> {
        let actor = authorize(&request, Access::WRITE)?;
        let input = request.get_ref();
        let mut violations = Violations::default();
        violations.text("code", &input.code, 64, true);
        violations.text("member_id", &input.member_id, 64, true);
        violations.into_result().map_err(CampaignError::from)?;
        let referral = app::referrals::attribute_by_call(
            &self.db,
            &actor.tenant_id,
            (&input.code, &input.member_id),
            self.clock.now(),
        )
        .await?;
        Ok(Response::new(pb::AttributeReferralResponse {
            referral: Some(referral),
        }))
    }

    async fn get_task_progress(
        &self,
        request: Request<pb::GetTaskProgressRequest>,
    ) -> Reply<pb::GetTaskProgressResponse> {
        let actor = authorize(&request, Access::READ)?;
        let input = request.get_ref();
        let (campaign_id, member_id) = checked_campaign_member(&input.campaign_id, &input.member_id)?;
        let mut violations = Violations::default();
        let (after, size) = page_of(&mut violations, (input.page_size, &input.page_token));
        violations.into_result().map_err(CampaignError::from)?;
        let page = (after, size);
        let progress = app::referrals::progress(&self.db, &actor.tenant_id, (campaign_id, member_id), page).await?;
        Ok(Response::new(progress))
    }

    async fn list_referrals(&self, request: Request<pb::ListReferralsRequest>) -> Reply<pb::ListReferralsResponse> {
        let actor = authorize(&request, Access::READ)?;
        let input = request.get_ref();
        let campaign_id = checked_campaign_id(&input.campaign_id)?;
        let mut violations = Violations::default();
        let state = match pb::ReferralState::try_from(input.state) {
            Ok(pb::ReferralState::Unspecified) => None,
            Ok(state) => Some(state.as_str_name().trim_start_matches("REFERRAL_STATE_")),
            Err(_) => {
                violations.add("state", "is not a referral state");
                None
            }
        };
        let (after, size) = page_of(&mut violations, (input.page_size, &input.page_token));
        violations.into_result().map_err(CampaignError::from)?;
        let (referrals, next_page_token) =
            app::referrals::list(&self.db, &actor.tenant_id, (campaign_id, state), (after, size)).await?;
        Ok(Response::new(pb::ListReferralsResponse {
            referrals,
            next_page_token,
        }))
    }

    async fn review_referral(&self, request: Request<pb::ReviewReferralRequest>) -> Reply<pb::ReviewReferralResponse> {
        let actor = authorize(&request, Access::WRITE)?;
        let input = request.get_ref();
        let campaign_id = checked_campaign_id(&input.campaign_id)?;
        let mut violations = Violations::default();
        violations.text("invitee_id", &input.invitee_id, 64, true);
        violations.into_result().map_err(CampaignError::from)?;
        let invitee = (campaign_id, input.invitee_id.as_str());
        let now = self.clock.now();
        let referral = app::referrals::review(&self.db, &actor.tenant_id, invitee, input.approve, now).await?;
        Ok(Response::new(pb::ReviewReferralResponse {
            referral: Some(referral),
        }))
    }

    async fn get_leaderboard(&self, request: Request<pb::GetLeaderboardRequest>) -> Reply<pb::GetLeaderboardResponse> {
        let actor = authorize(&request, Access::READ)?;
        let input = request.get_ref();
        let campaign_id = checked_campaign_id(&input.campaign_id)?;
        let mut violations = Violations::default();
        let (after, size) = page_of(&mut violations, (input.page_size, &input.page_token));
        let offset = match after.map(|offset| offset.parse::<u64>()) {
            None => 0,
            Some(Ok(offset)) => offset,
            Some(Err(_)) => {
                violations.add("page_token", "is not a token returned by a previous page");
                0
            }
        };
        violations.into_result().map_err(CampaignError::from)?;
        let (entries, next_page_token) =
            app::referrals::leaderboard(&self.db, &actor.tenant_id, campaign_id, (offset, size)).await?;
        Ok(Response::new(pb::GetLeaderboardResponse {
            entries,
            next_page_token,
        }))
    }

    async fn start_assist_task(
        &self,
        request: Request<pb::StartAssistTaskRequest>,
    ) -> Reply<pb::StartAssistTaskResponse> {
        let actor = authorize(&request, Access::WRITE)?;
        let input = request.get_ref();
        let task = checked_campaign_member(&input.campaign_id, &input.member_id)?;
        let task = app::assists::start(&self.db, &actor.tenant_id, task, self.clock.now()).await?;
        Ok(Response::new(pb::StartAssistTaskResponse { task: Some(task) }))
    }

    async fn record_assist(&self, request: Request<pb::RecordAssistRequest>) -> Reply<pb::RecordAssistResponse> {
        use pb::record_assist_request::Helper as Given;
        let actor = authorize(&request, Access::WRITE)?;
        let input = request.get_ref();
        let task = checked_campaign_member(&input.campaign_id, &input.member_id)?;
        let mut violations = Violations::default();
        let helper = match &input.helper {
            Some(Given::HelperMemberId(member_id)) => {
                violations.text("helper_member_id", member_id, 64, true);
                app::assists::Helper::Member(member_id)
            }
            Some(Given::HelperDeviceHash(hash)) => {
                violations.text("helper_device_hash", hash, 128, true);
                app::assists::Helper::Device(hash)
            }
            None => {
                violations.add("helper", "name a helper member or device hash");
                app::assists::Helper::Device("")
            }
        };
        violations.into_result().map_err(CampaignError::from)?;
        let task = app::assists::record(&self.db, &actor.tenant_id, task, &helper, self.clock.now()).await?;
        Ok(Response::new(pb::RecordAssistResponse { task: Some(task) }))
    }

    async fn get_referral_tree(
        &self,
        request: Request<pb::GetReferralTreeRequest>,
    ) -> Reply<pb::GetReferralTreeResponse> {
        let actor = authorize(&request, Access::READ)?;
        let input = request.get_ref();
        let (campaign_id, member_id) = checked_campaign_member(&input.campaign_id, &input.member_id)?;
        let mut violations = Violations::default();
        let (after, size) = page_of(&mut violations, (input.page_size, &input.page_token));
        violations.into_result().map_err(CampaignError::from)?;
        let tree = app::referrals::tree(&self.db, &actor.tenant_id, (campaign_id, member_id), (after, size)).await?;
        Ok(Response::new(tree))
    }
}

/// A request's campaign and member, checked.
fn checked_campaign_member<'a>(campaign_id: &'a str, member_id: &'a str) -> Result<(&'a str, &'a str), CampaignError> {
    Ok((checked_campaign_id(campaign_id)?, checked_member_id(member_id)?))
}

/// A request's page: where it starts and its size, each checked into `violations`.
fn page_of(violations: &mut Violations, (size, token): (i32, &str)) -> (Option<String>, u64) {
    let size = violations.check(page::size(size)).unwrap_or_default();
    (violations.check(page::after(token)).flatten(), size)
}

/// A request's member id, checked.
fn checked_member_id(member_id: &str) -> Result<&str, CampaignError> {
    let mut violations = Violations::default();
    violations.text("member_id", member_id, 64, true);
    violations.into_result()?;
    Ok(member_id)
}

/// A request's campaign id, checked.
fn checked_campaign_id(campaign_id: &str) -> Result<&str, CampaignError> {
    if is_slug(campaign_id) {
        Ok(campaign_id)
    } else {
        Err(FieldViolation::new("campaign_id", "must be 1-64 of [a-z0-9_.-]").into())
    }
}
