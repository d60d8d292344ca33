//! The gRPC face of loyalty-points: authorises each call, validates and converts the request,
//! resolves buyers through member-identity, runs the use case and converts the answer.

use std::collections::HashMap;
use std::fmt::Display;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use prost::Message;
use quanyu_proto::common::v1::{Channel, Money};
use quanyu_proto::identity::v1 as identity_pb;
use quanyu_proto::identity::v1::member_identity_service_client::MemberIdentityServiceClient;
use quanyu_proto::points::v1 as pb;
use quanyu_proto::points::v1::points_service_server::PointsService;
use quanyu_runtime::auth::{Access, BearerKey, Role, TenantActor, authorize, is_slug};
use quanyu_runtime::clock::{Clock, from_proto, to_proto};
use quanyu_runtime::db::{TUNING, with_retries};
use quanyu_runtime::error::{FieldViolation, Violations};
use quanyu_runtime::page;
use sea_orm::DatabaseConnection;
use tonic::transport::Channel as GrpcChannel;
use tonic::{Request, Response, Status};

use crate::domain::earning::{SaleContext, SaleLine};
use crate::error::PointsError;
use crate::program::ProgramRules;
use crate::sales_writer::{MAX_BATCH, SalesWriter};
use crate::store::batch_answers;
use crate::store::sales::{Plan, PreparedSale, Programs};
use crate::store::{self, AccountKey, Change};

type Reply<T> = Result<Response<T>, Status>;

/// Syncing sales and refunds from a till or a shop.
pub const SYNC: Access = Access::till("sync");
/// Redeeming and holding points at a till.
pub const REDEEM: Access = Access::till("redeem");
/// Reading a balance: the till that shows it, or an analyst.
pub const READ_BALANCE: Access = Access::new(
    "read-balance",
    &[Role::Platform, Role::Service, Role::Pos, Role::Analyst],
);

/// How loyalty-points reaches member-identity.
#[derive(Clone)]
pub struct IdentityClient {
    channel: GrpcChannel,
    service_key: String,
}

impl IdentityClient {
    pub fn new(channel: GrpcChannel, service_key: String) -> Self {
        Self { channel, service_key }
    }

    fn client(
        &self,
        tenant_id: &str,
    ) -> Result<
        MemberIdentityServiceClient<tonic::service::interceptor::InterceptedService<GrpcChannel, BearerKey>>,
        PointsError,
    > {
        let bearer = BearerKey::new(&self.service_key)
            .and_then(|bearer| bearer.for_tenant(tenant_id))
            .map_err(|error| PointsError::Identity(format!("invalid service key: {error}")))?;
        Ok(MemberIdentityServiceClient::with_interceptor(
            self.channel.clone(),
            bearer,
        ))
    }
}

pub struct PointsApi {
    db: DatabaseConnection,
    identity: IdentityClient,
    clock: Clock,
    /// Programs by tenant, read at most every `PROGRAM_CACHE_TTL` (a change made through another
    /// replica takes that long to apply here; through this one, at once).
    programs: Mutex<HashMap<String, (Instant, Arc<Programs>)>>,
    writer: SalesWriter,
}

const PROGRAM_CACHE_TTL: Duration = Duration::from_secs(2);

impl PointsApi {
    /// `sales_writers` shared and `batch_writers` large calls' transactions write sales at once
    /// (see [`SalesWriter`]).
    pub fn new(
        db: DatabaseConnection,
        identity: IdentityClient,
        clock: Clock,
        sales_writers: usize,
        batch_writers: usize,
    ) -> Self {
        Self {
            writer: SalesWriter::spawn(db.clone(), clock.clone(), sales_writers, batch_writers),
            db,
            identity,
            clock,
            programs: Mutex::new(HashMap::new()),
        }
    }

    async fn programs(&self, tenant_id: &str) -> Result<Arc<Programs>, PointsError> {
        let cached = self.cached_programs().get(tenant_id).cloned();
        if let Some((read_at, programs)) = cached
            && read_at.elapsed() < PROGRAM_CACHE_TTL
        {
            return Ok(programs);
        }
        let programs = Arc::new(store::program_rules(&self.db, tenant_id).await?);
        self.cached_programs()
            .insert(tenant_id.to_owned(), (Instant::now(), programs.clone()));
        Ok(programs)
    }

    fn cached_programs(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Instant, Arc<Programs>)>> {
        // A panic while holding the lock cannot leave the cache inconsistent: entries are whole.
        self.programs.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The program an account reference names: the given id, else the tenant-wide program.
    async fn program_for(&self, tenant_id: &str, program_id: &str) -> Result<(ProgramRules, u32), PointsError> {
        let programs = self.programs(tenant_id).await?;
        let id = if program_id.is_empty() {
            programs
                .iter()
                .find(|(_, (rules, _))| rules.brand_id.is_empty())
                .map(|(id, _)| id.clone())
                .ok_or_else(|| PointsError::ProgramNotFound("(tenant-wide)".into()))?
        } else {
            program_id.to_owned()
        };
        programs.get(&id).cloned().ok_or(PointsError::ProgramNotFound(id))
    }

    async fn run_change(
        &self,
        actor: &TenantActor,
        account: Option<&pb::AccountRef>,
        change: impl Fn() -> Change,
        idempotency: Option<(&str, &str, Vec<u8>)>,
    ) -> Result<store::Changed, PointsError> {
        let account = account.cloned().unwrap_or_default();
        let asked = member_id(&account.member_id).map_err(|v| PointsError::from(vec![v.under("account")]))?;
        let member_id = store::current_members(&self.db, &actor.tenant_id, std::slice::from_ref(&asked))
            .await?
            .remove(&asked)
            .unwrap_or(asked);
        let (program, version) = self.program_for(&actor.tenant_id, &account.program_id).await?;
        let key = AccountKey {
            actor,
            program: &program,
            rules_version: version,
            member_id: &member_id,
        };
        let at = self.clock.now();
        with_retries(|| store::change(&self.db, &key, change(), idempotency.clone(), at)).await
    }
}

fn member_id(id: &str) -> Result<String, FieldViolation> {
    match id.trim() {
        "" => Err(FieldViolation::new("member_id", "is required")),
        id if id.len() > 64 => Err(FieldViolation::new("member_id", "must be at most 64 characters")),
        id => Ok(id.to_owned()),
    }
}

fn idempotency_key(key: &str) -> Result<String, FieldViolation> {
    if (1..=128).contains(&key.len()) && !key.chars().any(char::is_control) {
        Ok(key.to_owned())
    } else {
        Err(FieldViolation::new("idempotency_key", "is required: 1-128 characters"))
    }
}

fn time(at: Option<&prost_types::Timestamp>) -> Option<DateTime<Utc>> {
    from_proto(at?)
}

// Field names are formatted only for a violation: most sales have none, and a 1,000-sale batch
// would otherwise build thousands of names for nothing.
fn money(field: impl Display, amount: Option<&Money>, currency: Option<&str>, violations: &mut Violations) -> i64 {
    let Some(amount) = amount else {
        violations.add(field.to_string(), "is required");
        return 0;
    };
    let code_ok = amount.currency.len() == 3 && amount.currency.chars().all(|c| c.is_ascii_uppercase());
    if !code_ok {
        violations.add(format!("{field}.currency"), "must be an ISO 4217 code such as CNY");
    } else if currency.is_some_and(|currency| currency != amount.currency) {
        violations.add(format!("{field}.currency"), "must be the sale's currency");
    }
    if amount.amount_minor < 0 {
        violations.add(format!("{field}.amount_minor"), "must not be negative");
    }
    amount.amount_minor
}

fn text(field: impl Display, value: &str, max: usize, required: bool, violations: &mut Violations) {
    if required && value.is_empty() {
        violations.add(field.to_string(), "is required");
    } else if value.chars().count() > max || value.chars().any(char::is_control) {
        violations.add(
            field.to_string(),
            format!("must be at most {max} characters without control characters"),
        );
    }
}

/// What the validation of one sale found out.
struct Checked {
    kind: pb::SaleKind,
    program_id: Option<String>,
    lines: Vec<SaleLine>,
    amount_minor: i64,
}

fn check_sale(sale: &pb::Sale, programs: &Programs, now: DateTime<Utc>) -> Result<Checked, Vec<FieldViolation>> {
    let mut violations = Violations::default();
    text("source", &sale.source, 64, true, &mut violations);
    text("transaction_id", &sale.transaction_id, 128, true, &mut violations);
    let kind = match pb::SaleKind::try_from(sale.kind) {
        Ok(pb::SaleKind::Unspecified) | Err(_) => {
            violations.add("kind", "must be SALE_KIND_SALE or SALE_KIND_REFUND");
            pb::SaleKind::Unspecified
        }
        Ok(kind) => kind,
    };
    if kind == pb::SaleKind::Refund {
        text(
            "original_transaction_id",
            &sale.original_transaction_id,
            128,
            true,
            &mut violations,
        );
        if sale.points_redeemed != 0 {
            violations.add("points_redeemed", "a refund redeems nothing");
        }
    }
    if Channel::try_from(sale.channel).is_err() {
        violations.add("channel", format!("{} is not a channel", sale.channel));
    }
    text("store_id", &sale.store_id, 64, false, &mut violations);
    match time(sale.occurred_at.as_ref()) {
        None => violations.add("occurred_at", "is required"),
        Some(at) if at > now + chrono::Duration::minutes(5) => violations.add("occurred_at", "is in the future"),
        Some(_) => {}
    }
    let amount_minor = money("amount", sale.amount.as_ref(), None, &mut violations);
    let currency = sale.amount.as_ref().map(|amount| amount.currency.as_str());
    let mut lines = Vec::new();
    for (index, line) in sale.lines.iter().enumerate() {
        text(
            format_args!("lines[{index}].sku"),
            &line.sku,
            64,
            false,
            &mut violations,
        );
        text(
            format_args!("lines[{index}].category"),
            &line.category,
            64,
            false,
            &mut violations,
        );
        if line.quantity <= 0 {
            violations.add(format!("lines[{index}].quantity"), "must be positive");
        }
        let amount = money(
            format_args!("lines[{index}].amount"),
            line.amount.as_ref(),
            currency,
            &mut violations,
        );
        lines.push(SaleLine {
            category: line.category.clone(),
            amount_minor: amount,
        });
    }
    if lines.is_empty() {
        lines.push(SaleLine {
            category: String::new(),
            amount_minor,
        });
    }
    if sale.points_redeemed < 0 {
        violations.add("points_redeemed", "must not be negative");
    }
    if let Some(buyer) = &sale.buyer {
        match &buyer.who {
            Some(pb::buyer::Who::MemberId(id)) => {
                violations.check(member_id(id).map_err(|v| v.under("buyer")));
            }
            Some(pb::buyer::Who::Identity(identity)) if identity.kind == 0 => {
                violations.add("buyer.identity.kind", "is required");
            }
            Some(pb::buyer::Who::Identity(_)) => {}
            None => violations.add("buyer", "names neither a member id nor an identity"),
        }
    }
    let program_id = if kind == pb::SaleKind::Sale {
        if !sale.brand_id.is_empty() && !is_slug(&sale.brand_id) {
            violations.add("brand_id", "must be empty or a brand id");
        }
        let for_brand = programs.iter().find(|(_, (rules, _))| rules.brand_id == sale.brand_id);
        let tenant_wide = programs.iter().find(|(_, (rules, _))| rules.brand_id.is_empty());
        match for_brand.or(tenant_wide) {
            Some((id, _)) => Some(id.clone()),
            None => {
                violations.add(
                    "brand_id",
                    "no program earns for this brand (configure one with UpsertProgram)",
                );
                None
            }
        }
    } else {
        None
    };
    violations.into_result()?;
    Ok(Checked {
        kind,
        program_id,
        lines,
        amount_minor,
    })
}

fn rejection(index: usize, violations: Vec<FieldViolation>) -> pb::SaleResult {
    let violations = violations
        .into_iter()
        .map(|violation| pb::FieldViolation {
            field: violation.field,
            description: violation.description,
        })
        .collect();
    store::sales::rejected(i32::try_from(index).unwrap_or(i32::MAX), violations)
}

impl PointsApi {
    /// Records one batch of sales (RecordSales, or one chunk of UploadSales).
    #[tracing::instrument(skip_all, fields(tenant, sales))]
    async fn record_batch(
        &self,
        actor: &TenantActor,
        mut sales: Vec<pb::Sale>,
    ) -> Result<Vec<pb::SaleResult>, PointsError> {
        tracing::Span::current()
            .record("tenant", actor.tenant_id.as_ref())
            .record("sales", sales.len());
        if sales.is_empty() || sales.len() > MAX_BATCH {
            let why = format!("must hold 1-{MAX_BATCH} sales, got {}", sales.len());
            return Err(PointsError::invalid("sales", why));
        }
        let digest = (sales.len() >= TUNING.kept_answers_from).then(|| batch_answers::digest(&sales));
        if let Some(digest) = &digest
            && let Some(results) = batch_answers::find(&self.db, &actor.tenant_id, digest).await?
        {
            tracing::info!(batch = results.len(), "batch replayed");
            return Ok(results);
        }
        let programs = self.programs(&actor.tenant_id).await?;
        let now = self.clock.now();
        let mut results: Vec<Option<pb::SaleResult>> = vec![None; sales.len()];
        let mut checked = Vec::new();
        for (index, sale) in sales.iter().enumerate() {
            match check_sale(sale, &programs, now) {
                Ok(ok) => checked.push((index, ok)),
                Err(violations) => results[index] = Some(rejection(index, violations)),
            }
        }
        // Replays are answered from what was recorded: their buyers need no resolving or enrolling.
        // Without buyers to resolve, the writer decides whether to read it (see `SalesWriter`).
        let resolves = checked.iter().any(|(index, check)| {
            let buyer = sales[*index].buyer.as_ref().and_then(|buyer| buyer.who.as_ref());
            check.kind == pb::SaleKind::Sale && matches!(buyer, Some(pb::buyer::Who::Identity(_)))
        });
        let recorded = if resolves {
            let keys: Vec<(String, String)> = checked
                .iter()
                .map(|(index, _)| (sales[*index].source.clone(), sales[*index].transaction_id.clone()))
                .collect();
            Some(store::recordings(&self.db, &actor.tenant_id, &keys).await?)
        } else {
            None
        };
        let is_replay = |sale: &pb::Sale| {
            recorded
                .as_ref()
                .is_some_and(|recorded| recorded.contains(&sale.source, &sale.transaction_id))
        };
        // One resolve call for every identity buyer of the batch.
        let mut wanted = Vec::new();
        let mut enroll = Vec::new();
        let mut asked_by = Vec::new();
        for (index, check) in &checked {
            let sale = &sales[*index];
            if is_replay(sale) {
                continue;
            }
            if let (pb::SaleKind::Sale, Some(pb::buyer::Who::Identity(identity))) =
                (check.kind, sale.buyer.as_ref().and_then(|buyer| buyer.who.as_ref()))
            {
                let auto = check
                    .program_id
                    .as_ref()
                    .and_then(|id| programs.get(id))
                    .is_some_and(|(p, _)| p.auto_enroll);
                wanted.push(identity.clone());
                enroll.push(auto);
                asked_by.push(*index);
            }
        }
        let resolved: HashMap<usize, Result<Option<String>, String>> = asked_by
            .into_iter()
            .zip(self.resolve_buyers(&actor.tenant_id, wanted, &enroll).await?)
            .collect();
        let mut prepared = Vec::new();
        for (index, check) in checked {
            // Each sale is needed once more, as the prepared sale's own.
            let sale = std::mem::take(&mut sales[index]);
            let plan = match check.kind {
                pb::SaleKind::Refund => Plan::Refund {
                    original_key: sale.original_transaction_id.clone(),
                    refund_minor: check.amount_minor,
                },
                _ => {
                    let member = match sale.buyer.as_ref().and_then(|buyer| buyer.who.as_ref()) {
                        // The sale's transaction follows merges to the survivor.
                        Some(pb::buyer::Who::MemberId(id)) => Ok(Some(id.trim().to_owned())),
                        Some(pb::buyer::Who::Identity(_)) => resolved.get(&index).cloned().unwrap_or(Ok(None)),
                        None => Ok(None),
                    };
                    match (member, check.program_id) {
                        (Err(why), _) => {
                            results[index] = Some(rejection(index, vec![FieldViolation::new("buyer.identity", why)]));
                            continue;
                        }
                        (Ok(Some(member_id)), Some(program_id)) => Plan::Earn {
                            member_id,
                            program_id,
                            lines: check.lines,
                            redeem: sale.points_redeemed,
                            context: SaleContext {
                                tier: String::new(),
                                channel: Channel::try_from(sale.channel)
                                    .unwrap_or(Channel::Unspecified)
                                    .as_str_name()
                                    .to_owned(),
                                store: sale.store_id.clone(),
                                at: time(sale.occurred_at.as_ref()).unwrap_or(now),
                            },
                        },
                        _ => Plan::NonMember,
                    }
                }
            };
            prepared.push(PreparedSale {
                index: i32::try_from(index).unwrap_or(i32::MAX),
                source: sale.source.clone(),
                key: sale.transaction_id.clone(),
                sale,
                plan,
            });
        }
        let applied = self.writer.write(actor, programs, prepared, recorded).await?;
        for result in applied {
            let index = usize::try_from(result.index).unwrap_or_default();
            results[index] = Some(result);
        }
        let results: Vec<pb::SaleResult> = results.into_iter().flatten().collect();
        let rejected = results
            .iter()
            .filter(|r| r.outcome == i32::from(pb::SaleOutcome::Rejected))
            .count();
        tracing::info!(batch = results.len(), rejected, "sales recorded");
        // The sales are recorded whatever happens here: failing to keep the answer only leaves a
        // replay to be answered sale by sale.
        if let Some(digest) = digest
            && let Err(error) = batch_answers::keep(&self.db, &actor.tenant_id, digest, &results, now).await
        {
            tracing::warn!(%error, "could not keep the batch's answer for replays");
        }
        Ok(results)
    }

    /// Finds (or, where the program says so, enrols) the members behind the sales' identities.
    async fn resolve_buyers(
        &self,
        tenant_id: &str,
        identities: Vec<identity_pb::Identity>,
        enroll: &[bool],
    ) -> Result<Vec<Result<Option<String>, String>>, PointsError> {
        if identities.is_empty() {
            return Ok(Vec::new());
        }
        let mut client = self.identity.client(tenant_id)?;
        let resolutions = client
            .resolve_identities(identity_pb::ResolveIdentitiesRequest {
                identities: identities.clone(),
            })
            .await?
            .into_inner()
            .resolutions;
        let mut buyers = Vec::with_capacity(identities.len());
        for ((resolution, identity), enroll) in resolutions.into_iter().zip(identities).zip(enroll) {
            let outcome = identity_pb::ResolveOutcome::try_from(resolution.outcome);
            buyers.push(match outcome {
                Ok(identity_pb::ResolveOutcome::Found) => Ok(Some(resolution.member_id)),
                Ok(identity_pb::ResolveOutcome::Invalid) => Err(resolution.error),
                _ if *enroll => {
                    let enrolled = client
                        .enroll_member(identity_pb::EnrollMemberRequest {
                            identities: vec![identity],
                            ..Default::default()
                        })
                        .await?
                        .into_inner();
                    Ok(enrolled.member.map(|member| member.member_id))
                }
                _ => Ok(None),
            });
        }
        Ok(buyers)
    }
}

#[tonic::async_trait]
impl PointsService for PointsApi {
    async fn upsert_program(&self, request: Request<pb::UpsertProgramRequest>) -> Reply<pb::UpsertProgramResponse> {
        let actor = authorize(&request, Access::WRITE)?;
        let program = request.into_inner().program.unwrap_or_default();
        ProgramRules::from_pb(&program, 0).map_err(PointsError::InvalidInput)?;
        let encode = |version: u32| {
            pb::Program {
                rules_version: version,
                ..program.clone()
            }
            .encode_to_vec()
        };
        let stored = with_retries(|| {
            store::upsert_program(
                &self.db,
                &actor.tenant_id,
                &program.program_id,
                &program.brand_id,
                encode,
            )
        })
        .await?;
        self.cached_programs().remove(actor.tenant_id.as_ref());
        let program = pb::Program {
            rules_version: stored.rules_version,
            ..program
        };
        Ok(Response::new(pb::UpsertProgramResponse { program: Some(program) }))
    }

    async fn get_program(&self, request: Request<pb::GetProgramRequest>) -> Reply<pb::GetProgramResponse> {
        let actor = authorize(&request, Access::READ)?;
        let wanted = request.get_ref().program_id.clone();
        let row = store::programs(&self.db, &actor.tenant_id)
            .await?
            .into_iter()
            .find(|row| row.id == wanted)
            .ok_or(PointsError::ProgramNotFound(wanted))?;
        let program = pb::Program::decode(row.definition.as_slice()).unwrap_or_default();
        Ok(Response::new(pb::GetProgramResponse { program: Some(program) }))
    }

    async fn record_sales(&self, request: Request<pb::RecordSalesRequest>) -> Reply<pb::RecordSalesResponse> {
        let actor = authorize(&request, SYNC)?;
        let results = self.record_batch(&actor, request.into_inner().sales).await?;
        Ok(Response::new(pb::RecordSalesResponse { results }))
    }

    async fn upload_sales(
        &self,
        request: Request<tonic::Streaming<pb::UploadSalesRequest>>,
    ) -> Reply<pb::UploadSalesResponse> {
        let actor = authorize(&request, SYNC)?;
        let mut chunks = request.into_inner();
        let mut summary = pb::UploadSalesResponse::default();
        let mut offset = 0i32;
        while let Some(chunk) = chunks.message().await? {
            let count = i32::try_from(chunk.sales.len()).unwrap_or(i32::MAX);
            for mut result in self.record_batch(&actor, chunk.sales).await? {
                match pb::SaleOutcome::try_from(result.outcome) {
                    Ok(pb::SaleOutcome::Applied) => summary.applied += 1,
                    Ok(pb::SaleOutcome::Duplicate) => summary.duplicates += 1,
                    _ => {
                        summary.rejected += 1;
                        result.index += offset;
                        summary.rejections.push(result);
                    }
                }
            }
            offset = offset.saturating_add(count);
            tracing::info!(uploaded = offset, "sales upload progressing");
        }
        Ok(Response::new(summary))
    }

    async fn get_balance(&self, request: Request<pb::GetBalanceRequest>) -> Reply<pb::GetBalanceResponse> {
        let actor = authorize(&request, READ_BALANCE)?;
        let changed = self
            .run_change(&actor, request.get_ref().account.as_ref(), || Change::Read, None)
            .await?;
        Ok(Response::new(pb::GetBalanceResponse {
            balance: Some(changed.balance),
        }))
    }

    async fn list_entries(&self, request: Request<pb::ListEntriesRequest>) -> Reply<pb::ListEntriesResponse> {
        let actor = authorize(&request, Access::READ)?;
        let input = request.get_ref();
        let account = input.account.clone().unwrap_or_default();
        let mut violations = Violations::default();
        let member = violations.check(member_id(&account.member_id).map_err(|v| v.under("account")));
        let limit = violations
            .check(page::size(input.page_size))
            .unwrap_or(page::DEFAULT_PAGE_SIZE);
        let before = violations.check(page::after(&input.page_token)).flatten();
        let kind = match pb::EntryKind::try_from(input.kind) {
            Ok(pb::EntryKind::Unspecified) => None,
            Ok(kind) => Some(kind.as_str_name().trim_start_matches("ENTRY_KIND_").to_owned()),
            Err(_) => {
                violations.add("kind", "not an entry kind");
                None
            }
        };
        violations.into_result().map_err(PointsError::from)?;
        let (program, _) = self.program_for(&actor.tenant_id, &account.program_id).await?;
        let rows = store::list_entries(
            &self.db,
            &actor.tenant_id,
            &program.id,
            &member.unwrap_or_default(),
            kind.as_deref(),
            before,
            limit,
        )
        .await?;
        let next_page_token = match rows.last() {
            Some(last) if rows.len() as u64 == limit => page::token(&last.id),
            _ => String::new(),
        };
        let entries = rows
            .into_iter()
            .map(|row| pb::Entry {
                entry_id: row.id,
                kind: pb::EntryKind::from_str_name(&format!("ENTRY_KIND_{}", row.kind))
                    .unwrap_or(pb::EntryKind::Unspecified)
                    .into(),
                points: row.points,
                balance_after: row.balance_after,
                at: Some(to_proto(row.at)),
                reference: row.reference,
                rules_version: row.rules_version.unsigned_abs(),
            })
            .collect();
        Ok(Response::new(pb::ListEntriesResponse {
            entries,
            next_page_token,
        }))
    }

    async fn redeem(&self, request: Request<pb::RedeemRequest>) -> Reply<pb::RedeemResponse> {
        let actor = authorize(&request, REDEEM)?;
        let input = request.get_ref();
        let key = idempotency_key(&input.idempotency_key).map_err(|v| PointsError::from(vec![v]))?;
        let points = input.points;
        let idempotency = Some(("redeem", key.as_str(), input.encode_to_vec()));
        let changed = self
            .run_change(
                &actor,
                input.account.as_ref(),
                || Change::Redeem { points },
                idempotency,
            )
            .await?;
        Ok(Response::new(pb::RedeemResponse {
            balance: Some(changed.balance),
        }))
    }

    async fn place_hold(&self, request: Request<pb::PlaceHoldRequest>) -> Reply<pb::PlaceHoldResponse> {
        let actor = authorize(&request, REDEEM)?;
        let input = request.get_ref();
        let key = idempotency_key(&input.idempotency_key).map_err(|v| PointsError::from(vec![v]))?;
        let points = input.points;
        let idempotency = Some(("hold", key.as_str(), input.encode_to_vec()));
        let changed = self
            .run_change(
                &actor,
                input.account.as_ref(),
                || Change::PlaceHold { points },
                idempotency,
            )
            .await?;
        let (hold_id, expires_at) = changed.hold.map_or((String::new(), None), |(id, until)| {
            (id.to_string(), Some(to_proto(until)))
        });
        Ok(Response::new(pb::PlaceHoldResponse {
            hold_id,
            expires_at,
            balance: Some(changed.balance),
        }))
    }

    async fn confirm_hold(&self, request: Request<pb::ConfirmHoldRequest>) -> Reply<pb::ConfirmHoldResponse> {
        let actor = authorize(&request, REDEEM)?;
        let input = request.get_ref();
        let hold_id = hold_id(&input.hold_id)?;
        let changed = self
            .run_change(&actor, input.account.as_ref(), || Change::ConfirmHold { hold_id }, None)
            .await?;
        Ok(Response::new(pb::ConfirmHoldResponse {
            balance: Some(changed.balance),
        }))
    }

    async fn release_hold(&self, request: Request<pb::ReleaseHoldRequest>) -> Reply<pb::ReleaseHoldResponse> {
        let actor = authorize(&request, REDEEM)?;
        let input = request.get_ref();
        let hold_id = hold_id(&input.hold_id)?;
        let changed = self
            .run_change(&actor, input.account.as_ref(), || Change::ReleaseHold { hold_id }, None)
            .await?;
        Ok(Response::new(pb::ReleaseHoldResponse {
            balance: Some(changed.balance),
        }))
    }

    async fn adjust(&self, request: Request<pb::AdjustRequest>) -> Reply<pb::AdjustResponse> {
        let actor = authorize(&request, Access::WRITE)?;
        let input = request.get_ref();
        let mut violations = Violations::default();
        let key = violations.check(idempotency_key(&input.idempotency_key));
        if input.points == 0 {
            violations.add("points", "must not be 0");
        }
        if input.reason.trim().is_empty() || input.reason.chars().count() > 200 {
            violations.add("reason", "is required: 1-200 characters");
        }
        violations.into_result().map_err(PointsError::from)?;
        let key = key.unwrap_or_default();
        let (points, reason) = (input.points, format!("adjust:{}", input.reason.trim()));
        let idempotency = Some(("adjust", key.as_str(), input.encode_to_vec()));
        let changed = self
            .run_change(
                &actor,
                input.account.as_ref(),
                || Change::Adjust {
                    points,
                    reason: reason.clone(),
                },
                idempotency,
            )
            .await?;
        Ok(Response::new(pb::AdjustResponse {
            balance: Some(changed.balance),
        }))
    }
}

fn hold_id(id: &str) -> Result<u64, PointsError> {
    id.parse()
        .map_err(|_| PointsError::invalid("hold_id", "is not a hold id returned by PlaceHold"))
}
