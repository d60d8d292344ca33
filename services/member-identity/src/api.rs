//! The gRPC face of member-identity: authorises each call, validates and converts the request,
//! runs the use case (retrying a transaction that lost a race) and converts the answer.

use quanyu_runtime::clock::{Clock, from_proto, to_proto};
use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use prost_types::Timestamp;
use quanyu_proto::common::v1::Channel;
use quanyu_proto::identity::v1 as pb;
use quanyu_proto::identity::v1::member_identity_service_server::MemberIdentityService;
use quanyu_runtime::auth::{Access, Role, authorize, authorize_admin, is_slug};
use quanyu_runtime::db::with_retries;
use quanyu_runtime::error::{FieldViolation, Violations};
use quanyu_runtime::page;
use sea_orm::DatabaseConnection;
use tonic::{Request, Response, Status};

use crate::app;
use crate::convert::{binding_to_pb, consent_to_pb, gender_from_pb, identity_to_pb, life_stage_from_pb, member_to_pb};
use crate::domain::identity::{Identity, IdentityKind, Normaliser};
use crate::domain::merge::ConsentDecision;
use crate::domain::profile::{self, Gender, LifeStage, Profile, ProfilePatch};
use crate::domain::tags::{TagDefinition, TagKind};
use crate::error::IdentityError;
use crate::store::tag::TagTarget;
use crate::store::{self, entity};

/// Identities per enrolment.
const MAX_ENROLL_IDENTITIES: usize = 20;
/// Items per batch call (resolve, set and remove tags).
const MAX_BATCH: usize = 1000;
const MAX_TAGS_PER_CALL: usize = 20;

type Reply<T> = Result<Response<T>, Status>;

/// Resolving identities to members: a till looking up its buyer, or an analyst.
pub const RESOLVE: Access = Access::new("resolve", &[Role::Platform, Role::Service, Role::Pos, Role::Analyst]);
/// Enrolling a member: a till signing up its buyer.
pub const ENROLL: Access = Access::till("enroll");

pub struct MemberIdentityApi {
    db: DatabaseConnection,
    normaliser: Normaliser,
    /// The time changes are recorded at; tests move it.
    clock: Clock,
}

impl MemberIdentityApi {
    pub fn new(db: DatabaseConnection, normaliser: Normaliser, clock: Clock) -> Self {
        Self { db, normaliser, clock }
    }

    fn identity(&self, identity: Option<&pb::Identity>) -> Result<Identity, FieldViolation> {
        let identity = identity.ok_or_else(|| FieldViolation::new("", "is required"))?;
        let kind = match pb::IdentityKind::try_from(identity.kind) {
            Ok(pb::IdentityKind::Unspecified) => return Err(FieldViolation::new("kind", "is required")),
            Ok(kind) => kind_from_pb(kind),
            Err(_) => {
                return Err(FieldViolation::new(
                    "kind",
                    format!("{} is not an identity kind", identity.kind),
                ));
            }
        };
        self.normaliser.normalise(kind, &identity.namespace, &identity.value)
    }
}

fn kind_from_pb(kind: pb::IdentityKind) -> IdentityKind {
    match kind {
        pb::IdentityKind::Phone | pb::IdentityKind::Unspecified => IdentityKind::Phone,
        pb::IdentityKind::Email => IdentityKind::Email,
        pb::IdentityKind::WechatUnionid => IdentityKind::WechatUnionid,
        pb::IdentityKind::WechatOpenid => IdentityKind::WechatOpenid,
        pb::IdentityKind::TmallOuid => IdentityKind::TmallOuid,
        pb::IdentityKind::PhoneHash => IdentityKind::PhoneHash,
        pb::IdentityKind::JdPin => IdentityKind::JdPin,
        pb::IdentityKind::DouyinOpenid => IdentityKind::DouyinOpenid,
        pb::IdentityKind::PosCard => IdentityKind::PosCard,
        pb::IdentityKind::External => IdentityKind::External,
    }
}

fn time_from(field: &str, at: Option<&Timestamp>) -> Result<Option<DateTime<Utc>>, FieldViolation> {
    at.map(|at| {
        from_proto(at)
            .map(|at| chrono::SubsecRound::trunc_subsecs(at, 6))
            .ok_or_else(|| FieldViolation::new(field, "is not a valid timestamp"))
    })
    .transpose()
}

fn member_id(field: &str, id: &str) -> Result<String, FieldViolation> {
    let id = id.trim();
    if id.is_empty() {
        Err(FieldViolation::new(field, "is required"))
    } else if id.len() > 64 {
        Err(FieldViolation::new(field, "must be at most 64 characters"))
    } else {
        Ok(id.to_owned())
    }
}

fn slug(field: &str, value: &str) -> Result<String, FieldViolation> {
    if is_slug(value) {
        Ok(value.to_owned())
    } else {
        Err(FieldViolation::new(
            field,
            "must be 2-40 characters of [a-z0-9-], starting with a letter",
        ))
    }
}

fn display_name(field: &str, value: &str) -> Result<String, FieldViolation> {
    let value = value.trim();
    if value.is_empty() || value.chars().count() > 100 {
        Err(FieldViolation::new(field, "must be 1-100 characters"))
    } else {
        Ok(value.to_owned())
    }
}

/// A short free-text id (store, guide, source): at most `max` characters, no control characters.
fn short_text(field: &str, value: &str, max: usize) -> Result<String, FieldViolation> {
    let value = value.trim();
    if value.chars().count() > max || value.chars().any(char::is_control) {
        Err(FieldViolation::new(
            field,
            format!("must be at most {max} characters without control characters"),
        ))
    } else {
        Ok(value.to_owned())
    }
}

fn known_enum<T: TryFrom<i32>>(field: &str, value: i32) -> Result<T, FieldViolation> {
    T::try_from(value).map_err(|_| FieldViolation::new(field, format!("{value} is not a known value")))
}

fn today() -> chrono::NaiveDate {
    Utc::now().date_naive()
}

fn profile_from(profile: Option<&pb::Profile>) -> Result<Profile, Vec<FieldViolation>> {
    let Some(input) = profile else {
        return Ok(Profile::default());
    };
    let mut violations = Violations::default();
    let gender = violations.check(known_enum::<pb::Gender>("profile.gender", input.gender));
    let life_stage = violations.check(known_enum::<pb::LifeStage>("profile.life_stage", input.life_stage));
    let birthday = violations.check(profile::parse_birthday(&input.birthday, today()).map_err(|v| v.under("profile")));
    let profile = Profile {
        name: input.name.trim().to_owned(),
        gender: gender.map_or(Gender::Unspecified, gender_from_pb),
        birthday: birthday.flatten(),
        province: input.province.trim().to_owned(),
        city: input.city.trim().to_owned(),
        life_stage: life_stage.map_or(LifeStage::Unspecified, life_stage_from_pb),
        attributes: input.attributes.clone().into_iter().collect(),
    };
    if let Err(found) = profile.validate() {
        found
            .into_iter()
            .for_each(|violation| violations.push(violation.under("profile")));
    }
    violations.into_result()?;
    Ok(profile)
}

fn tenant_to_pb(tenant: entity::tenants::Model) -> pb::Tenant {
    pb::Tenant {
        tenant_id: tenant.id,
        display_name: tenant.display_name,
        created_at: Some(to_proto(tenant.created_at)),
    }
}

fn brand_to_pb(brand: entity::brands::Model) -> pb::Brand {
    pb::Brand {
        brand_id: brand.id,
        display_name: brand.display_name,
        created_at: Some(to_proto(brand.created_at)),
    }
}

fn tag_definition_to_pb((definition, created_at): (TagDefinition, DateTime<Utc>)) -> pb::TagDefinition {
    let kind = match definition.kind {
        TagKind::Label => pb::TagKind::Label,
        TagKind::Enum => pb::TagKind::Enum,
        TagKind::Number => pb::TagKind::Number,
    };
    pb::TagDefinition {
        name: definition.name,
        kind: kind.into(),
        allowed_values: definition.allowed_values,
        description: definition.description,
        created_at: Some(to_proto(created_at)),
    }
}

fn tag_results(member_ids: &[String], targets: Vec<TagTarget>) -> Vec<pb::TagResult> {
    member_ids
        .iter()
        .zip(targets)
        .map(|(member_id, target)| {
            let (outcome, applied_to) = match target {
                TagTarget::Applied(id) => (pb::TagOutcome::Applied, id),
                TagTarget::NotFound => (pb::TagOutcome::MemberNotFound, String::new()),
                TagTarget::Erased => (pb::TagOutcome::MemberErased, String::new()),
            };
            pb::TagResult {
                member_id: member_id.clone(),
                outcome: outcome.into(),
                applied_to_member_id: applied_to,
            }
        })
        .collect()
}

/// Checks a batch of member ids: 1 to 1,000, each well-formed.
fn member_ids(ids: &[String], violations: &mut Violations) -> Vec<String> {
    if ids.is_empty() || ids.len() > MAX_BATCH {
        violations.add("member_ids", format!("must hold 1-{MAX_BATCH} ids, got {}", ids.len()));
    }
    ids.iter()
        .enumerate()
        .filter_map(|(index, id)| violations.check(member_id(&format!("member_ids[{index}]"), id)))
        .collect()
}

fn next_token<T>(items: &[T], limit: u64, key: impl Fn(&T) -> &str) -> String {
    match items.last() {
        Some(last) if items.len() as u64 == limit => page::token(key(last)),
        _ => String::new(),
    }
}

fn paging(page_size: i32, page_token: &str, violations: &mut Violations) -> (u64, Option<String>) {
    let size = violations
        .check(page::size(page_size))
        .unwrap_or(page::DEFAULT_PAGE_SIZE);
    let after = violations.check(page::after(page_token)).flatten();
    (size, after)
}

#[tonic::async_trait]
impl MemberIdentityService for MemberIdentityApi {
    async fn create_tenant(&self, request: Request<pb::CreateTenantRequest>) -> Reply<pb::CreateTenantResponse> {
        authorize_admin(&request)?;
        let input = request.get_ref();
        let mut violations = Violations::default();
        let id = violations.check(slug("tenant_id", &input.tenant_id));
        let name = violations.check(display_name("display_name", &input.display_name));
        violations.into_result().map_err(IdentityError::from)?;
        let (id, name) = (id.unwrap_or_default(), name.unwrap_or_default());
        let tenant = with_retries(|| app::tenant::create_tenant(&self.db, &id, &name, self.clock.now())).await?;
        Ok(Response::new(pb::CreateTenantResponse {
            tenant: Some(tenant_to_pb(tenant)),
        }))
    }

    async fn get_tenant(&self, request: Request<pb::GetTenantRequest>) -> Reply<pb::GetTenantResponse> {
        authorize_admin(&request)?;
        let id = slug("tenant_id", &request.get_ref().tenant_id).map_err(IdentityError::from)?;
        let tenant = store::tenant::find(&self.db, &id)
            .await
            .map_err(IdentityError::from)?
            .ok_or_else(|| IdentityError::TenantNotFound(id.clone()))?;
        Ok(Response::new(pb::GetTenantResponse {
            tenant: Some(tenant_to_pb(tenant)),
        }))
    }

    async fn list_tenants(&self, request: Request<pb::ListTenantsRequest>) -> Reply<pb::ListTenantsResponse> {
        authorize_admin(&request)?;
        let input = request.get_ref();
        let mut violations = Violations::default();
        let (limit, after) = paging(input.page_size, &input.page_token, &mut violations);
        violations.into_result().map_err(IdentityError::from)?;
        let tenants = store::tenant::list(&self.db, after, limit)
            .await
            .map_err(IdentityError::from)?;
        let next_page_token = next_token(&tenants, limit, |tenant| &tenant.id);
        Ok(Response::new(pb::ListTenantsResponse {
            tenants: tenants.into_iter().map(tenant_to_pb).collect(),
            next_page_token,
        }))
    }

    async fn create_brand(&self, request: Request<pb::CreateBrandRequest>) -> Reply<pb::CreateBrandResponse> {
        let actor = authorize(&request, Access::WRITE)?;
        let input = request.get_ref();
        let mut violations = Violations::default();
        let id = violations.check(slug("brand_id", &input.brand_id));
        let name = violations.check(display_name("display_name", &input.display_name));
        violations.into_result().map_err(IdentityError::from)?;
        let (id, name) = (id.unwrap_or_default(), name.unwrap_or_default());
        let brand = with_retries(|| app::tenant::create_brand(&self.db, &actor, &id, &name, self.clock.now())).await?;
        Ok(Response::new(pb::CreateBrandResponse {
            brand: Some(brand_to_pb(brand)),
        }))
    }

    async fn list_brands(&self, request: Request<pb::ListBrandsRequest>) -> Reply<pb::ListBrandsResponse> {
        let actor = authorize(&request, Access::READ)?;
        let brands = store::tenant::brands(&self.db, &actor.tenant_id)
            .await
            .map_err(IdentityError::from)?;
        Ok(Response::new(pb::ListBrandsResponse {
            brands: brands.into_iter().map(brand_to_pb).collect(),
        }))
    }

    #[tracing::instrument(skip_all, fields(tenant))]
    async fn enroll_member(&self, request: Request<pb::EnrollMemberRequest>) -> Reply<pb::EnrollMemberResponse> {
        let actor = authorize(&request, ENROLL)?;
        tracing::Span::current().record("tenant", actor.tenant_id.as_ref());
        let input = request.get_ref();
        let mut violations = Violations::default();
        if input.identities.is_empty() || input.identities.len() > MAX_ENROLL_IDENTITIES {
            violations.add(
                "identities",
                format!(
                    "must hold 1-{MAX_ENROLL_IDENTITIES} identities, got {}",
                    input.identities.len()
                ),
            );
        }
        let identities: Vec<Identity> = input
            .identities
            .iter()
            .enumerate()
            .filter_map(|(index, identity)| {
                violations.check(
                    self.identity(Some(identity))
                        .map_err(|v| v.under(&format!("identities[{index}]"))),
                )
            })
            .collect();
        let profile = match profile_from(input.profile.as_ref()) {
            Ok(profile) => profile,
            Err(found) => {
                found.into_iter().for_each(|violation| violations.push(violation));
                Profile::default()
            }
        };
        let enrollment = input.enrollment.clone().unwrap_or_default();
        let channel = violations.check(known_enum::<Channel>("enrollment.channel", enrollment.channel));
        let brand_id = if enrollment.brand_id.is_empty() {
            Some(String::new())
        } else {
            violations.check(slug("enrollment.brand_id", &enrollment.brand_id))
        };
        let store_id = violations.check(short_text("enrollment.store_id", &enrollment.store_id, 64));
        let guide_id = violations.check(short_text("enrollment.guide_id", &enrollment.guide_id, 64));
        let referral_code = violations.check(short_text("enrollment.referral_code", &enrollment.referral_code, 64));
        let now = self.clock.now();
        let enrolled_at = input.enrolled_at.as_ref().and_then(|at| {
            let earliest = chrono::NaiveDate::from_ymd_opt(2000, 1, 1)
                .and_then(|day| day.and_hms_opt(0, 0, 0))
                .map(|midnight| midnight.and_utc())
                .unwrap_or_default();
            match quanyu_runtime::clock::from_proto(at) {
                Some(at) if at >= earliest && at <= now + chrono::Duration::minutes(5) => Some(at.min(now)),
                _ => {
                    violations.add("enrolled_at", "must be from 2000-01-01 to now");
                    None
                }
            }
        });
        violations.into_result().map_err(IdentityError::from)?;
        let command = app::member::EnrollCommand {
            identities,
            profile,
            enrollment: store::Enrollment {
                channel: channel.unwrap_or(Channel::Unspecified).as_str_name().to_owned(),
                brand_id: brand_id.unwrap_or_default(),
                store_id: store_id.unwrap_or_default(),
                guide_id: guide_id.unwrap_or_default(),
                referral_code: referral_code.unwrap_or_default(),
            },
            enrolled_at,
        };
        let (member, already_enrolled) =
            with_retries(|| app::member::enroll(&self.db, &actor, &command, self.clock.now())).await?;
        tracing::info!(member_id = %member.row.id, already_enrolled, "member enrolled");
        Ok(Response::new(pb::EnrollMemberResponse {
            member: Some(member_to_pb(&member)),
            already_enrolled,
        }))
    }

    async fn get_member(&self, request: Request<pb::GetMemberRequest>) -> Reply<pb::GetMemberResponse> {
        let actor = authorize(&request, Access::READ)?;
        let id = member_id("member_id", &request.get_ref().member_id).map_err(IdentityError::from)?;
        let member = app::member::get_member(&self.db, &actor.tenant_id, &id).await?;
        Ok(Response::new(pb::GetMemberResponse {
            member: Some(member_to_pb(&member)),
        }))
    }

    async fn update_profile(&self, request: Request<pb::UpdateProfileRequest>) -> Reply<pb::UpdateProfileResponse> {
        let actor = authorize(&request, Access::WRITE)?;
        let input = request.get_ref();
        let mut violations = Violations::default();
        let id = violations.check(member_id("member_id", &input.member_id));
        let gender = input
            .gender
            .and_then(|value| violations.check(known_enum::<pb::Gender>("gender", value)))
            .map(gender_from_pb);
        let life_stage = input
            .life_stage
            .and_then(|value| violations.check(known_enum::<pb::LifeStage>("life_stage", value)))
            .map(life_stage_from_pb);
        let birthday = input
            .birthday
            .as_deref()
            .and_then(|value| violations.check(profile::parse_birthday(value.trim(), today())));
        violations.into_result().map_err(IdentityError::from)?;
        let trimmed = |value: &Option<String>| value.as_deref().map(|v| v.trim().to_owned());
        let patch = ProfilePatch {
            name: trimmed(&input.name),
            gender,
            birthday,
            province: trimmed(&input.province),
            city: trimmed(&input.city),
            life_stage,
            set_attributes: input.set_attributes.clone().into_iter().collect::<BTreeMap<_, _>>(),
            remove_attributes: input.remove_attributes.clone(),
        };
        let id = id.unwrap_or_default();
        let member =
            with_retries(|| app::member::update_profile(&self.db, &actor, &id, patch.clone(), self.clock.now()))
                .await?;
        Ok(Response::new(pb::UpdateProfileResponse {
            member: Some(member_to_pb(&member)),
        }))
    }

    async fn list_members(&self, request: Request<pb::ListMembersRequest>) -> Reply<pb::ListMembersResponse> {
        let actor = authorize(&request, Access::READ)?;
        let input = request.get_ref();
        let mut violations = Violations::default();
        let (limit, after) = paging(input.page_size, &input.page_token, &mut violations);
        let filter = input.filter.clone().unwrap_or_default();
        let status = match violations.check(known_enum::<pb::MemberStatus>("filter.status", filter.status)) {
            Some(pb::MemberStatus::Merged) => "merged",
            Some(pb::MemberStatus::Erased) => "erased",
            _ => "active",
        };
        let enrolled_from = violations.check(time_from("filter.enrolled_from", filter.enrolled_from.as_ref()));
        let enrolled_until = violations.check(time_from("filter.enrolled_until", filter.enrolled_until.as_ref()));
        violations.into_result().map_err(IdentityError::from)?;
        let filter = store::member::MemberFilter {
            status: status.to_owned(),
            brand_id: filter.brand_id,
            store_id: filter.store_id,
            guide_id: filter.guide_id,
            city: filter.city,
            enrolled_from: enrolled_from.flatten(),
            enrolled_until: enrolled_until.flatten(),
        };
        let members = store::member::list(&self.db, &actor.tenant_id, &filter, after, limit).await?;
        let next_page_token = next_token(&members, limit, |member| &member.row.id);
        Ok(Response::new(pb::ListMembersResponse {
            members: members.iter().map(member_to_pb).collect(),
            next_page_token,
        }))
    }

    #[tracing::instrument(skip_all, fields(tenant, count))]
    async fn resolve_identities(
        &self,
        request: Request<pb::ResolveIdentitiesRequest>,
    ) -> Reply<pb::ResolveIdentitiesResponse> {
        let actor = authorize(&request, RESOLVE)?;
        let asked = &request.get_ref().identities;
        tracing::Span::current()
            .record("tenant", actor.tenant_id.as_ref())
            .record("count", asked.len());
        if asked.is_empty() || asked.len() > MAX_BATCH {
            return Err(IdentityError::invalid(
                "identities",
                format!("must hold 1-{MAX_BATCH} identities, got {}", asked.len()),
            )
            .into());
        }
        let parsed: Vec<Result<Identity, FieldViolation>> =
            asked.iter().map(|identity| self.identity(Some(identity))).collect();
        let valid: Vec<&Identity> = parsed.iter().filter_map(|parsed| parsed.as_ref().ok()).collect();
        let mut found = app::member::resolve(&self.db, &actor.tenant_id, &valid)
            .await?
            .into_iter();
        let resolutions = asked
            .iter()
            .zip(&parsed)
            .map(|(asked, parsed)| match parsed {
                Err(violation) => pb::Resolution {
                    identity: Some(asked.clone()),
                    outcome: pb::ResolveOutcome::Invalid.into(),
                    member_id: String::new(),
                    error: violation.to_string(),
                },
                Ok(identity) => {
                    let member_id = found.next().flatten();
                    let outcome = if member_id.is_some() {
                        pb::ResolveOutcome::Found
                    } else {
                        pb::ResolveOutcome::NotFound
                    };
                    pb::Resolution {
                        identity: Some(identity_to_pb(identity)),
                        outcome: outcome.into(),
                        member_id: member_id.unwrap_or_default(),
                        error: String::new(),
                    }
                }
            })
            .collect();
        Ok(Response::new(pb::ResolveIdentitiesResponse { resolutions }))
    }

    async fn link_identity(&self, request: Request<pb::LinkIdentityRequest>) -> Reply<pb::LinkIdentityResponse> {
        let actor = authorize(&request, Access::WRITE)?;
        let (id, identity) = self.member_and_identity(
            request.get_ref().member_id.as_str(),
            request.get_ref().identity.as_ref(),
        )?;
        let member =
            with_retries(|| app::member::link_identity(&self.db, &actor, &id, &identity, self.clock.now())).await?;
        Ok(Response::new(pb::LinkIdentityResponse {
            member: Some(member_to_pb(&member)),
        }))
    }

    async fn unlink_identity(&self, request: Request<pb::UnlinkIdentityRequest>) -> Reply<pb::UnlinkIdentityResponse> {
        let actor = authorize(&request, Access::WRITE)?;
        let (id, identity) = self.member_and_identity(
            request.get_ref().member_id.as_str(),
            request.get_ref().identity.as_ref(),
        )?;
        let member =
            with_retries(|| app::member::unlink_identity(&self.db, &actor, &id, &identity, self.clock.now())).await?;
        Ok(Response::new(pb::UnlinkIdentityResponse {
            member: Some(member_to_pb(&member)),
        }))
    }

    #[tracing::instrument(skip_all, fields(tenant))]
    async fn merge_members(&self, request: Request<pb::MergeMembersRequest>) -> Reply<pb::MergeMembersResponse> {
        let actor = authorize(&request, Access::WRITE)?;
        tracing::Span::current().record("tenant", actor.tenant_id.as_ref());
        let input = request.get_ref();
        let mut violations = Violations::default();
        let first = violations.check(member_id("member_id", &input.member_id));
        let second = violations.check(member_id("other_member_id", &input.other_member_id));
        if first.is_some() && first == second {
            violations.add("other_member_id", "must differ from member_id");
        }
        let survivor = input.survivor_id.trim();
        if !survivor.is_empty() && survivor != input.member_id.trim() && survivor != input.other_member_id.trim() {
            violations.add("survivor_id", "must be member_id, other_member_id or empty");
        }
        violations.into_result().map_err(IdentityError::from)?;
        let (first, second) = (first.unwrap_or_default(), second.unwrap_or_default());
        let explicit = (!survivor.is_empty()).then_some(survivor);
        let outcome =
            with_retries(|| app::merge::merge(&self.db, &actor, &first, &second, explicit, self.clock.now())).await?;
        tracing::info!(
            survivor = %outcome.survivor.row.id,
            merged = %outcome.merged_member_id,
            already_merged = outcome.already_merged,
            "members merged"
        );
        Ok(Response::new(pb::MergeMembersResponse {
            survivor: Some(member_to_pb(&outcome.survivor)),
            merged_member_id: outcome.merged_member_id,
            already_merged: outcome.already_merged,
        }))
    }

    async fn erase_member(&self, request: Request<pb::EraseMemberRequest>) -> Reply<pb::EraseMemberResponse> {
        let actor = authorize(&request, Access::WRITE)?;
        let input = request.get_ref();
        let mut violations = Violations::default();
        let id = violations.check(member_id("member_id", &input.member_id));
        let reason = violations.check(short_text("reason", &input.reason, 200));
        violations.into_result().map_err(IdentityError::from)?;
        let (id, reason) = (id.unwrap_or_default(), reason.unwrap_or_default());
        let member = with_retries(|| app::member::erase(&self.db, &actor, &id, &reason, self.clock.now())).await?;
        tracing::info!(member_id = %id, "member erased");
        Ok(Response::new(pb::EraseMemberResponse {
            member: Some(member_to_pb(&member)),
        }))
    }

    async fn define_tag(&self, request: Request<pb::DefineTagRequest>) -> Reply<pb::DefineTagResponse> {
        let actor = authorize(&request, Access::WRITE)?;
        let input = request.get_ref();
        let kind = match known_enum::<pb::TagKind>("kind", input.kind).map_err(IdentityError::from)? {
            pb::TagKind::Unspecified => return Err(IdentityError::invalid("kind", "is required").into()),
            pb::TagKind::Label => TagKind::Label,
            pb::TagKind::Enum => TagKind::Enum,
            pb::TagKind::Number => TagKind::Number,
        };
        let definition = TagDefinition {
            name: input.name.trim().to_owned(),
            kind,
            allowed_values: input
                .allowed_values
                .iter()
                .map(|value| value.trim().to_owned())
                .collect(),
            description: input.description.trim().to_owned(),
        };
        definition.validate().map_err(IdentityError::from)?;
        let defined = with_retries(|| app::tag::define_tag(&self.db, &actor, &definition, self.clock.now())).await?;
        Ok(Response::new(pb::DefineTagResponse {
            tag: Some(tag_definition_to_pb(defined)),
        }))
    }

    async fn list_tag_definitions(
        &self,
        request: Request<pb::ListTagDefinitionsRequest>,
    ) -> Reply<pb::ListTagDefinitionsResponse> {
        let actor = authorize(&request, Access::READ)?;
        let tags = store::tag::definitions(&self.db, &actor.tenant_id, None)
            .await
            .map_err(IdentityError::from)?;
        Ok(Response::new(pb::ListTagDefinitionsResponse {
            tags: tags.into_iter().map(tag_definition_to_pb).collect(),
        }))
    }

    async fn set_tags(&self, request: Request<pb::SetTagsRequest>) -> Reply<pb::SetTagsResponse> {
        let actor = authorize(&request, Access::WRITE)?;
        let input = request.get_ref();
        let mut violations = Violations::default();
        let ids = member_ids(&input.member_ids, &mut violations);
        if input.tags.is_empty() || input.tags.len() > MAX_TAGS_PER_CALL {
            violations.add(
                "tags",
                format!("must hold 1-{MAX_TAGS_PER_CALL} tags, got {}", input.tags.len()),
            );
        }
        let tags: Vec<(String, String)> = input
            .tags
            .iter()
            .map(|tag| (tag.name.trim().to_owned(), tag.value.trim().to_owned()))
            .collect();
        violations.into_result().map_err(IdentityError::from)?;
        let targets = with_retries(|| app::tag::set_tags(&self.db, &actor, &ids, &tags, self.clock.now())).await?;
        Ok(Response::new(pb::SetTagsResponse {
            results: tag_results(&ids, targets),
        }))
    }

    async fn remove_tags(&self, request: Request<pb::RemoveTagsRequest>) -> Reply<pb::RemoveTagsResponse> {
        let actor = authorize(&request, Access::WRITE)?;
        let input = request.get_ref();
        let mut violations = Violations::default();
        let ids = member_ids(&input.member_ids, &mut violations);
        if input.tag_names.is_empty() || input.tag_names.len() > MAX_TAGS_PER_CALL {
            violations.add(
                "tag_names",
                format!("must hold 1-{MAX_TAGS_PER_CALL} names, got {}", input.tag_names.len()),
            );
        }
        violations.into_result().map_err(IdentityError::from)?;
        let names: Vec<String> = input.tag_names.iter().map(|name| name.trim().to_owned()).collect();
        let targets = with_retries(|| app::tag::remove_tags(&self.db, &actor, &ids, &names, self.clock.now())).await?;
        Ok(Response::new(pb::RemoveTagsResponse {
            results: tag_results(&ids, targets),
        }))
    }

    async fn list_members_by_tag(
        &self,
        request: Request<pb::ListMembersByTagRequest>,
    ) -> Reply<pb::ListMembersByTagResponse> {
        let actor = authorize(&request, Access::READ)?;
        let input = request.get_ref();
        let mut violations = Violations::default();
        if !profile::is_key(&input.tag_name) {
            violations.add("tag_name", "must be 1-64 characters of [a-z0-9_]");
        }
        let (limit, after) = paging(input.page_size, &input.page_token, &mut violations);
        violations.into_result().map_err(IdentityError::from)?;
        let tagged = store::tag::members_with(
            &self.db,
            &actor.tenant_id,
            &input.tag_name,
            input.value.trim(),
            after,
            limit,
        )
        .await
        .map_err(IdentityError::from)?;
        let next_page_token = next_token(&tagged, limit, |tag| &tag.member_id);
        Ok(Response::new(pb::ListMembersByTagResponse {
            members: tagged
                .into_iter()
                .map(|tag| pb::TaggedMember {
                    member_id: tag.member_id,
                    value: tag.value,
                    tagged_at: Some(to_proto(tag.tagged_at)),
                })
                .collect(),
            next_page_token,
        }))
    }

    async fn set_consent(&self, request: Request<pb::SetConsentRequest>) -> Reply<pb::SetConsentResponse> {
        let actor = authorize(&request, Access::WRITE)?;
        let input = request.get_ref();
        let mut violations = Violations::default();
        let id = violations.check(member_id("member_id", &input.member_id));
        let channel = match violations.check(known_enum::<pb::ContactChannel>("channel", input.channel)) {
            Some(pb::ContactChannel::Unspecified) => {
                violations.add("channel", "is required");
                None
            }
            channel => channel,
        };
        let source = violations.check(short_text("source", &input.source, 128));
        if source.as_deref() == Some("") {
            violations.add("source", "is required: where the decision was collected");
        }
        let now = self.clock.now();
        let decided_at = violations
            .check(time_from("decided_at", input.decided_at.as_ref()))
            .flatten();
        if decided_at.is_some_and(|at| at > now + chrono::Duration::minutes(5)) {
            violations.add("decided_at", "must not be in the future");
        }
        violations.into_result().map_err(IdentityError::from)?;
        let decision = ConsentDecision {
            channel: channel.map(|c| c.as_str_name().to_owned()).unwrap_or_default(),
            granted: input.granted,
            decided_at: decided_at.unwrap_or(now),
            source: source.unwrap_or_default(),
        };
        let id = id.unwrap_or_default();
        let (consent, applied) =
            with_retries(|| app::consent::set_consent(&self.db, &actor, &id, decision.clone(), self.clock.now()))
                .await?;
        Ok(Response::new(pb::SetConsentResponse {
            consent: Some(consent_to_pb(&consent)),
            applied,
        }))
    }

    async fn bind_guide(&self, request: Request<pb::BindGuideRequest>) -> Reply<pb::BindGuideResponse> {
        let actor = authorize(&request, Access::WRITE)?;
        let input = request.get_ref();
        let mut violations = Violations::default();
        let id = violations.check(member_id("member_id", &input.member_id));
        let store_id = violations.check(short_text("store_id", &input.store_id, 64));
        let guide_id = violations.check(short_text("guide_id", &input.guide_id, 64));
        let source = violations.check(short_text("source", &input.source, 64));
        for (field, value) in [("store_id", &store_id), ("guide_id", &guide_id)] {
            if value.as_deref() == Some("") {
                violations.add(field, "is required");
            }
        }
        violations.into_result().map_err(IdentityError::from)?;
        let (id, store_id, guide_id, source) = (
            id.unwrap_or_default(),
            store_id.unwrap_or_default(),
            guide_id.unwrap_or_default(),
            source.unwrap_or_default(),
        );
        let binding = with_retries(|| {
            app::guide::bind_guide(&self.db, &actor, &id, &store_id, &guide_id, &source, self.clock.now())
        })
        .await?;
        Ok(Response::new(pb::BindGuideResponse {
            binding: Some(binding_to_pb(&binding)),
        }))
    }

    async fn list_guide_bindings(
        &self,
        request: Request<pb::ListGuideBindingsRequest>,
    ) -> Reply<pb::ListGuideBindingsResponse> {
        let actor = authorize(&request, Access::READ)?;
        let id = member_id("member_id", &request.get_ref().member_id).map_err(IdentityError::from)?;
        let bindings = app::guide::list_guide_bindings(&self.db, &actor.tenant_id, &id).await?;
        Ok(Response::new(pb::ListGuideBindingsResponse {
            bindings: bindings.iter().map(binding_to_pb).collect(),
        }))
    }

    async fn list_audit_entries(
        &self,
        request: Request<pb::ListAuditEntriesRequest>,
    ) -> Reply<pb::ListAuditEntriesResponse> {
        let actor = authorize(&request, Access::READ)?;
        let input = request.get_ref();
        let mut violations = Violations::default();
        let (limit, before) = paging(input.page_size, &input.page_token, &mut violations);
        violations.into_result().map_err(IdentityError::from)?;
        let entries = store::audit::list(&self.db, &actor.tenant_id, input.member_id.trim(), before, limit)
            .await
            .map_err(IdentityError::from)?;
        let next_page_token = next_token(&entries, limit, |entry| &entry.id);
        Ok(Response::new(pb::ListAuditEntriesResponse {
            entries: entries
                .into_iter()
                .map(|entry| pb::AuditEntry {
                    entry_id: entry.id,
                    actor: entry.actor,
                    action: entry.action,
                    member_id: entry.member_id,
                    changed: serde_json::from_str(&entry.changed).unwrap_or_default(),
                    occurred_at: Some(to_proto(entry.occurred_at)),
                })
                .collect(),
            next_page_token,
        }))
    }
}

impl MemberIdentityApi {
    fn member_and_identity(
        &self,
        id: &str,
        identity: Option<&pb::Identity>,
    ) -> Result<(String, Identity), IdentityError> {
        let mut violations = Violations::default();
        let id = violations.check(member_id("member_id", id));
        let identity = violations.check(self.identity(identity).map_err(|v| v.under("identity")));
        violations.into_result()?;
        Ok((
            id.unwrap_or_default(),
            identity.ok_or_else(|| IdentityError::invalid("identity", "is required"))?,
        ))
    }
}
