//! Accounts as rows: loaded and locked for a change, saved with the entries the change appended.
//!
//! An account's row is locked (on PostgreSQL `FOR UPDATE`; SQLite has one writer) before its
//! ledger is loaded, so concurrent tills crediting or redeeming on one member serialize on that
//! row and never lose an update; a transaction locks its accounts in one fixed order (key order),
//! so transactions that share accounts do not deadlock. An account's open lots and holds are in
//! its row (`ledger_state`): loading or saving it is one statement whatever its lots.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use quanyu_runtime::db::{Writes, find_by_keys, lock_keys};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseTransaction, DbBackend, DbErr, EntityTrait,
    FromQueryResult, IdenStatic, Iterable, QueryFilter, QueryOrder, QuerySelect, Statement,
};

use super::entity::{accounts, entries};
use super::{aliases, ledger_state};
use crate::domain::account::{Account, StoredAccount};
use crate::domain::ledger::{Entry, EntryKind};
use crate::domain::program::{ProgramRules, Programs};

type Result<T> = std::result::Result<T, DbErr>;

/// Identifies an account within a tenant: (program id, member id).
pub type AccountId = (String, String);

/// Loads the accounts of `wanted` whose program exists and locks their rows: one statement per
/// program. Accounts that have no row yet are opened in memory and created by the save (an
/// insert of the same upsert that updates the others), under a lock of their key taken here, so
/// that two transactions never both create one. Due lots expire and lapsed holds end here.
pub async fn load(
    txn: &DatabaseTransaction,
    tenant_id: &str,
    programs: &Programs,
    wanted: impl IntoIterator<Item = AccountId>,
    at: DateTime<Utc>,
) -> Result<HashMap<AccountId, Account>> {
    let wanted = in_programs(programs, wanted);
    let rows = lock_rows(txn, tenant_id, &wanted).await?;
    build(txn, tenant_id, programs, &wanted, rows, at).await
}

/// Loads and locks the accounts of `wanted` as [`load`] does, following merges: a member merged
/// into another since names the survivor's account. Returns the accounts under the ids they are
/// kept by, and the survivor of each member of `wanted` that was merged.
///
/// A sale's transaction reads whether its buyers were merged with the lock of their accounts, in
/// one statement per program on PostgreSQL: no round trip of its own for a check that is almost
/// always negative. A merged member's own account is then locked too, and left unchanged; the
/// survivor's is locked after it, out of key order, so a deadlock there (rare as merges) is
/// detected by PostgreSQL and retried like any other.
pub async fn load_following_merges(
    txn: &DatabaseTransaction,
    tenant_id: &str,
    programs: &Programs,
    wanted: impl IntoIterator<Item = AccountId>,
    at: DateTime<Utc>,
) -> Result<(HashMap<AccountId, Account>, HashMap<String, String>)> {
    let wanted = in_programs(programs, wanted);
    let (mut rows, merged) = lock_rows_and_merges(txn, tenant_id, &wanted).await?;
    if merged.is_empty() {
        return Ok((build(txn, tenant_id, programs, &wanted, rows, at).await?, merged));
    }
    let followed: BTreeSet<AccountId> = wanted
        .iter()
        .map(|(program_id, member_id)| (program_id.clone(), merged.get(member_id).unwrap_or(member_id).clone()))
        .collect();
    rows.retain(|row| followed.contains(&(row.program_id.clone(), row.member_id.clone())));
    let survivors: BTreeSet<AccountId> = followed.difference(&wanted).cloned().collect();
    rows.extend(lock_rows(txn, tenant_id, &survivors).await?);
    let accounts = build(txn, tenant_id, programs, &followed, rows, at).await?;
    Ok((accounts, merged))
}

/// The accounts of `wanted` whose program exists, in key order.
fn in_programs(programs: &Programs, wanted: impl IntoIterator<Item = AccountId>) -> BTreeSet<AccountId> {
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

/// The locked rows of those of `wanted` that exist, and the survivor of each member that was
/// merged.
async fn lock_rows_and_merges(
    txn: &DatabaseTransaction,
    tenant_id: &str,
    wanted: &BTreeSet<AccountId>,
) -> Result<(Vec<accounts::Model>, HashMap<String, String>)> {
    if txn.get_database_backend() != DbBackend::Postgres {
        let members: BTreeSet<String> = wanted.iter().map(|(_, member_id)| member_id.clone()).collect();
        let members: Vec<String> = members.into_iter().collect();
        let mut merged = aliases::current_members(txn, tenant_id, &members).await?;
        merged.retain(|member_id, survivor_id| member_id != survivor_id);
        return Ok((lock_rows(txn, tenant_id, wanted).await?, merged));
    }
    let columns: Vec<String> = accounts::Column::iter()
        .map(|column| format!("\"{}\"", column.as_str()))
        .collect();
    // Each member is probed in each table by key, in key order, as `find_by_keys` does.
    let sql = format!(
        "SELECT wanted.key AS wanted_member, merged.survivor_id AS merged_into, probed.* \
         FROM unnest($3::text[]) AS wanted(key) \
         LEFT JOIN LATERAL (SELECT survivor_id FROM member_aliases \
         WHERE tenant_id = $1 AND member_id = wanted.key OFFSET 0) AS merged ON true \
         LEFT JOIN LATERAL (SELECT {} FROM accounts \
         WHERE tenant_id = $1 AND program_id = $2 AND member_id = wanted.key OFFSET 0 FOR UPDATE) AS probed ON true",
        columns.join(", ")
    );
    let mut rows = Vec::with_capacity(wanted.len());
    let mut merged = HashMap::new();
    for (program_id, members) in members_by_program(wanted) {
        let values: [sea_orm::Value; 3] = [tenant_id.into(), program_id.into(), members.into()];
        let statement = Statement::from_sql_and_values(DbBackend::Postgres, sql.as_str(), values);
        for row in txn.query_all_raw(statement).await? {
            let member_id: String = row.try_get("", "wanted_member")?;
            if let Some(survivor_id) = row.try_get::<Option<String>>("", "merged_into")? {
                merged.insert(member_id, survivor_id);
            }
            // A member without an account here has no row to read.
            if row.try_get::<Option<String>>("", "member_id")?.is_some() {
                rows.push(accounts::Model::from_query_result(&row, "")?);
            }
        }
    }
    Ok((rows, merged))
}

/// The accounts of `wanted` from their locked `rows`; those without a row are opened in memory.
async fn build(
    txn: &DatabaseTransaction,
    tenant_id: &str,
    programs: &Programs,
    wanted: &BTreeSet<AccountId>,
    mut rows: Vec<accounts::Model>,
    at: DateTime<Utc>,
) -> Result<HashMap<AccountId, Account>> {
    if wanted.is_empty() {
        return Ok(HashMap::new());
    }
    let found: BTreeSet<(&str, &str)> = rows
        .iter()
        .map(|row| (row.program_id.as_str(), row.member_id.as_str()))
        .collect();
    let missing: BTreeSet<AccountId> = wanted
        .iter()
        .filter(|(program_id, member_id)| !found.contains(&(program_id.as_str(), member_id.as_str())))
        .cloned()
        .collect();
    if !missing.is_empty() {
        // An account is created by the save of the transaction that first finds it missing, as
        // an insert: a transaction that finds it missing too waits here for that one to end, then
        // finds its row, instead of opening an empty account of its own (insert or lock).
        let keys: Vec<String> = missing
            .iter()
            .map(|(program_id, member_id)| format!("account\u{0}{tenant_id}\u{0}{program_id}\u{0}{member_id}"))
            .collect();
        lock_keys(txn, &keys).await?;
        rows.extend(lock_rows(txn, tenant_id, &missing).await?);
    }
    let mut earned_of: HashMap<AccountId, i64> = HashMap::new();
    for (program_id, members) in &members_by_program(wanted) {
        let program = &programs[*program_id].0;
        if program.earning.cap_per_day.is_some() {
            for (member_id, earned) in earned_today(txn, tenant_id, program, members, at).await? {
                earned_of.insert(((*program_id).to_owned(), member_id), earned);
            }
        }
    }
    let mut loaded = HashMap::with_capacity(wanted.len());
    for row in rows {
        let id = (row.program_id.clone(), row.member_id.clone());
        let program = &programs[&row.program_id].0;
        let earned_today = earned_of.remove(&id).unwrap_or_default();
        let account = Account::settle(program, row.member_id.clone(), stored(&row)?, earned_today, at);
        loaded.insert(id, account);
    }
    for id in wanted {
        if !loaded.contains_key(id) {
            loaded.insert(id.clone(), Account::open(&programs[&id.0].0, id.1.clone(), at));
        }
    }
    Ok(loaded)
}

/// An account's row as saved.
fn row(tenant_id: &str, account: &Account, at: DateTime<Utc>) -> accounts::ActiveModel {
    accounts::ActiveModel {
        tenant_id: Set(tenant_id.to_owned()),
        program_id: Set(account.program_id.clone()),
        member_id: Set(account.member_id.clone()),
        balance: Set(account.ledger.balance()),
        growth_period: Set(account.tier.period_growth),
        growth_lifetime: Set(account.tier.lifetime_growth),
        growth_year: Set(account.growth_year),
        tier: Set(account.tier.tier.clone()),
        next_id: Set(i64::try_from(account.ledger.last_id()).unwrap_or(i64::MAX)),
        updated_at: Set(at),
        ledger: Set(Some(ledger_state::encode(
            account.ledger.lots(),
            account.ledger.holds(),
            account.ledger.ended_holds(),
        ))),
        next_due: Set(ledger_state::next_due(account.ledger.lots(), account.ledger.holds())),
    }
}

/// The account a row holds.
fn stored(row: &accounts::Model) -> Result<StoredAccount> {
    let state = ledger_state::decode(row.ledger.as_deref().unwrap_or_default()).map_err(|error| {
        DbErr::Custom(format!(
            "account {}/{} has an undecodable ledger: {error}",
            row.program_id, row.member_id
        ))
    })?;
    Ok(StoredAccount {
        balance: row.balance,
        lots: state.lots,
        holds: state.holds,
        ended_holds: state.ended_holds,
        last_id: row.next_id.unsigned_abs(),
        tier: row.tier.clone(),
        period_growth: row.growth_period,
        lifetime_growth: row.growth_lifetime,
        growth_year: row.growth_year,
    })
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
    entries::Entity::find()
        .select_only()
        .column(entries::Column::MemberId)
        .column_as(
            sea_orm::ExprTrait::cast_as(entries::Column::Points.sum(), "BIGINT"),
            "earned",
        )
        .filter(entries::Column::TenantId.eq(tenant_id))
        .filter(entries::Column::ProgramId.eq(program.id.as_str()))
        .filter(entries::Column::MemberId.is_in(members.to_vec()))
        .filter(entries::Column::Kind.eq(entry_kind(EntryKind::Earn)))
        .filter(entries::Column::At.gte(midnight))
        .group_by(entries::Column::MemberId)
        .into_tuple()
        .all(txn)
        .await
}

/// How an entry's kind is stored.
pub fn entry_kind(kind: EntryKind) -> &'static str {
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

/// Adds the writes that save `accounts`, one statement per table whatever their number: their
/// rows (with their lots and holds) and the entries appended. Returns each account's appended
/// entries, in the order of `accounts`, for the events that describe them.
pub fn save(
    writes: &mut Writes,
    tenant_id: &str,
    programs: &Programs,
    accounts: &mut [&mut Account],
    at: DateTime<Utc>,
) -> Vec<Vec<Entry>> {
    let mut account_rows = Vec::new();
    let mut entry_rows = Vec::new();
    let mut appended_of = Vec::with_capacity(accounts.len());
    for account in accounts.iter_mut() {
        let version = programs.get(&account.program_id).map_or(0, |(_, version)| *version);
        let rules_version = i32::try_from(version).unwrap_or(i32::MAX);
        account_rows.push(row(tenant_id, account, at));
        let appended = account.ledger.take_entries();
        entry_rows.extend(appended.iter().map(|entry| entries::ActiveModel {
            tenant_id: Set(tenant_id.to_owned()),
            id: Set(uuid::Uuid::now_v7().to_string()),
            program_id: Set(account.program_id.clone()),
            member_id: Set(account.member_id.clone()),
            kind: Set(entry_kind(entry.kind).to_owned()),
            points: Set(entry.amount),
            balance_after: Set(entry.balance_after),
            at: Set(entry.at),
            reference: Set(entry.reference.clone()),
            rules_version: Set(rules_version),
        }));
        appended_of.push(appended);
    }
    writes.update_many(account_rows);
    writes.insert_many(entry_rows, None);
    appended_of
}

/// Whether the member has an account in the program.
pub async fn exists<C: ConnectionTrait>(db: &C, tenant_id: &str, program_id: &str, member_id: &str) -> Result<bool> {
    let id = (tenant_id.to_owned(), program_id.to_owned(), member_id.to_owned());
    let found = accounts::Entity::find_by_id(id)
        .select_only()
        .column(accounts::Column::MemberId)
        .into_tuple::<String>()
        .one(db)
        .await?;
    Ok(found.is_some())
}

/// An entry of an account's history.
pub struct HistoryEntry {
    /// Orders the history (UUIDv7); pages start after one.
    pub id: String,
    pub entry: Entry,
    pub rules_version: u32,
}

/// An account's entries, newest first, of one kind when given, before an entry id when given.
pub async fn history<C: ConnectionTrait>(
    db: &C,
    (tenant_id, program_id, member_id): (&str, &str, &str),
    kind: Option<EntryKind>,
    before: Option<String>,
    limit: u64,
) -> Result<Vec<HistoryEntry>> {
    let mut query = entries::Entity::find()
        .filter(entries::Column::TenantId.eq(tenant_id))
        .filter(entries::Column::ProgramId.eq(program_id))
        .filter(entries::Column::MemberId.eq(member_id));
    if let Some(kind) = kind {
        query = query.filter(entries::Column::Kind.eq(entry_kind(kind)));
    }
    if let Some(before) = before {
        query = query.filter(entries::Column::Id.lt(before));
    }
    let rows = query.order_by_desc(entries::Column::Id).limit(limit).all(db).await?;
    rows.into_iter()
        .map(|row| {
            let kind = ENTRY_KINDS
                .iter()
                .copied()
                .find(|kind| entry_kind(*kind) == row.kind)
                .ok_or_else(|| DbErr::Custom(format!("entry {} has an unknown kind {:?}", row.id, row.kind)))?;
            Ok(HistoryEntry {
                id: row.id,
                entry: Entry {
                    kind,
                    amount: row.points,
                    balance_after: row.balance_after,
                    at: row.at,
                    reference: row.reference,
                },
                rules_version: row.rules_version.unsigned_abs(),
            })
        })
        .collect()
}

const ENTRY_KINDS: [EntryKind; 8] = [
    EntryKind::Earn,
    EntryKind::Redeem,
    EntryKind::Expire,
    EntryKind::Reverse,
    EntryKind::Adjust,
    EntryKind::Grant,
    EntryKind::MergeIn,
    EntryKind::MergeOut,
];

/// Accounts with lots to expire or holds to release by `at`, most overdue first, up to `limit`:
/// (tenant, program, member).
pub async fn due<C: ConnectionTrait>(db: &C, at: DateTime<Utc>, limit: u64) -> Result<Vec<(String, String, String)>> {
    accounts::Entity::find()
        .select_only()
        .columns([
            accounts::Column::TenantId,
            accounts::Column::ProgramId,
            accounts::Column::MemberId,
        ])
        .filter(accounts::Column::NextDue.lte(at))
        // The order also keeps the plan on the next_due index whatever the planner guesses of how
        // many are due.
        .order_by_asc(accounts::Column::NextDue)
        .limit(limit)
        .into_tuple()
        .all(db)
        .await
}
