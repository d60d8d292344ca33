//! Recording sales and refunds: each applied once whatever the retries, each answered on its own.
//!
//! A batch is validated by the API, its identity buyers resolved (or enrolled) through
//! member-identity in one call, and its sales written in one transaction by the
//! [`SalesWriter`](super::sales_writer::SalesWriter). A POS that got no answer sends the same
//! batch again: a batch of [`TUNING.kept_answers_from`](quanyu_runtime::db::Tuning) sales or more
//! whose every sale was recorded keeps the answer its replay gets, by a digest of its sales, and
//! the same batch again is answered from it with one read. A batch that differs in anything, or
//! had a sale rejected (which may apply when sent again), is answered sale by sale.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use prost::Message;
use quanyu_proto::common::v1::Channel;
use quanyu_proto::points::v1 as pb;
use quanyu_runtime::auth::TenantActor;
use quanyu_runtime::db::{TUNING, Writes, begin_write};
use quanyu_runtime::error::{FieldViolation, is_unique_violation};
use quanyu_runtime::idempotency::{self, NewRecord, Record, RequestDigest, field_name};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr};
use sha2::{Digest, Sha256};

use super::identity::IdentityClient;
use super::sales_writer::SalesWriter;
use super::save_accounts;
use crate::convert::{applied_to_pb, rejected_to_pb};
use crate::domain::account::Account;
use crate::domain::earning::{SaleContext, SaleLine};
use crate::domain::program::Programs;
use crate::domain::sale::{
    Plan, Purchase, Rejection, SaleEffect, SaleRecord, apply_purchase, apply_refund, refundable,
};
use crate::error::PointsError;
use crate::events;
use crate::store;
use crate::store::accounts::AccountId;
use crate::store::sales::NewSale;

/// What the API's validation of one sale found out.
#[derive(Debug, Clone)]
pub struct CheckedSale {
    pub is_refund: bool,
    /// The program a purchase earns in.
    pub program_id: Option<String>,
    pub lines: Vec<SaleLine>,
    pub amount_minor: i64,
}

/// A sale ready to be written.
#[derive(Debug, Clone)]
pub struct PreparedSale {
    pub index: i32,
    pub source: String,
    pub key: String,
    /// The sale as received.
    pub sale: pb::Sale,
    /// What its replays are told from conflicts by.
    pub digest: RequestDigest,
    pub plan: Plan,
}

/// Values by a sale's key (source, transaction id), looked up by borrowed strings: a 1,000-sale
/// replay asks several times per sale.
#[derive(Debug, Clone)]
pub struct SaleKeys<T> {
    by_source: HashMap<String, HashMap<String, T>>,
}

impl<T> Default for SaleKeys<T> {
    fn default() -> Self {
        Self {
            by_source: HashMap::new(),
        }
    }
}

impl<T> SaleKeys<T> {
    pub fn get(&self, source: &str, key: &str) -> Option<&T> {
        self.by_source.get(source)?.get(key)
    }

    pub fn get_mut(&mut self, source: &str, key: &str) -> Option<&mut T> {
        self.by_source.get_mut(source)?.get_mut(key)
    }

    pub fn remove(&mut self, source: &str, key: &str) -> Option<T> {
        self.by_source.get_mut(source)?.remove(key)
    }

    pub fn contains(&self, source: &str, key: &str) -> bool {
        self.get(source, key).is_some()
    }

    /// Adds a value under its key, replacing what was there.
    pub fn insert(&mut self, source: &str, key: String, value: T) {
        // Most values share their source with one already held: its name is not copied again.
        let by_key = match self.by_source.get_mut(source) {
            Some(by_key) => by_key,
            None => self.by_source.entry(source.to_owned()).or_default(),
        };
        by_key.insert(key, value);
    }

    pub fn extend(&mut self, other: SaleKeys<T>) {
        for (source, by_key) in other.by_source {
            for (key, value) in by_key {
                self.insert(&source, key, value);
            }
        }
    }
}

/// The idempotency scope of whole batches' answers, keyed by the batch's digest.
const BATCH_SCOPE: &str = "sales-batch";

/// What is recorded under the sales' keys (source, transaction id): the answers their replays
/// get. Keys are kept for good, so what a read outside a transaction finds stays true.
pub async fn answers<C: ConnectionTrait>(
    db: &C,
    tenant_id: &str,
    keys: &[(String, String)],
) -> Result<SaleKeys<Record>, DbErr> {
    let mut found = SaleKeys::default();
    for (source, key, record) in store::sales::answers(db, tenant_id, keys).await? {
        found.insert(&source, key, record);
    }
    Ok(found)
}

/// A batch, told against the answers kept for whole batches.
pub enum BatchReplay {
    /// Sent before and answered whole: the answer it got.
    Answered(Vec<pb::SaleResult>),
    /// To be recorded; `key` names it for keeping its answer (large batches only).
    New { key: Option<String> },
}

/// The sales use case: from validated sales to their answers.
pub struct SaleSync {
    db: DatabaseConnection,
    identity: IdentityClient,
    writer: SalesWriter,
}

impl SaleSync {
    pub fn new(db: DatabaseConnection, identity: IdentityClient, writer: SalesWriter) -> Self {
        Self { db, identity, writer }
    }

    /// The answer kept for this batch, if it was answered whole before.
    pub async fn replay(&self, actor: &TenantActor, sales: &[pb::Sale]) -> Result<BatchReplay, PointsError> {
        if sales.len() < TUNING.kept_answers_from {
            return Ok(BatchReplay::New { key: None });
        }
        let key = hex::encode(digest(sales));
        let mut kept = idempotency::find(&self.db, &actor.tenant_id, BATCH_SCOPE, vec![key.clone()], false).await?;
        let Some(answer) = kept.remove(&key) else {
            return Ok(BatchReplay::New { key: Some(key) });
        };
        match pb::RecordSalesResponse::decode(answer.response.as_slice()) {
            Ok(answer) => Ok(BatchReplay::Answered(answer.results)),
            Err(error) => {
                // The batch is then answered sale by sale.
                tracing::warn!(%error, "a kept batch answer does not decode; answering sale by sale");
                Ok(BatchReplay::New { key: Some(key) })
            }
        }
    }

    /// Records a batch: `checked` holds the sales that passed validation (by index), `results` the
    /// answers of those that did not; `batch_key` is what [`replay`](Self::replay) named the batch
    /// by. Returns every sale's answer, in order.
    #[allow(clippy::too_many_arguments)]
    pub async fn record(
        &self,
        actor: &TenantActor,
        mut sales: Vec<pb::Sale>,
        batch_key: Option<String>,
        checked: Vec<(usize, CheckedSale)>,
        mut results: Vec<Option<pb::SaleResult>>,
        programs: Arc<Programs>,
        now: DateTime<Utc>,
    ) -> Result<Vec<pb::SaleResult>, PointsError> {
        let buyer = |sale: &pb::Sale| sale.buyer.as_ref().and_then(|buyer| buyer.who.clone());
        // Replays are answered from what was recorded: their buyers need no resolving or enrolling.
        // Without buyers to resolve, the writer decides whether to read it (see `SalesWriter`).
        let resolves = checked.iter().any(|(index, check)| {
            !check.is_refund && matches!(buyer(&sales[*index]), Some(pb::buyer::Who::Identity(_)))
        });
        let recorded = if resolves {
            let keys: Vec<(String, String)> = checked
                .iter()
                .map(|(index, _)| (sales[*index].source.clone(), sales[*index].transaction_id.clone()))
                .collect();
            Some(answers(&self.db, &actor.tenant_id, &keys).await?)
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
            if check.is_refund || is_replay(sale) {
                continue;
            }
            if let Some(pb::buyer::Who::Identity(identity)) = buyer(sale) {
                let auto = check
                    .program_id
                    .as_ref()
                    .and_then(|id| programs.get(id))
                    .is_some_and(|(program, _)| program.auto_enroll);
                wanted.push(identity);
                enroll.push(auto);
                asked_by.push(*index);
            }
        }
        let resolved: HashMap<usize, Result<Option<String>, String>> = asked_by
            .into_iter()
            .zip(self.identity.resolve_buyers(&actor.tenant_id, wanted, &enroll).await?)
            .collect();
        let mut prepared = Vec::with_capacity(checked.len());
        for (index, check) in checked {
            // Each sale is needed once more, as the prepared sale's own.
            let sale = std::mem::take(&mut sales[index]);
            let plan = if check.is_refund {
                Plan::Refund {
                    original_key: sale.original_transaction_id.clone(),
                    refund_minor: check.amount_minor,
                }
            } else {
                let member = match buyer(&sale) {
                    // The sale's transaction follows merges to the survivor.
                    Some(pb::buyer::Who::MemberId(id)) => Ok(Some(id.trim().to_owned())),
                    Some(pb::buyer::Who::Identity(_)) => resolved.get(&index).cloned().unwrap_or(Ok(None)),
                    None => Ok(None),
                };
                match (member, check.program_id) {
                    (Err(why), _) => {
                        let index_i32 = i32::try_from(index).unwrap_or(i32::MAX);
                        let violation = FieldViolation::new("buyer.identity", why);
                        results[index] = Some(rejected_to_pb(index_i32, vec![violation]));
                        continue;
                    }
                    (Ok(Some(member_id)), Some(program_id)) => Plan::Purchase {
                        member_id,
                        purchase: Purchase {
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
                                at: sale
                                    .occurred_at
                                    .as_ref()
                                    .and_then(quanyu_runtime::clock::from_proto)
                                    .unwrap_or(now),
                            },
                        },
                    },
                    _ => Plan::NonMember,
                }
            };
            prepared.push(PreparedSale {
                index: i32::try_from(index).unwrap_or(i32::MAX),
                source: sale.source.clone(),
                key: sale.transaction_id.clone(),
                digest: RequestDigest::of(&sale),
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
        let rejected = counted(&results);
        tracing::info!(batch = results.len(), rejected, "sales recorded");
        if let Some(key) = batch_key {
            self.keep_answer(actor, key, &results, now).await;
        }
        Ok(results)
    }

    /// Keeps what a replay of the batch named `key` is answered, if every sale of it is recorded
    /// now (applied or a duplicate): each applied sale becomes a duplicate of itself. The sales
    /// are recorded whatever happens here: failing to keep the answer only leaves a replay to be
    /// answered sale by sale.
    async fn keep_answer(&self, actor: &TenantActor, key: String, results: &[pb::SaleResult], at: DateTime<Utc>) {
        let mut replayed = Vec::with_capacity(results.len());
        for result in results {
            match pb::SaleOutcome::try_from(result.outcome) {
                Ok(pb::SaleOutcome::Applied) => replayed.push(duplicate_of(result.index, result.clone())),
                Ok(pb::SaleOutcome::Duplicate) => replayed.push(result.clone()),
                _ => return,
            }
        }
        let record = NewRecord {
            scope: BATCH_SCOPE.to_owned(),
            key,
            request: RequestDigest::of(&()),
            response: pb::RecordSalesResponse { results: replayed }.encode_to_vec(),
        };
        let mut writes = Writes::new(&self.db);
        idempotency::record(&mut writes, &actor.tenant_id, vec![record], at);
        match writes.execute(&self.db).await {
            // The same batch answered twice at once keeps one answer: both are the same.
            Err(error) if !is_unique_violation(&error) => {
                tracing::warn!(%error, "could not keep the batch's answer for replays");
            }
            _ => {}
        }
    }
}

/// Names a batch by its sales, in order, as encoded.
fn digest(sales: &[pb::Sale]) -> Vec<u8> {
    let mut hasher = Sha256::new();
    for sale in sales {
        hasher.update(sale.encode_length_delimited_to_vec());
    }
    hasher.finalize().to_vec()
}

fn duplicate_of(index: i32, original: pb::SaleResult) -> pb::SaleResult {
    pb::SaleResult {
        index,
        outcome: pb::SaleOutcome::Duplicate.into(),
        original: Some(Box::new(original)),
        ..Default::default()
    }
}

/// The answer to a sale whose key is already recorded: the original answer if it is the same
/// sale, else a rejection naming the first field that differs.
fn replayed(sale: &PreparedSale, recorded: &Record) -> pb::SaleResult {
    let Some(field) = recorded.request.first_difference(&sale.digest) else {
        return pb::SaleResult {
            original: pb::SaleResult::decode(recorded.response.as_slice()).ok().map(Box::new),
            ..duplicate_of(sale.index, pb::SaleResult::default())
        };
    };
    let field = field_name::<pb::Sale>(field);
    let why = format!(
        "transaction {:?} of {:?} was recorded with a different {field}",
        sale.key, sale.source
    );
    rejected_to_pb(sale.index, vec![FieldViolation::new(field, why)])
}

/// A batch's sales applied to the accounts it loaded, one after another.
struct Batch<'a> {
    programs: &'a Programs,
    /// The survivor of each buyer merged since the sale.
    members_now: &'a HashMap<String, String>,
    accounts: HashMap<AccountId, Account>,
    /// The records of the sales the batch names: originals of its refunds, and its own sales as
    /// they are applied (a refund may follow its sale in one batch).
    records: SaleKeys<SaleRecord>,
    /// The answers of the batch's own sales, for one sent twice within it.
    answered: SaleKeys<Record>,
    /// Originals recorded before this transaction whose refunded share changed.
    changed_originals: BTreeSet<(String, String)>,
    at: DateTime<Utc>,
}

impl Batch<'_> {
    fn apply(&mut self, sale: &PreparedSale) -> Result<(pb::SaleResult, SaleRecord), Rejection> {
        let (effect, record) = match &sale.plan {
            Plan::NonMember => (SaleEffect::default(), SaleRecord::default()),
            Plan::Purchase { member_id, purchase } => {
                let Some((program, version)) = self.programs.get(&purchase.program_id) else {
                    return Err(Rejection::new("brand_id", "no program for this brand"));
                };
                let member_id = self.members_now.get(member_id).unwrap_or(member_id);
                let account = self
                    .accounts
                    .get_mut(&(purchase.program_id.clone(), member_id.clone()))
                    .ok_or_else(|| Rejection::new("buyer", "account not loaded"))?;
                apply_purchase(account, program, *version, purchase, &sale.key, self.at)?
            }
            Plan::Refund {
                original_key,
                refund_minor,
            } => self.refund(sale, original_key, *refund_minor)?,
        };
        Ok((applied_to_pb(sale.index, effect), record))
    }

    fn refund(
        &mut self,
        sale: &PreparedSale,
        original_key: &str,
        refund_minor: i64,
    ) -> Result<(SaleEffect, SaleRecord), Rejection> {
        let Some(original) = self.records.get_mut(&sale.source, original_key) else {
            return Err(Rejection::new(
                "original_transaction_id",
                format!("no sale {original_key:?} from source {:?} is recorded", sale.source),
            ));
        };
        refundable(original)?;
        let refund_record = SaleRecord {
            is_refund: true,
            ..SaleRecord::default()
        };
        let (Some(member_id), Some(program_id)) = (original.member_id.clone(), original.program_id.clone()) else {
            // A non-member's sale earned nothing to take back.
            return Ok((SaleEffect::default(), refund_record));
        };
        let member_id = self.members_now.get(&member_id).cloned().unwrap_or(member_id);
        let Some((program, version)) = self.programs.get(&program_id) else {
            return Err(Rejection::new(
                "original_transaction_id",
                "its program no longer exists",
            ));
        };
        let account = self
            .accounts
            .get_mut(&(program_id.clone(), member_id.clone()))
            .ok_or_else(|| Rejection::new("original_transaction_id", "account not loaded"))?;
        let effect = apply_refund(
            account,
            program,
            *version,
            original,
            original_key,
            refund_minor,
            self.at,
        )?;
        self.changed_originals
            .insert((sale.source.clone(), original_key.to_owned()));
        Ok((
            effect,
            SaleRecord {
                member_id: Some(member_id),
                program_id: Some(program_id),
                ..refund_record
            },
        ))
    }
}

/// Writes a batch in one transaction: each sale once, whatever the retries; answers each on its
/// own.
///
/// `recorded` holds the answers known to be recorded under the batch's keys, read before the
/// transaction (or nothing, for sales taken for new): replays are answered from it without one.
/// A sale whose key was recorded unknown to it (by a concurrent call, or before) makes the
/// insert of its key fail, and the caller's retry reads again.
pub async fn write_batch(
    db: &DatabaseConnection,
    actor: &TenantActor,
    programs: &Programs,
    sales: &[PreparedSale],
    recorded: SaleKeys<Record>,
    at: DateTime<Utc>,
) -> Result<Vec<pb::SaleResult>, PointsError> {
    let tenant_id = actor.tenant_id.as_ref();
    let is_fresh = |sale: &&PreparedSale| !recorded.contains(&sale.source, &sale.key);
    if !sales.iter().any(|sale| is_fresh(&sale)) {
        return Ok(sales
            .iter()
            .filter_map(|sale| Some(replayed(sale, recorded.get(&sale.source, &sale.key)?)))
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
    let mut records = SaleKeys::default();
    for (source, key, record) in store::sales::find(&txn, tenant_id, &originals, true).await? {
        records.insert(&source, key, record);
    }
    // Every account the batch touches as its sales name them, locked in one order. Points go
    // where the member is now: to the survivor's account if the buyer has been merged since.
    // Replays touch no account: they are answered from what was recorded.
    let mut touched: BTreeSet<AccountId> = BTreeSet::new();
    for sale in sales.iter().filter(is_fresh) {
        match &sale.plan {
            Plan::Purchase { member_id, purchase } => {
                touched.insert((purchase.program_id.clone(), member_id.clone()));
            }
            Plan::Refund { original_key, .. } => {
                let original = records.get(&sale.source, original_key);
                if let Some((Some(member), Some(program))) = original.map(|op| (&op.member_id, &op.program_id)) {
                    touched.insert((program.clone(), member.clone()));
                }
            }
            Plan::NonMember => {}
        }
    }
    let (accounts, members_now) =
        store::accounts::load_following_merges(&txn, tenant_id, programs, touched, at).await?;
    let mut batch = Batch {
        programs,
        members_now: &members_now,
        accounts,
        records,
        answered: SaleKeys::default(),
        changed_originals: BTreeSet::new(),
        at,
    };
    let mut results = Vec::with_capacity(sales.len());
    let mut applied = Vec::new();
    let mut sale_events = Vec::new();
    for sale in sales {
        // Recorded before this transaction, or earlier in this batch.
        let first = recorded
            .get(&sale.source, &sale.key)
            .or_else(|| batch.answered.get(&sale.source, &sale.key));
        if let Some(first) = first {
            results.push(replayed(sale, first));
            continue;
        }
        match batch.apply(sale) {
            Ok((result, record)) => {
                sale_events.push(events::sale_recorded(tenant_id, &sale.sale, &result));
                let answer = Record {
                    request: sale.digest.clone(),
                    response: result.encode_to_vec(),
                };
                batch.answered.insert(&sale.source, sale.key.clone(), answer);
                batch.records.insert(&sale.source, sale.key.clone(), record);
                applied.push(sale);
                results.push(result);
            }
            Err(rejection) => {
                let violation = FieldViolation::new(rejection.field, rejection.description);
                results.push(rejected_to_pb(sale.index, vec![violation]));
            }
        }
    }
    let mut saved: Vec<&mut Account> = batch.accounts.values_mut().collect();
    saved.sort_by(|a, b| (&a.program_id, &a.member_id).cmp(&(&b.program_id, &b.member_id)));
    let mut writes = Writes::new(&txn);
    let (mut events, tally) = save_accounts(&mut writes, tenant_id, programs, &mut saved, at);
    // The accounts and their entries are written while the sales' records and events are built.
    let build_rest = |writes: &mut Writes| {
        events.extend(sale_events);
        let mut new_sales = Vec::with_capacity(applied.len());
        for sale in applied {
            let (source, key) = (&sale.source, &sale.key);
            let record = batch.records.remove(source, key);
            let answer = batch.answered.remove(source, key);
            if let (Some(record), Some(answer)) = (record, answer) {
                new_sales.push(NewSale {
                    source: source.clone(),
                    key: key.clone(),
                    answer,
                    record,
                });
            }
        }
        store::sales::insert(writes, tenant_id, new_sales, at);
        // New sales have just moved into their insert, refunded shares and all: what is left of
        // the changed originals was recorded before this transaction.
        for (source, key) in &batch.changed_originals {
            if let Some(original) = batch.records.get(source, key) {
                store::sales::update_refunded(writes, tenant_id, source, key, original);
            }
        }
        quanyu_outbox::append_to(writes, events);
    };
    writes.execute_while(&txn, build_rest).await?;
    txn.commit().await?;
    tally.count();
    Ok(results)
}

/// Counts answered sales by outcome (`points_sales_total{outcome}`) and the rejected ones by the
/// field refused first, its indexes left out (`points_sales_rejected_total{field}`: `lines.sku`);
/// returns how many were rejected.
fn counted(results: &[pb::SaleResult]) -> usize {
    let mut rejected = 0;
    for result in results {
        let outcome = pb::SaleOutcome::try_from(result.outcome).unwrap_or(pb::SaleOutcome::Unspecified);
        let label = outcome.as_str_name().trim_start_matches("SALE_OUTCOME_").to_lowercase();
        metrics::counter!("points_sales_total", "outcome" => label).increment(1);
        if outcome == pb::SaleOutcome::Rejected {
            rejected += 1;
            let field = result
                .violations
                .first()
                .map_or("", |violation| violation.field.as_str());
            metrics::counter!("points_sales_rejected_total", "field" => without_indexes(field)).increment(1);
        }
    }
    rejected
}

/// `lines[3].sku` as `lines.sku`: a label with one value per field, not per line.
fn without_indexes(field: &str) -> String {
    let mut kept = String::with_capacity(field.len());
    let mut in_index = false;
    for character in field.chars() {
        match character {
            '[' => in_index = true,
            ']' => in_index = false,
            _ if !in_index => kept.push(character),
            _ => {}
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sale(key: &str) -> pb::Sale {
        pb::Sale {
            source: "pos".into(),
            transaction_id: key.into(),
            ..Default::default()
        }
    }

    #[test]
    fn a_batch_is_named_by_its_sales_in_order() {
        let batch = [sale("a"), sale("b")];
        assert_eq!(digest(&batch), digest(&batch.clone()));
        assert_ne!(digest(&batch), digest(&[sale("b"), sale("a")]));
        assert_ne!(digest(&batch), digest(&[sale("a")]));
        // Sales are delimited: moving a byte from one to the next is another batch.
        assert_ne!(digest(&batch), digest(&[sale("ab"), sale("")]));
    }

    #[test]
    fn a_rejected_field_is_counted_without_its_indexes() {
        assert_eq!(without_indexes("lines[12].sku"), "lines.sku");
        assert_eq!(
            without_indexes("program.earning.multipliers[0]"),
            "program.earning.multipliers"
        );
        assert_eq!(without_indexes("buyer.identity"), "buyer.identity");
    }
}
