//! The use cases of loyalty-points, one database transaction each.
//!
//! An account's row is locked (on PostgreSQL `FOR UPDATE`; SQLite has one writer) before its
//! ledger is loaded, changed by the domain rules and written back, so concurrent tills crediting
//! or redeeming on one member serialize on that row and never lose an update; a batch locks its
//! accounts in one fixed order, so batches cannot deadlock each other. Expired lots are turned
//! into EXPIRE entries whenever an account is loaded for a change.

pub mod entity;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use chrono::{DateTime, Datelike, SubsecRound, Utc};
use quanyu_runtime::auth::TenantActor;
use quanyu_runtime::db::{Writes, begin_write, find_by_keys, find_columns_by_keys};
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, DatabaseConnection, DatabaseTransaction, DbErr, EntityTrait, FromQueryResult,
    Iterable, QueryFilter, QueryOrder, QuerySelect,
};

use quanyu_outbox::NewEvent;
use quanyu_proto::events::v1::event::Payload;
use quanyu_proto::points::v1::{self as pb, HoldEnd};

use crate::domain::ledger::{Entry, EntryKind, Hold, Ledger};
use crate::domain::tiers::TierState;
use crate::error::PointsError;
use crate::program::ProgramRules;
use entity::{accounts, aliases, entries, operations, programs};

type Result<T> = std::result::Result<T, PointsError>;

/// Timestamps are kept to the microsecond, as PostgreSQL stores them.
pub fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

// ---- programs ----

pub struct StoredProgram {
    pub definition: Vec<u8>,
    pub rules_version: u32,
}

pub async fn upsert_program(
    db: &DatabaseConnection,
    tenant_id: &str,
    program_id: &str,
    brand_id: &str,
    encode: impl Fn(u32) -> Vec<u8>,
) -> Result<StoredProgram> {
    let txn = begin_write(db).await?;
    let current = programs::Entity::find_by_id((tenant_id.to_owned(), program_id.to_owned()))
        .lock_exclusive()
        .one(&txn)
        .await?;
    let clash = programs::Entity::find()
        .filter(programs::Column::TenantId.eq(tenant_id))
        .filter(programs::Column::BrandId.eq(brand_id))
        .filter(programs::Column::Id.ne(program_id))
        .one(&txn)
        .await?;
    if let Some(other) = clash {
        return Err(PointsError::BrandTaken {
            brand_id: brand_id.to_owned(),
            program_id: other.id,
        });
    }
    let version = current.as_ref().map_or(1, |row| row.rules_version.unsigned_abs() + 1);
    let definition = encode(version);
    let row = programs::ActiveModel {
        tenant_id: Set(tenant_id.to_owned()),
        id: Set(program_id.to_owned()),
        brand_id: Set(brand_id.to_owned()),
        rules_version: Set(i32::try_from(version).unwrap_or(i32::MAX)),
        definition: Set(definition.clone()),
        updated_at: Set(now()),
    };
    programs::Entity::insert(row)
        .on_conflict(
            OnConflict::columns([programs::Column::TenantId, programs::Column::Id])
                .update_columns([
                    programs::Column::BrandId,
                    programs::Column::RulesVersion,
                    programs::Column::Definition,
                    programs::Column::UpdatedAt,
                ])
                .to_owned(),
        )
        .exec_without_returning(&txn)
        .await?;
    txn.commit().await?;
    Ok(StoredProgram {
        definition,
        rules_version: version,
    })
}

/// Every program of a tenant with its rules, by id.
pub async fn program_rules(db: &DatabaseConnection, tenant_id: &str) -> Result<sales::Programs> {
    program_rules_in(db, tenant_id).await
}

async fn program_rules_in<C: sea_orm::ConnectionTrait>(db: &C, tenant_id: &str) -> Result<sales::Programs> {
    let mut rules = HashMap::new();
    for row in programs(db, tenant_id).await? {
        let definition = <quanyu_proto::points::v1::Program as prost::Message>::decode(row.definition.as_slice())
            .map_err(|error| PointsError::Database(DbErr::Custom(format!("program {}: {error}", row.id))))?;
        let version = row.rules_version.unsigned_abs();
        let program = ProgramRules::from_pb(&definition, version).map_err(PointsError::InvalidInput)?;
        rules.insert(row.id, (program, version));
    }
    Ok(rules)
}

/// Every program of a tenant, as stored.
pub async fn programs<C: sea_orm::ConnectionTrait>(db: &C, tenant_id: &str) -> Result<Vec<programs::Model>> {
    Ok(programs::Entity::find()
        .filter(programs::Column::TenantId.eq(tenant_id))
        .order_by_asc(programs::Column::Id)
        .all(db)
        .await?)
}

// ---- accounts ----

/// An account loaded for a change: its ledger and tier, locked until the transaction ends.
pub struct Account {
    pub program_id: String,
    pub member_id: String,
    pub ledger: Ledger,
    pub tier: TierState,
    growth_year: i32,
    /// Points earned today before this transaction, for the daily cap; kept current as a batch
    /// earns.
    pub(crate) earned_today: i64,
    /// The tier and holds as loaded, to tell what changed when the account is saved.
    loaded_tier: String,
    loaded_holds: Vec<u64>,
    /// Not in the database yet: saved with a plain insert, which fails (and the transaction is
    /// retried) if a concurrent one created the account first.
    is_new: bool,
    /// Holds that ended in this transaction, and how.
    pub(crate) ended_holds: Vec<(Hold, HoldEnd)>,
}

/// Identifies an account within a tenant: (program id, member id).
pub type AccountId = (String, String);

/// Loads the accounts and locks their rows: one statement per program (their lots and holds
/// are in their rows). Accounts missing are made in memory and created when saved, so a first
/// sale costs no statement of its own and writes its row once. Rows are locked in key order
/// (probed in the order of the sorted keys, new ones inserted in that order too), so
/// transactions that share accounts do not deadlock, but in a race on their first sale, which
/// PostgreSQL detects and the caller retries. Due lots expire and lapsed holds end here.
async fn load_accounts(
    txn: &DatabaseTransaction,
    tenant_id: &str,
    programs: &sales::Programs,
    wanted: impl IntoIterator<Item = AccountId>,
    at: DateTime<Utc>,
) -> Result<HashMap<AccountId, Account>> {
    let wanted = in_programs(programs, wanted);
    let rows = lock_rows(txn, tenant_id, &wanted).await?;
    build_accounts(txn, tenant_id, programs, &wanted, rows, at).await
}

/// The accounts of `wanted` whose program exists, in key order.
fn in_programs(programs: &sales::Programs, wanted: impl IntoIterator<Item = AccountId>) -> BTreeSet<AccountId> {
    wanted
        .into_iter()
        .filter(|(program_id, _)| programs.contains_key(program_id))
        .collect()
}

/// The members of `accounts` by program, each program's in key order.
fn members_by_program(accounts: &BTreeSet<AccountId>) -> BTreeMap<&str, Vec<String>> {
    let mut members_of: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for (program_id, member_id) in accounts {
        members_of
            .entry(program_id.as_str())
            .or_default()
            .push(member_id.clone());
    }
    members_of
}

/// Locks and reads the rows of those of `wanted` that exist, one statement per program.
async fn lock_rows(
    txn: &DatabaseTransaction,
    tenant_id: &str,
    wanted: &BTreeSet<AccountId>,
) -> Result<Vec<accounts::Model>> {
    let mut rows = Vec::with_capacity(wanted.len());
    for (program_id, members) in members_by_program(wanted) {
        let scope = [
            (accounts::Column::TenantId, tenant_id.into()),
            (accounts::Column::ProgramId, program_id.into()),
        ];
        let key = accounts::Column::MemberId;
        rows.extend(find_by_keys::<accounts::Entity, _>(txn, &scope, key, members, true).await?);
    }
    Ok(rows)
}

/// The accounts of `wanted` from their locked `rows`; those without a row are made in memory.
async fn build_accounts(
    txn: &DatabaseTransaction,
    tenant_id: &str,
    programs: &sales::Programs,
    wanted: &BTreeSet<AccountId>,
    rows: Vec<accounts::Model>,
    at: DateTime<Utc>,
) -> Result<HashMap<AccountId, Account>> {
    if wanted.is_empty() {
        return Ok(HashMap::new());
    }
    let found: HashSet<(&str, &str)> = rows
        .iter()
        .map(|row| (row.program_id.as_str(), row.member_id.as_str()))
        .collect();
    let new_rows: Vec<accounts::Model> = wanted
        .iter()
        .filter(|(program_id, member_id)| !found.contains(&(program_id.as_str(), member_id.as_str())))
        .map(|(program_id, member_id)| {
            let program = &programs[program_id].0;
            accounts::Model {
                tenant_id: tenant_id.to_owned(),
                program_id: program_id.clone(),
                member_id: member_id.clone(),
                balance: 0,
                growth_period: 0,
                growth_lifetime: 0,
                growth_year: at.with_timezone(&program.offset).year(),
                tier: program.ladder.tier_for(0).code.clone(),
                next_id: 0,
                updated_at: at,
                ledger: None,
                next_due: None,
            }
        })
        .collect();
    let rows = rows
        .into_iter()
        .map(|row| (row, false))
        .chain(new_rows.into_iter().map(|row| (row, true)));
    let mut earned_of: HashMap<AccountId, i64> = HashMap::new();
    for (program_id, members) in &members_by_program(wanted) {
        let program = &programs[*program_id].0;
        if program.earning.cap_per_day.is_some() {
            for (member_id, earned) in earned_today(txn, tenant_id, program, members, at).await? {
                earned_of.insert(((*program_id).to_owned(), member_id), earned);
            }
        }
    }
    let mut loaded = HashMap::new();
    for (row, is_new) in rows {
        let id = (row.program_id.clone(), row.member_id.clone());
        let program = &programs[&row.program_id].0;
        let year = at.with_timezone(&program.offset).year();
        let (lots, holds) = ledger_state::decode(row.ledger.as_deref().unwrap_or_default()).map_err(|error| {
            let account = format!("{}/{}", row.program_id, row.member_id);
            PointsError::Database(DbErr::Custom(format!(
                "account {account} has an undecodable ledger: {error}"
            )))
        })?;
        let mut ledger = Ledger::restore(row.balance, lots, holds, row.next_id.unsigned_abs());
        let loaded_holds = ledger.holds().iter().map(|hold| hold.id).collect();
        let ended_holds = ledger
            .release_expired_holds(at)
            .into_iter()
            .map(|hold| (hold, HoldEnd::Expired))
            .collect();
        ledger.expire(at);
        let mut tier = TierState {
            tier: row.tier.clone(),
            period_growth: row.growth_period,
            lifetime_growth: row.growth_lifetime,
        };
        // Each calendar year that ended since the account last changed closes a period.
        for _ in row.growth_year..year.min(row.growth_year + 2) {
            tier.close_period(&program.ladder);
        }
        let account = Account {
            program_id: row.program_id,
            member_id: row.member_id,
            ledger,
            tier,
            growth_year: year.max(row.growth_year),
            earned_today: earned_of.remove(&id).unwrap_or_default(),
            loaded_tier: row.tier,
            loaded_holds,
            is_new,
            ended_holds,
        };
        loaded.insert(id, account);
    }
    Ok(loaded)
}

fn entry_kind(kind: EntryKind) -> &'static str {
    match kind {
        EntryKind::Earn => "EARN",
        EntryKind::Redeem => "REDEEM",
        EntryKind::Expire => "EXPIRE",
        EntryKind::Reverse => "REVERSE",
        EntryKind::Adjust => "ADJUST",
        EntryKind::Grant => "GRANT",
        EntryKind::MergeIn => "MERGE_IN",
        EntryKind::MergeOut => "MERGE_OUT",
    }
}

/// Adds the writes that save accounts, one statement per table whatever their number: their rows
/// (with their lots and holds) and the entries appended; returns the events that describe it all.
fn save_accounts<'a>(
    writes: &mut Writes,
    tenant_id: &str,
    programs: &sales::Programs,
    accounts: impl IntoIterator<Item = &'a mut Account>,
    at: DateTime<Utc>,
) -> Vec<NewEvent> {
    let mut account_rows = Vec::new();
    let mut new_account_rows = Vec::new();
    let mut entry_rows = Vec::new();
    let mut events = Vec::new();
    for account in accounts {
        let version = programs.get(&account.program_id).map_or(0, |(_, version)| *version);
        let rules_version = i32::try_from(version).unwrap_or(i32::MAX);
        let (program_id, member_id) = (account.program_id.clone(), account.member_id.clone());
        let row = accounts::ActiveModel {
            tenant_id: Set(tenant_id.to_owned()),
            program_id: Set(program_id.clone()),
            member_id: Set(member_id.clone()),
            balance: Set(account.ledger.balance()),
            growth_period: Set(account.tier.period_growth),
            growth_lifetime: Set(account.tier.lifetime_growth),
            growth_year: Set(account.growth_year),
            tier: Set(account.tier.tier.clone()),
            next_id: Set(to_i64(account.ledger.last_id())),
            updated_at: Set(at),
            ledger: Set(Some(ledger_state::encode(
                account.ledger.lots(),
                account.ledger.holds(),
            ))),
            next_due: Set(ledger_state::next_due(account.ledger.lots(), account.ledger.holds())),
        };
        if std::mem::take(&mut account.is_new) {
            new_account_rows.push(row);
        } else {
            account_rows.push(row);
        }
        let appended: Vec<Entry> = account.ledger.take_entries();
        events.extend(account_events(tenant_id, account, &appended, version));
        entry_rows.extend(appended.into_iter().map(|entry| entries::ActiveModel {
            tenant_id: Set(tenant_id.to_owned()),
            id: Set(uuid::Uuid::now_v7().to_string()),
            program_id: Set(program_id.clone()),
            member_id: Set(member_id.clone()),
            kind: Set(entry_kind(entry.kind).to_owned()),
            points: Set(entry.amount),
            balance_after: Set(entry.balance_after),
            at: Set(entry.at),
            reference: Set(entry.reference),
            rules_version: Set(rules_version),
        }));
    }
    writes.update_many(account_rows);
    writes.insert_many(new_account_rows, None);
    writes.insert_many(entry_rows, None);
    events
}

/// Saves accounts with the events that describe it, when nothing else is written beside them.
async fn save_accounts_alone<'a>(
    txn: &DatabaseTransaction,
    tenant_id: &str,
    programs: &sales::Programs,
    accounts: impl IntoIterator<Item = &'a mut Account>,
    at: DateTime<Utc>,
) -> Result<()> {
    let mut writes = Writes::new(txn);
    let events = save_accounts(&mut writes, tenant_id, programs, accounts, at);
    quanyu_outbox::append_to(&mut writes, events);
    Ok(writes.execute(txn).await?)
}

fn entry_kind_pb(kind: EntryKind) -> pb::EntryKind {
    match kind {
        EntryKind::Earn => pb::EntryKind::Earn,
        EntryKind::Redeem => pb::EntryKind::Redeem,
        EntryKind::Expire => pb::EntryKind::Expire,
        EntryKind::Reverse => pb::EntryKind::Reverse,
        EntryKind::Adjust => pb::EntryKind::Adjust,
        EntryKind::Grant => pb::EntryKind::Grant,
        EntryKind::MergeIn => pb::EntryKind::MergeIn,
        EntryKind::MergeOut => pb::EntryKind::MergeOut,
    }
}

/// An event about an account.
pub(crate) fn account_event(tenant_id: &str, program_id: &str, member_id: &str, payload: Payload) -> NewEvent {
    NewEvent {
        tenant_id: tenant_id.to_owned(),
        aggregate_type: "account",
        aggregate_id: format!("{program_id}/{member_id}"),
        payload,
    }
}

/// The events of what an account's save changes: its entries, its tier, its holds.
fn account_events(tenant_id: &str, account: &Account, appended: &[Entry], rules_version: u32) -> Vec<NewEvent> {
    let (program_id, member_id) = (account.program_id.as_str(), account.member_id.as_str());
    let event = |payload| account_event(tenant_id, program_id, member_id, payload);
    let mut events: Vec<NewEvent> = appended
        .iter()
        .map(|entry| {
            event(Payload::PointsChanged(pb::PointsChanged {
                member_id: member_id.to_owned(),
                program_id: program_id.to_owned(),
                kind: entry_kind_pb(entry.kind).into(),
                points: entry.amount,
                balance_after: entry.balance_after,
                reference: entry.reference.clone(),
                rules_version,
            }))
        })
        .collect();
    if account.tier.tier != account.loaded_tier {
        events.push(event(Payload::TierChanged(pb::TierChanged {
            member_id: member_id.to_owned(),
            program_id: program_id.to_owned(),
            from_tier: account.loaded_tier.clone(),
            to_tier: account.tier.tier.clone(),
        })));
    }
    for hold in account
        .ledger
        .holds()
        .iter()
        .filter(|hold| !account.loaded_holds.contains(&hold.id))
    {
        events.push(event(Payload::HoldPlaced(pb::HoldPlaced {
            member_id: member_id.to_owned(),
            program_id: program_id.to_owned(),
            hold_id: hold.id.to_string(),
            points: hold.amount,
            expires_at: Some(quanyu_runtime::clock::to_proto(hold.expires_at)),
        })));
    }
    for (hold, end) in &account.ended_holds {
        events.push(event(Payload::HoldReleased(pb::HoldReleased {
            member_id: member_id.to_owned(),
            program_id: program_id.to_owned(),
            hold_id: hold.id.to_string(),
            points: hold.amount,
            end: (*end).into(),
        })));
    }
    events
}

/// Points each member earned today (in the program's time zone), for the daily cap.
async fn earned_today(
    txn: &DatabaseTransaction,
    tenant_id: &str,
    program: &ProgramRules,
    members: &[String],
    at: DateTime<Utc>,
) -> Result<Vec<(String, i64)>> {
    let local = at.with_timezone(&program.offset);
    let midnight = local
        .date_naive()
        .and_hms_opt(0, 0, 0)
        .and_then(|midnight| midnight.and_local_timezone(program.offset).single())
        .map_or(at, |midnight| midnight.with_timezone(&Utc));
    // PostgreSQL sums BIGINT as NUMERIC: cast back.
    let earned: Vec<(String, i64)> = entries::Entity::find()
        .select_only()
        .column(entries::Column::MemberId)
        .column_as(
            sea_orm::ExprTrait::cast_as(entries::Column::Points.sum(), "BIGINT"),
            "earned",
        )
        .filter(entries::Column::TenantId.eq(tenant_id))
        .filter(entries::Column::ProgramId.eq(program.id.as_str()))
        .filter(entries::Column::MemberId.is_in(members.to_vec()))
        .filter(entries::Column::Kind.eq("EARN"))
        .filter(entries::Column::At.gte(midnight))
        .group_by(entries::Column::MemberId)
        .into_tuple()
        .all(txn)
        .await?;
    Ok(earned)
}

pub mod accounts_api;
pub mod batch_answers;
pub mod ledger_state;
pub mod merge;
pub mod sales;
pub mod sweep;

pub use accounts_api::*;
pub use merge::{current_members, fold_merged};

/// What a transaction needs to know to run against an account.
pub struct AccountKey<'a> {
    pub actor: &'a TenantActor,
    pub program: &'a ProgramRules,
    pub rules_version: u32,
    pub member_id: &'a str,
}

/// An idempotent write's identity within its tenant.
pub trait Keyed {
    fn source(&self) -> &str;
    fn key(&self) -> &str;
}

impl Keyed for operations::Model {
    fn source(&self) -> &str {
        &self.source
    }

    fn key(&self) -> &str {
        &self.key
    }
}

/// What a replay needs of a recorded operation: the request to compare, the result to answer.
#[derive(Debug, Clone, FromQueryResult)]
pub struct Recording {
    pub source: String,
    pub key: String,
    pub request: Vec<u8>,
    pub result: Vec<u8>,
}

impl Keyed for Recording {
    fn source(&self) -> &str {
        &self.source
    }

    fn key(&self) -> &str {
        &self.key
    }
}

/// Operations recorded, by source and key: looked up by borrowed keys, since a 1,000-sale replay
/// asks several times per sale.
#[derive(Debug, Clone)]
pub struct Recorded<T = operations::Model> {
    by_source: HashMap<String, HashMap<String, T>>,
}

impl<T> Default for Recorded<T> {
    fn default() -> Self {
        Self {
            by_source: HashMap::new(),
        }
    }
}

impl<T: Keyed> Recorded<T> {
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

    /// Adds an operation under its own source and key, replacing what was there.
    pub fn insert(&mut self, operation: T) {
        // Most operations share their source with one already held: its name is not copied again.
        let by_key = match self.by_source.get_mut(operation.source()) {
            Some(by_key) => by_key,
            None => self.by_source.entry(operation.source().to_owned()).or_default(),
        };
        by_key.insert(operation.key().to_owned(), operation);
    }

    pub fn extend(&mut self, other: Recorded<T>) {
        for operation in other.into_values() {
            self.insert(operation);
        }
    }

    pub fn values(&self) -> impl Iterator<Item = &T> {
        self.by_source.values().flat_map(HashMap::values)
    }

    pub fn into_values(self) -> impl Iterator<Item = T> {
        self.by_source.into_values().flat_map(HashMap::into_values)
    }
}

/// Operations already recorded under these keys, whole. Keys are kept for good, so what a read
/// outside a transaction finds stays true; `lock` holds the rows until the transaction ends (a
/// refund updates its original's refunded share).
pub async fn recorded<C: sea_orm::ConnectionTrait>(
    db: &C,
    tenant_id: &str,
    keys: &[(String, String)],
    lock: bool,
) -> Result<Recorded> {
    let columns: Vec<operations::Column> = operations::Column::iter().collect();
    read_recorded(db, tenant_id, keys, &columns, lock).await
}

/// What a replay of these keys needs of their recorded operations (see [`recorded`]).
pub async fn recordings<C: sea_orm::ConnectionTrait>(
    db: &C,
    tenant_id: &str,
    keys: &[(String, String)],
) -> Result<Recorded<Recording>> {
    use operations::Column;
    let columns = [Column::Source, Column::Key, Column::Request, Column::Result];
    read_recorded(db, tenant_id, keys, &columns, false).await
}

/// The `columns` of operations recorded under these keys, one query per source.
async fn read_recorded<T, C>(
    db: &C,
    tenant_id: &str,
    keys: &[(String, String)],
    columns: &[operations::Column],
    lock: bool,
) -> Result<Recorded<T>>
where
    T: Keyed + FromQueryResult,
    C: sea_orm::ConnectionTrait,
{
    let mut by_source: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for (source, key) in keys {
        by_source.entry(source.as_str()).or_default().push(key.clone());
    }
    let mut found = Recorded::default();
    for (source, mut keys) in by_source {
        // Rows are locked in the order of the keys: one order for every transaction.
        keys.sort_unstable();
        let scope = [
            (operations::Column::TenantId, tenant_id.into()),
            (operations::Column::Source, source.into()),
        ];
        let key = operations::Column::Key;
        for row in find_columns_by_keys::<operations::Entity, T, _>(db, &scope, key, keys, columns, lock).await? {
            found.insert(row);
        }
    }
    Ok(found)
}
