//! Folding a merged member's accounts into the survivor's, and following merges afterwards.

use std::collections::HashMap;

use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, QueryFilter};

use quanyu_runtime::db::Writes;

use super::sales::{Plan, PreparedSale};
use super::{Result, aliases, load_accounts, program_rules_in, save_accounts};

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

/// The member ids that sales name as their buyers, each once.
pub fn named_buyers<'a>(sales: impl IntoIterator<Item = &'a PreparedSale>) -> Vec<String> {
    let mut named: Vec<String> = sales
        .into_iter()
        .filter_map(|sale| match &sale.plan {
            Plan::Earn { member_id, .. } => Some(member_id.clone()),
            _ => None,
        })
        .collect();
    named.sort_unstable();
    named.dedup();
    named
}

/// Points each sale that names a merged member at the survivor, given [`current_members`].
pub fn follow_merges<'a>(sales: impl IntoIterator<Item = &'a mut PreparedSale>, now: &HashMap<String, String>) {
    for sale in sales {
        if let Plan::Earn { member_id, .. } = &mut sale.plan
            && let Some(survivor) = now.get(member_id.as_str())
        {
            survivor.clone_into(member_id);
        }
    }
}
