//! Recording a batch of sales and refunds in one transaction.

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use prost::Message;
use quanyu_proto::points::v1 as pb;
use quanyu_runtime::auth::TenantActor;
use quanyu_runtime::db::{Writes, begin_write};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryTrait};

use super::entity::operations;
use super::merge::load_accounts_following_merges;
use super::{Account, Recorded, Recording, Result, save_accounts};
use crate::domain::earning::{Earned, SaleContext, SaleLine, points_to_reverse};
use crate::domain::expiry::expires_at;
use crate::domain::ledger::{Credit, LedgerError};
use crate::program::ProgramRules;

/// What a validated sale asks for.
#[derive(Debug, Clone)]
pub enum Plan {
    /// A member's purchase: earn on `lines`, spend `redeem` points at the till.
    Earn {
        member_id: String,
        program_id: String,
        lines: Vec<SaleLine>,
        redeem: i64,
        context: SaleContext,
    },
    /// A refund of `refund_minor` of the sale recorded under `original_key`.
    Refund { original_key: String, refund_minor: i64 },
    /// A sale by nobody known: kept for analytics, earns nothing.
    NonMember,
}

#[derive(Debug, Clone)]
pub struct PreparedSale {
    pub index: i32,
    pub source: String,
    pub key: String,
    /// The sale as received, encoded: a replay must match it byte for byte.
    pub sale: pb::Sale,
    pub plan: Plan,
}

/// The programs of the tenant by id, with their current rules version.
pub type Programs = HashMap<String, (ProgramRules, u32)>;

/// The answer to a sale refused for `violations`.
pub fn rejected(index: i32, violations: Vec<pb::FieldViolation>) -> pb::SaleResult {
    pb::SaleResult {
        index,
        outcome: pb::SaleOutcome::Rejected.into(),
        violations,
        ..Default::default()
    }
}

fn violation(field: &str, description: String) -> Vec<pb::FieldViolation> {
    vec![pb::FieldViolation {
        field: field.to_owned(),
        description,
    }]
}

/// Why one sale of a batch was refused.
struct Rejection {
    field: String,
    description: String,
}

impl Rejection {
    fn new(field: &str, description: String) -> Self {
        Self {
            field: field.to_owned(),
            description,
        }
    }
}

/// Names the first field in which a replayed sale differs from the one first recorded.
fn differing_field(recorded: &pb::Sale, replayed: &pb::Sale) -> &'static str {
    let fields: [(&'static str, bool); 12] = [
        ("kind", recorded.kind != replayed.kind),
        (
            "original_transaction_id",
            recorded.original_transaction_id != replayed.original_transaction_id,
        ),
        ("channel", recorded.channel != replayed.channel),
        ("brand_id", recorded.brand_id != replayed.brand_id),
        ("store_id", recorded.store_id != replayed.store_id),
        ("occurred_at", recorded.occurred_at != replayed.occurred_at),
        ("buyer", recorded.buyer != replayed.buyer),
        ("amount", recorded.amount != replayed.amount),
        ("lines", recorded.lines != replayed.lines),
        ("points_redeemed", recorded.points_redeemed != replayed.points_redeemed),
        ("source", recorded.source != replayed.source),
        ("transaction_id", recorded.transaction_id != replayed.transaction_id),
    ];
    fields
        .into_iter()
        .find(|(_, differs)| *differs)
        .map_or("sale", |(field, _)| field)
}

/// What a fully or partly refunded share of `total` comes to, the same way every time.
fn share(total: i64, eligible: i64, refunded: i64) -> i64 {
    points_to_reverse(
        &Earned {
            points: total,
            eligible_minor: eligible,
            rules_version: 0,
        },
        0,
        refunded,
        0,
    )
}

struct Batch<'a> {
    tenant_id: &'a str,
    programs: &'a Programs,
    /// The survivor of each buyer merged since the sale.
    members_now: &'a HashMap<String, String>,
    accounts: HashMap<(String, String), Account>,
    operations: Recorded,
    changed_originals: BTreeSet<(String, String)>,
    at: DateTime<Utc>,
}

impl Batch<'_> {
    fn apply(&mut self, sale: &PreparedSale) -> std::result::Result<(pb::SaleResult, operations::Model), Rejection> {
        let index = sale.index;
        let mut result = pb::SaleResult {
            index,
            outcome: pb::SaleOutcome::Applied.into(),
            ..Default::default()
        };
        let mut operation = operations::Model {
            tenant_id: self.tenant_id.to_owned(),
            source: sale.source.clone(),
            key: sale.key.clone(),
            request: sale.sale.encode_to_vec(),
            result: Vec::new(),
            member_id: None,
            program_id: None,
            eligible_minor: 0,
            points_earned: 0,
            refunded_minor: 0,
            points_reversed: 0,
            growth: 0,
            recorded_at: self.at,
        };
        match &sale.plan {
            Plan::NonMember => {}
            Plan::Earn {
                member_id,
                program_id,
                lines,
                redeem,
                context,
            } => {
                let Some((program, version)) = self.programs.get(program_id) else {
                    return Err(Rejection::new("brand_id", "no program for this brand".into()));
                };
                let member_id = self.members_now.get(member_id).unwrap_or(member_id);
                let account = self
                    .accounts
                    .get_mut(&(program_id.clone(), member_id.clone()))
                    .ok_or_else(|| Rejection::new("buyer", "account not loaded".into()))?;
                if *redeem > 0 {
                    account
                        .ledger
                        .redeem(*redeem, self.at, &sale.key)
                        .map_err(|error| match error {
                            LedgerError::InsufficientPoints { available, .. } => {
                                Rejection::new("points_redeemed", format!("only {available} points are available"))
                            }
                            other => Rejection::new("points_redeemed", other.to_string()),
                        })?;
                }
                let context = SaleContext {
                    tier: account.tier.tier.clone(),
                    ..context.clone()
                };
                let today = account.earned_today;
                let earned = program.earning.points_for(lines, &context, today);
                if earned.points > 0 {
                    let expiry = expires_at(program.expiry, self.at, program.offset);
                    account
                        .ledger
                        .credit(Credit::Earn, earned.points, self.at, expiry, &sale.key)
                        .map_err(|error| Rejection::new("occurred_at", error.to_string()))?;
                    account.earned_today += earned.points;
                }
                let growth = earned.eligible_minor / 100;
                account.tier.accrue(&program.ladder, growth);
                result.member_id = member_id.clone();
                result.program_id = program_id.clone();
                result.points_earned = earned.points;
                result.points_redeemed = *redeem;
                result.balance_after = account.ledger.balance();
                result.rules_version = *version;
                operation.member_id = Some(member_id.clone());
                operation.program_id = Some(program_id.clone());
                operation.eligible_minor = earned.eligible_minor;
                operation.points_earned = earned.points;
                operation.growth = growth;
            }
            Plan::Refund {
                original_key,
                refund_minor,
            } => {
                let original_id = (sale.source.clone(), original_key.clone());
                let Some(original) = self.operations.get(&sale.source, original_key).cloned() else {
                    return Err(Rejection::new(
                        "original_transaction_id",
                        format!("no sale {original_key:?} from source {:?} is recorded", sale.source),
                    ));
                };
                let original_sale = pb::Sale::decode(original.request.as_slice()).unwrap_or_default();
                if original_sale.kind != i32::from(pb::SaleKind::Sale) {
                    return Err(Rejection::new(
                        "original_transaction_id",
                        "names a refund, not a sale".into(),
                    ));
                }
                if let (Some(member_id), Some(program_id)) = (&original.member_id, &original.program_id) {
                    let member_id = self.members_now.get(member_id).unwrap_or(member_id);
                    let Some((program, version)) = self.programs.get(program_id) else {
                        return Err(Rejection::new(
                            "original_transaction_id",
                            "its program no longer exists".into(),
                        ));
                    };
                    let account = self
                        .accounts
                        .get_mut(&(program_id.clone(), member_id.clone()))
                        .ok_or_else(|| Rejection::new("original_transaction_id", "account not loaded".into()))?;
                    let earned = Earned {
                        points: original.points_earned,
                        eligible_minor: original.eligible_minor,
                        rules_version: *version,
                    };
                    let reversed = points_to_reverse(
                        &earned,
                        original.refunded_minor,
                        *refund_minor,
                        original.points_reversed,
                    );
                    if reversed > 0 {
                        account
                            .ledger
                            .reverse(reversed, self.at, original_key)
                            .map_err(|error| Rejection::new("amount", error.to_string()))?;
                    }
                    let refunded_after = original.refunded_minor + refund_minor;
                    let growth_back = share(original.growth, original.eligible_minor, refunded_after)
                        - share(original.growth, original.eligible_minor, original.refunded_minor);
                    account.tier.accrue(&program.ladder, -growth_back);
                    result.member_id = member_id.clone();
                    result.program_id = program_id.clone();
                    result.points_reversed = reversed;
                    result.balance_after = account.ledger.balance();
                    result.rules_version = *version;
                    operation.member_id = Some(member_id.clone());
                    operation.program_id = Some(program_id.clone());
                    if let Some(stored) = self.operations.get_mut(&sale.source, original_key) {
                        stored.refunded_minor = refunded_after;
                        stored.points_reversed += reversed;
                    }
                    self.changed_originals.insert(original_id);
                }
            }
        }
        operation.result = result.encode_to_vec();
        Ok((result, operation))
    }
}

/// The answer to a sale whose key is already recorded with `request` and `result`: the original
/// result if it is the same sale, else a rejection naming the first field that differs.
fn replayed(sale: &PreparedSale, request: &[u8], result: &[u8]) -> pb::SaleResult {
    if request == sale.sale.encode_to_vec() {
        return pb::SaleResult {
            index: sale.index,
            outcome: pb::SaleOutcome::Duplicate.into(),
            original: pb::SaleResult::decode(result).ok().map(Box::new),
            ..Default::default()
        };
    }
    let recorded_sale = pb::Sale::decode(request).unwrap_or_default();
    let field = differing_field(&recorded_sale, &sale.sale);
    let why = format!(
        "transaction {:?} of {:?} was recorded with a different {field}",
        sale.key, sale.source
    );
    rejected(sale.index, violation(field, why))
}

/// Applies a batch: each sale once, whatever the retries; answers each on its own.
///
/// `recorded` holds what is known to be recorded under the batch's keys, read before the
/// transaction (or nothing, for sales taken for new): replays are answered from it without one.
/// A sale whose key was recorded unknown to it (by a concurrent call, or before) makes the
/// insert of its key fail, and the caller's retry reads again.
pub async fn record_sales(
    db: &DatabaseConnection,
    actor: &TenantActor,
    programs: &Programs,
    sales: &[PreparedSale],
    recorded: Recorded<Recording>,
    at: DateTime<Utc>,
) -> Result<Vec<pb::SaleResult>> {
    let tenant_id = actor.tenant_id.as_ref();
    let is_fresh = |sale: &&PreparedSale| !recorded.contains(&sale.source, &sale.key);
    if !sales.iter().any(|sale| is_fresh(&sale)) {
        return Ok(sales
            .iter()
            .filter_map(|sale| {
                let first = recorded.get(&sale.source, &sale.key)?;
                Some(replayed(sale, &first.request, &first.result))
            })
            .collect());
    }
    let txn = begin_write(db).await?;
    let originals: Vec<(String, String)> = sales
        .iter()
        .filter(is_fresh)
        .filter_map(|sale| match &sale.plan {
            Plan::Refund { original_key, .. } => Some((sale.source.clone(), original_key.clone())),
            _ => None,
        })
        .collect();
    let originals = super::recorded(&txn, tenant_id, &originals, true).await?;
    // Every account the batch touches as its sales name them, locked in one order. Points go
    // where the member is now: to the survivor's account if the buyer has been merged since.
    let mut touched: BTreeSet<(String, String)> = BTreeSet::new();
    // Replays touch no account: they are answered from what was recorded.
    for sale in sales.iter().filter(is_fresh) {
        match &sale.plan {
            Plan::Earn {
                member_id, program_id, ..
            } => {
                touched.insert((program_id.clone(), member_id.clone()));
            }
            Plan::Refund { original_key, .. } => {
                let original = originals.get(&sale.source, original_key);
                if let Some((Some(member), Some(program))) = original.map(|op| (&op.member_id, &op.program_id)) {
                    touched.insert((program.clone(), member.clone()));
                }
            }
            Plan::NonMember => {}
        }
    }
    let (accounts, members_now) = load_accounts_following_merges(&txn, tenant_id, programs, touched, at).await?;
    let mut batch = Batch {
        tenant_id,
        programs,
        members_now: &members_now,
        accounts,
        operations: originals,
        changed_originals: BTreeSet::new(),
        at,
    };
    let mut results = Vec::with_capacity(sales.len());
    let mut new_operations = Vec::new();
    let mut sale_events = Vec::new();
    for sale in sales {
        // Recorded before this transaction, or earlier in this batch.
        let first = match recorded.get(&sale.source, &sale.key) {
            Some(first) => Some((&first.request, &first.result)),
            None => batch
                .operations
                .get(&sale.source, &sale.key)
                .map(|op| (&op.request, &op.result)),
        };
        if let Some((request, result)) = first {
            results.push(replayed(sale, request, result));
            continue;
        }
        match batch.apply(sale) {
            Ok((result, operation)) => {
                sale_events.push(sale_recorded(tenant_id, sale, &result));
                new_operations.push(id_of(&operation));
                batch.operations.insert(operation);
                results.push(result);
            }
            Err(rejection) => results.push(rejected(sale.index, violation(&rejection.field, rejection.description))),
        }
    }
    let mut saved: Vec<&mut Account> = batch.accounts.values_mut().collect();
    saved.sort_by(|a, b| (&a.program_id, &a.member_id).cmp(&(&b.program_id, &b.member_id)));
    let mut writes = Writes::new(&txn);
    let mut events = save_accounts(&mut writes, tenant_id, programs, saved, at);
    // The accounts and their entries are written while the sales' records and events are built.
    let build_rest = |writes: &mut Writes| {
        events.extend(sale_events);
        let inserted: Vec<operations::ActiveModel> = new_operations
            .iter()
            .filter_map(|(source, key)| batch.operations.remove(source, key))
            .map(operations::ActiveModel::from)
            .collect();
        writes.insert_many(inserted, None);
        // New operations have just moved into their insert, refunded shares and all: what is
        // left of the changed originals was recorded before this transaction.
        for (source, key) in &batch.changed_originals {
            if let Some(original) = batch.operations.get(source, key) {
                let refunded_share = operations::Entity::update_many()
                    .col_expr(operations::Column::RefundedMinor, Expr::value(original.refunded_minor))
                    .col_expr(
                        operations::Column::PointsReversed,
                        Expr::value(original.points_reversed),
                    )
                    .filter(operations::Column::TenantId.eq(tenant_id))
                    .filter(operations::Column::Source.eq(original.source.as_str()))
                    .filter(operations::Column::Key.eq(original.key.as_str()));
                writes.push(refunded_share.into_query());
            }
        }
        quanyu_outbox::append_to(writes, events);
    };
    writes.execute_while(&txn, build_rest).await?;
    txn.commit().await?;
    Ok(results)
}

fn sale_recorded(tenant_id: &str, sale: &PreparedSale, result: &pb::SaleResult) -> quanyu_outbox::NewEvent {
    let recorded = pb::SaleRecorded {
        source: sale.source.clone(),
        transaction_id: sale.key.clone(),
        kind: sale.sale.kind,
        member_id: result.member_id.clone(),
        program_id: result.program_id.clone(),
        channel: sale.sale.channel,
        brand_id: sale.sale.brand_id.clone(),
        store_id: sale.sale.store_id.clone(),
        amount: sale.sale.amount.clone(),
        occurred_at: sale.sale.occurred_at,
        points_earned: result.points_earned,
        points_redeemed: result.points_redeemed,
        points_reversed: result.points_reversed,
    };
    quanyu_outbox::NewEvent {
        tenant_id: tenant_id.to_owned(),
        aggregate_type: "sale",
        aggregate_id: format!("{}/{}", sale.source, sale.key),
        payload: quanyu_proto::events::v1::event::Payload::SaleRecorded(recorded),
    }
}

fn id_of(operation: &operations::Model) -> (String, String) {
    (operation.source.clone(), operation.key.clone())
}
