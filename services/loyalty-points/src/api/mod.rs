//! The gRPC face of loyalty-points: authorises each call, validates and converts the request,
//! resolves buyers through member-identity, runs the use case and converts the answer.

mod sales;

use std::sync::Arc;

use quanyu_proto::points::v1 as pb;
use quanyu_proto::points::v1::points_service_server::PointsService;
use quanyu_runtime::auth::{Access, Role, TenantActor, authorize};
use quanyu_runtime::clock::{Clock, to_proto};
use quanyu_runtime::db::with_retries;
use quanyu_runtime::error::{FieldViolation, Violations};
use quanyu_runtime::idempotency::{RequestDigest, field_name};
use quanyu_runtime::page;
use sea_orm::DatabaseConnection;
use tonic::{Request, Response, Status};

use crate::app;
use crate::app::accounts::{AccountKey, Change, Changed, Keyed, Outcome};
use crate::app::identity::IdentityClient;
use crate::app::programs::ProgramCatalog;
use crate::app::sales::{BatchReplay, SaleSync};
use crate::app::sales_writer::{MAX_BATCH, SalesWriter};
use crate::convert::{entry_kind_from_pb, entry_kind_to_pb, rejected_to_pb};
use crate::domain::ledger::MAX_POINTS_PER_CHANGE;
use crate::domain::program::ProgramRules;
use crate::error::PointsError;
use crate::store;

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

pub struct PointsApi {
    db: DatabaseConnection,
    clock: Clock,
    catalog: Arc<ProgramCatalog>,
    sales: SaleSync,
}

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
        let writer = SalesWriter::spawn(db.clone(), clock.clone(), sales_writers, batch_writers);
        Self {
            catalog: Arc::new(ProgramCatalog::new(db.clone(), clock.clone())),
            sales: SaleSync::new(db.clone(), identity, writer),
            db,
            clock,
        }
    }

    /// Runs a change on the account `account` names (following merges to the survivor).
    async fn run_change(
        &self,
        actor: &TenantActor,
        account: Option<&pb::AccountRef>,
        change: impl Fn() -> Change,
        keyed: Option<&Keyed<'_>>,
    ) -> Result<Outcome, PointsError> {
        let account = account.cloned().unwrap_or_default();
        let asked = member_id(&account.member_id).map_err(|v| PointsError::from(vec![v.under("account")]))?;
        let member_id = self.member_now(&actor.tenant_id, asked).await?;
        let (program, version) = self.catalog.program_for(&actor.tenant_id, &account.program_id).await?;
        let key = AccountKey {
            actor,
            program: &program,
            rules_version: version,
            member_id: &member_id,
        };
        let at = self.clock.now();
        with_retries(|| app::accounts::change(&self.db, &key, change(), keyed, at)).await
    }

    /// The member an id means now: the survivor when it was merged into another.
    async fn member_now(&self, tenant_id: &str, asked: String) -> Result<String, PointsError> {
        let mut current = store::aliases::current_members(&self.db, tenant_id, std::slice::from_ref(&asked)).await?;
        Ok(current.remove(&asked).unwrap_or(asked))
    }

    /// Confirms or releases (`end`) the hold a till names; the balance after.
    async fn end_hold<T>(
        &self,
        request: &Request<T>,
        account: Option<&pb::AccountRef>,
        hold_id: &str,
        end: impl Fn(u64) -> Change,
    ) -> Result<pb::Balance, Status> {
        let actor = authorize(request, REDEEM)?;
        let hold_id = hold_id
            .parse()
            .map_err(|_| PointsError::UnknownHold(hold_id.to_owned()))?;
        let changed = self.unkeyed_change(&actor, account, || end(hold_id)).await?;
        Ok(changed.balance)
    }

    /// Runs a change that no idempotency key guards (confirming or releasing a hold, reading).
    async fn unkeyed_change(
        &self,
        actor: &TenantActor,
        account: Option<&pb::AccountRef>,
        change: impl Fn() -> Change,
    ) -> Result<Changed, PointsError> {
        match self.run_change(actor, account, change, None).await? {
            Outcome::Done(changed) => Ok(changed),
            Outcome::Replayed(_) => Err(PointsError::Database(sea_orm::DbErr::Custom(
                "a change without an idempotency key was answered as a replay".into(),
            ))),
        }
    }

    /// Runs a change under the idempotency key of `request` (in `scope`): the first time it is
    /// made and answered with `respond`; sent again, it is answered as it was the first time.
    async fn keyed_change<Q, R>(
        &self,
        actor: &TenantActor,
        account: Option<&pb::AccountRef>,
        change: impl Fn() -> Change,
        (scope, key, request): (&'static str, &str, &Q),
        respond: impl Fn(&Changed) -> R + Send + Sync,
    ) -> Result<R, PointsError>
    where
        Q: prost::Message + prost::Name,
        R: prost::Message + Default,
    {
        let encode = |changed: &Changed| respond(changed).encode_to_vec();
        let keyed = Keyed {
            scope,
            key,
            request: RequestDigest::of(request),
            respond: &encode,
            field_name: field_name::<Q>,
        };
        match self.run_change(actor, account, change, Some(&keyed)).await? {
            Outcome::Done(changed) => Ok(respond(&changed)),
            Outcome::Replayed(response) => R::decode(response.as_slice()).map_err(|error| {
                PointsError::Database(sea_orm::DbErr::Custom(format!("a recorded {scope} response: {error}")))
            }),
        }
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

impl PointsApi {
    /// Records one batch of sales (RecordSales, or one chunk of UploadSales).
    #[tracing::instrument(skip_all, fields(tenant, sales))]
    async fn record_batch(
        &self,
        actor: &TenantActor,
        sales: Vec<pb::Sale>,
    ) -> Result<Vec<pb::SaleResult>, PointsError> {
        tracing::Span::current()
            .record("tenant", actor.tenant_id.as_ref())
            .record("sales", sales.len());
        if sales.is_empty() || sales.len() > MAX_BATCH {
            let why = format!("must hold 1-{MAX_BATCH} sales, got {}", sales.len());
            return Err(PointsError::invalid("sales", why));
        }
        let batch_key = match self.sales.replay(actor, &sales).await? {
            BatchReplay::Answered(results) => {
                tracing::info!(batch = results.len(), "batch replayed");
                return Ok(results);
            }
            BatchReplay::New { key } => key,
        };
        let programs = self.catalog.of_tenant(&actor.tenant_id).await?;
        let now = self.clock.now();
        let mut results: Vec<Option<pb::SaleResult>> = vec![None; sales.len()];
        let mut checked = Vec::new();
        for (index, sale) in sales.iter().enumerate() {
            match sales::check_sale(sale, &programs, now) {
                Ok(ok) => checked.push((index, ok)),
                Err(violations) => {
                    results[index] = Some(rejected_to_pb(i32::try_from(index).unwrap_or(i32::MAX), violations));
                }
            }
        }
        self.sales
            .record(actor, sales, batch_key, checked, results, programs, now)
            .await
    }
}

#[tonic::async_trait]
impl PointsService for PointsApi {
    async fn upsert_program(&self, request: Request<pb::UpsertProgramRequest>) -> Reply<pb::UpsertProgramResponse> {
        let actor = authorize(&request, Access::WRITE)?;
        let program = request.into_inner().program.unwrap_or_default();
        ProgramRules::from_pb(&program, 0).map_err(PointsError::InvalidInput)?;
        let program = self.catalog.upsert(&actor.tenant_id, program).await?;
        Ok(Response::new(pb::UpsertProgramResponse { program: Some(program) }))
    }

    async fn get_program(&self, request: Request<pb::GetProgramRequest>) -> Reply<pb::GetProgramResponse> {
        let actor = authorize(&request, Access::READ)?;
        let program = self
            .catalog
            .get(&actor.tenant_id, &request.get_ref().program_id)
            .await?;
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
            .unkeyed_change(&actor, request.get_ref().account.as_ref(), || Change::Read)
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
            Ok(kind) => entry_kind_from_pb(kind),
            Err(_) => {
                violations.add("kind", "not an entry kind");
                None
            }
        };
        violations.into_result().map_err(PointsError::from)?;
        let (program, _) = self.catalog.program_for(&actor.tenant_id, &account.program_id).await?;
        let member = self.member_now(&actor.tenant_id, member.unwrap_or_default()).await?;
        let account = (actor.tenant_id.as_ref(), program.id.as_str(), member.as_str());
        let history = store::accounts::history(&self.db, account, kind, before, limit)
            .await
            .map_err(PointsError::from)?;
        let next_page_token = match history.last() {
            Some(last) if history.len() as u64 == limit => page::token(&last.id),
            _ => String::new(),
        };
        let entries = history
            .into_iter()
            .map(|item| pb::Entry {
                entry_id: item.id,
                kind: entry_kind_to_pb(item.entry.kind).into(),
                points: item.entry.amount,
                balance_after: item.entry.balance_after,
                at: Some(to_proto(item.entry.at)),
                reference: item.entry.reference,
                rules_version: item.rules_version,
            })
            .collect();
        Ok(Response::new(pb::ListEntriesResponse {
            entries,
            next_page_token,
            member_id: member,
        }))
    }

    async fn redeem(&self, request: Request<pb::RedeemRequest>) -> Reply<pb::RedeemResponse> {
        let actor = authorize(&request, REDEEM)?;
        let input = request.get_ref();
        let key = idempotency_key(&input.idempotency_key).map_err(|v| PointsError::from(vec![v]))?;
        let points = input.points;
        let response = self
            .keyed_change(
                &actor,
                input.account.as_ref(),
                || Change::Redeem { points },
                ("redeem", &key, input),
                |changed| pb::RedeemResponse {
                    balance: Some(changed.balance.clone()),
                },
            )
            .await?;
        Ok(Response::new(response))
    }

    async fn place_hold(&self, request: Request<pb::PlaceHoldRequest>) -> Reply<pb::PlaceHoldResponse> {
        let actor = authorize(&request, REDEEM)?;
        let input = request.get_ref();
        let key = idempotency_key(&input.idempotency_key).map_err(|v| PointsError::from(vec![v]))?;
        let points = input.points;
        let response = self
            .keyed_change(
                &actor,
                input.account.as_ref(),
                || Change::PlaceHold { points },
                ("hold", &key, input),
                |changed| {
                    let (hold_id, expires_at) = changed.hold.map_or((String::new(), None), |(id, until)| {
                        (id.to_string(), Some(to_proto(until)))
                    });
                    pb::PlaceHoldResponse {
                        hold_id,
                        expires_at,
                        balance: Some(changed.balance.clone()),
                    }
                },
            )
            .await?;
        Ok(Response::new(response))
    }

    async fn confirm_hold(&self, request: Request<pb::ConfirmHoldRequest>) -> Reply<pb::ConfirmHoldResponse> {
        let input = request.get_ref();
        let balance = self
            .end_hold(&request, input.account.as_ref(), &input.hold_id, |hold_id| {
                Change::ConfirmHold { hold_id }
            })
            .await?;
        Ok(Response::new(pb::ConfirmHoldResponse { balance: Some(balance) }))
    }

    async fn release_hold(&self, request: Request<pb::ReleaseHoldRequest>) -> Reply<pb::ReleaseHoldResponse> {
        let input = request.get_ref();
        let balance = self
            .end_hold(&request, input.account.as_ref(), &input.hold_id, |hold_id| {
                Change::ReleaseHold { hold_id }
            })
            .await?;
        Ok(Response::new(pb::ReleaseHoldResponse { balance: Some(balance) }))
    }

    async fn adjust(&self, request: Request<pb::AdjustRequest>) -> Reply<pb::AdjustResponse> {
        let actor = authorize(&request, Access::WRITE)?;
        let input = request.get_ref();
        let mut violations = Violations::default();
        let key = violations.check(idempotency_key(&input.idempotency_key));
        if input.points == 0
            || input
                .points
                .checked_abs()
                .is_none_or(|points| points > MAX_POINTS_PER_CHANGE)
        {
            violations.add(
                "points",
                format!("must be 1 to {MAX_POINTS_PER_CHANGE} either way (negative takes points away)"),
            );
        }
        if input.reason.trim().is_empty() || input.reason.chars().count() > 200 {
            violations.add("reason", "is required: 1-200 characters");
        }
        violations.into_result().map_err(PointsError::from)?;
        let key = key.unwrap_or_default();
        let (points, reason) = (input.points, format!("adjust:{}", input.reason.trim()));
        let response = self
            .keyed_change(
                &actor,
                input.account.as_ref(),
                || Change::Adjust {
                    points,
                    reason: reason.clone(),
                },
                ("adjust", &key, input),
                |changed| pb::AdjustResponse {
                    balance: Some(changed.balance.clone()),
                },
            )
            .await?;
        Ok(Response::new(response))
    }

    async fn grant_points(&self, request: Request<pb::GrantPointsRequest>) -> Reply<pb::GrantPointsResponse> {
        let change = |points, reference| Change::Grant { points, reference };
        let respond = |balance| pb::GrantPointsResponse { balance: Some(balance) };
        self.granting(request, ("grant", change), respond).await
    }

    async fn revoke_grant(&self, request: Request<pb::RevokeGrantRequest>) -> Reply<pb::RevokeGrantResponse> {
        let change = |points, reference| Change::RevokeGrant { points, reference };
        let respond = |balance| pb::RevokeGrantResponse { balance: Some(balance) };
        self.granting(request, ("revoke-grant", change), respond).await
    }
}

/// What a grant and its revocation both carry.
struct GrantFields<'a> {
    account: Option<&'a pb::AccountRef>,
    points: i64,
    reference: &'a str,
    key: &'a str,
}

/// A request to grant points or to take a grant back.
trait GrantRequest: prost::Message + prost::Name {
    fn fields(&self) -> GrantFields<'_>;
}

/// Implements [`GrantRequest`] for requests with `account`, `points`, `reference` and
/// `idempotency_key`.
macro_rules! grant_requests {
    ($($request:ty),*) => {$(
        impl GrantRequest for $request {
            fn fields(&self) -> GrantFields<'_> {
                GrantFields {
                    account: self.account.as_ref(),
                    points: self.points,
                    reference: &self.reference,
                    key: &self.idempotency_key,
                }
            }
        }
    )*};
}

grant_requests!(pb::GrantPointsRequest, pb::RevokeGrantRequest);

impl PointsApi {
    /// Runs a grant or its revocation (`change`, under its key in `scope`), checked first.
    async fn granting<Q, R>(
        &self,
        request: Request<Q>,
        (scope, change): (&'static str, fn(i64, String) -> Change),
        respond: fn(pb::Balance) -> R,
    ) -> Reply<R>
    where
        Q: GrantRequest,
        R: prost::Message + Default,
    {
        let actor = authorize(&request, Access::WRITE)?;
        let input = request.get_ref();
        let asked = input.fields();
        let (points, reference, key) = grant(asked.points, asked.reference, asked.key)?;
        let response = self
            .keyed_change(
                &actor,
                asked.account,
                || change(points, reference.clone()),
                (scope, &key, input),
                |changed| respond(changed.balance.clone()),
            )
            .await?;
        Ok(Response::new(response))
    }
}

/// Checks a grant or its revocation: the points, the grant's reference and the idempotency key.
fn grant(points: i64, reference: &str, key: &str) -> Result<(i64, String, String), PointsError> {
    let mut violations = Violations::default();
    let key = violations.check(idempotency_key(key));
    if !(1..=MAX_POINTS_PER_CHANGE).contains(&points) {
        violations.add("points", format!("must be 1 to {MAX_POINTS_PER_CHANGE}"));
    }
    violations.text("reference", reference, 200, true);
    violations.into_result().map_err(PointsError::from)?;
    Ok((points, reference.to_owned(), key.unwrap_or_default()))
}
