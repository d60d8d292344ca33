//! Folding a merged member's accounts into the survivor's, and following merges afterwards.

use std::collections::{BTreeSet, HashMap};

use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseTransaction, DbBackend, EntityTrait, FromQueryResult,
    IdenStatic, Iterable, QueryFilter, Statement,
};

use quanyu_runtime::db::Writes;

use super::sales::Programs;
use super::{
    Account, AccountId, Result, accounts, aliases, build_accounts, in_programs, load_accounts, lock_rows,
    members_by_program, program_rules_in, save_accounts,
};

/// Moves every account of `loser` into `survivor`'s in the same program, and records that
/// `loser` now means `survivor`. Folding the same pair again changes nothing.
pub async fn fold_merged(
    txn: &DatabaseTransaction,
    tenant_id: &str,
    survivor: &str,
    loser: &str,
    at: chrono::DateTime<chrono::Utc>,
) -> Result<()> {
    let alias = aliases::ActiveModel {
        tenant_id: Set(tenant_id.to_owned()),
        member_id: Set(loser.to_owned()),
        survivor_id: Set(survivor.to_owned()),
        merged_at: Set(at),
    };
    aliases::Entity::insert(alias)
        .on_conflict(
            OnConflict::columns([aliases::Column::TenantId, aliases::Column::MemberId])
                .update_column(aliases::Column::SurvivorId)
                .to_owned(),
        )
        .exec_without_returning(txn)
        .await?;
    // Members merged into the loser earlier now point at the survivor too (chains collapse).
    aliases::Entity::update_many()
        .col_expr(
            aliases::Column::SurvivorId,
            sea_orm::sea_query::Expr::value(survivor.to_owned()),
        )
        .filter(aliases::Column::TenantId.eq(tenant_id))
        .filter(aliases::Column::SurvivorId.eq(loser))
        .exec(txn)
        .await?;
    let programs = program_rules_in(txn, tenant_id).await?;
    let mut events = Vec::new();
    let mut writes = Writes::new(txn);
    for (program_id, (program, _)) in &programs {
        let loser_id = (program_id.clone(), loser.to_owned());
        let has_account =
            super::accounts::Entity::find_by_id((tenant_id.to_owned(), program_id.clone(), loser.to_owned()))
                .one(txn)
                .await?
                .is_some();
        if !has_account {
            continue;
        }
        let survivor_id = (program_id.clone(), survivor.to_owned());
        let mut loaded = load_accounts(txn, tenant_id, &programs, [survivor_id.clone(), loser_id.clone()], at).await?;
        let (Some(mut kept), Some(mut merged)) = (loaded.remove(&survivor_id), loaded.remove(&loser_id)) else {
            continue;
        };
        kept.ledger.absorb(&mut merged.ledger, at, &format!("merge:{loser}"));
        kept.tier.absorb(&program.ladder, &merged.tier);
        merged.tier.period_growth = 0;
        merged.tier.lifetime_growth = 0;
        events.extend(save_accounts(
            &mut writes,
            tenant_id,
            &programs,
            [&mut kept, &mut merged],
            at,
        ));
    }
    quanyu_outbox::append_to(&mut writes, events);
    writes.execute(txn).await?;
    Ok(())
}

/// The member each id now means: the survivor for merged members, the id itself otherwise.
pub async fn current_members<C: ConnectionTrait>(
    db: &C,
    tenant_id: &str,
    member_ids: &[String],
) -> Result<HashMap<String, String>> {
    if member_ids.is_empty() {
        return Ok(HashMap::new());
    }
    let scope = [(aliases::Column::TenantId, tenant_id.into())];
    let merged: HashMap<String, String> = quanyu_runtime::db::find_by_keys::<aliases::Entity, _>(
        db,
        &scope,
        aliases::Column::MemberId,
        member_ids.to_vec(),
        false,
    )
    .await?
    .into_iter()
    .map(|alias| (alias.member_id, alias.survivor_id))
    .collect();
    Ok(member_ids
        .iter()
        .map(|id| (id.clone(), merged.get(id).cloned().unwrap_or_else(|| id.clone())))
        .collect())
}

/// Loads and locks the accounts of `wanted` as `load_accounts` does, following merges: a member
/// merged into another since names the survivor's account. Returns the accounts under the ids
/// they are kept by, and the survivor of each member of `wanted` that was merged.
///
/// A sale's transaction reads whether its buyers were merged with the lock of their accounts, in
/// one statement per program on PostgreSQL: no round trip of its own for a check that is almost
/// always negative. A merged member's own account is then locked too, and left unchanged; the
/// survivor's is locked after it, out of key order, so a deadlock there (rare as merges) is
/// detected by PostgreSQL and retried like any other.
pub(super) async fn load_accounts_following_merges(
    txn: &DatabaseTransaction,
    tenant_id: &str,
    programs: &Programs,
    wanted: impl IntoIterator<Item = AccountId>,
    at: chrono::DateTime<chrono::Utc>,
) -> Result<(HashMap<AccountId, Account>, HashMap<String, String>)> {
    let wanted = in_programs(programs, wanted);
    let (mut rows, merged) = lock_rows_and_merges(txn, tenant_id, &wanted).await?;
    if merged.is_empty() {
        return Ok((
            build_accounts(txn, tenant_id, programs, &wanted, rows, at).await?,
            merged,
        ));
    }
    let followed: BTreeSet<AccountId> = wanted
        .iter()
        .map(|(program_id, member_id)| (program_id.clone(), merged.get(member_id).unwrap_or(member_id).clone()))
        .collect();
    rows.retain(|row| followed.contains(&(row.program_id.clone(), row.member_id.clone())));
    let survivors: BTreeSet<AccountId> = followed.difference(&wanted).cloned().collect();
    rows.extend(lock_rows(txn, tenant_id, &survivors).await?);
    let accounts = build_accounts(txn, tenant_id, programs, &followed, rows, at).await?;
    Ok((accounts, merged))
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
        let mut merged = current_members(txn, tenant_id, &members).await?;
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
