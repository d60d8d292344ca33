//! The member facts audience rules compare beyond purchases and interactions: city and birthday,
//! the guide binding, tags, and each loyalty account's balance and tier.

use std::collections::BTreeMap;

use sea_orm::{DatabaseTransaction, DbErr, Value};

use super::{execute, insert_rows};

/// The member's city and birthday now (empty when unknown); an erased member keeps neither.
pub async fn set_profile(
    txn: &DatabaseTransaction,
    tenant_id: &str,
    member_id: &str,
    (city, birthday): (&str, &str),
) -> Result<(), DbErr> {
    let known = |value: &str| (!value.is_empty()).then(|| value.to_owned());
    let sql = "UPDATE members SET city = ?, birthday = ? WHERE tenant_id = ? AND member_id = ? AND erased = FALSE";
    let values = vec![
        known(city).into(),
        known(birthday).into(),
        tenant_id.into(),
        member_id.into(),
    ];
    execute(txn, sql, values).await?;
    Ok(())
}

/// The store and guide the member is bound to now.
pub async fn bind(
    txn: &DatabaseTransaction,
    tenant_id: &str,
    member_id: &str,
    (store_id, guide_id): (&str, &str),
) -> Result<(), DbErr> {
    let sql = "UPDATE members SET bound_store_id = ?, bound_guide_id = ? WHERE tenant_id = ? AND member_id = ?";
    execute(
        txn,
        sql,
        vec![store_id.into(), guide_id.into(), tenant_id.into(), member_id.into()],
    )
    .await?;
    Ok(())
}

/// Sets tags (by name, with their values) and removes others.
pub async fn change_tags(
    txn: &DatabaseTransaction,
    tenant_id: &str,
    member_id: &str,
    set: &[(String, String)],
    removed: &[String],
) -> Result<(), DbErr> {
    for (name, value) in set {
        let sql = "INSERT INTO member_tags (tenant_id, member_id, name, value) VALUES (?, ?, ?, ?) \
                   ON CONFLICT (tenant_id, member_id, name) DO UPDATE SET value = excluded.value";
        let values = vec![
            tenant_id.into(),
            member_id.into(),
            name.as_str().into(),
            value.as_str().into(),
        ];
        execute(txn, sql, values).await?;
    }
    for name in removed {
        let sql = "DELETE FROM member_tags WHERE tenant_id = ? AND member_id = ? AND name = ?";
        execute(txn, sql, vec![tenant_id.into(), member_id.into(), name.as_str().into()]).await?;
    }
    Ok(())
}

/// What loyalty-points announces of an account: its balance or its tier.
#[derive(Debug, Clone, Copy)]
pub enum AccountFact {
    Balance,
    Tier,
}

/// A loyalty account: its tenant, member and program.
pub type Account<'a> = (&'a str, &'a str, &'a str);

/// Sets accounts' balance or tier to the value given each, in one statement (per 500 accounts).
pub async fn set_accounts<V: Into<Value> + Clone>(
    txn: &DatabaseTransaction,
    fact: AccountFact,
    accounts: &BTreeMap<Account<'_>, V>,
) -> Result<(), DbErr> {
    let column = match fact {
        AccountFact::Balance => "balance",
        AccountFact::Tier => "tier",
    };
    let rows: Vec<Vec<Value>> = accounts
        .iter()
        .map(|((tenant_id, member_id, program_id), value)| {
            vec![
                (*tenant_id).into(),
                (*member_id).into(),
                (*program_id).into(),
                value.clone().into(),
            ]
        })
        .collect();
    let insert = format!("INSERT INTO member_programs (tenant_id, member_id, program_id, {column})");
    let on_conflict =
        format!("ON CONFLICT (tenant_id, member_id, program_id) DO UPDATE SET {column} = excluded.{column}");
    insert_rows(txn, &insert, &on_conflict, &rows).await
}

/// The loser's tags become the survivor's, where the survivor has none of that name.
pub async fn merge(txn: &DatabaseTransaction, tenant_id: &str, survivor: &str, loser: &str) -> Result<(), DbErr> {
    let sql = "INSERT INTO member_tags (tenant_id, member_id, name, value) \
               SELECT tenant_id, ?, name, value FROM member_tags WHERE tenant_id = ? AND member_id = ? \
               ON CONFLICT (tenant_id, member_id, name) DO NOTHING";
    execute(txn, sql, vec![survivor.into(), tenant_id.into(), loser.into()]).await?;
    let sql = "DELETE FROM member_tags WHERE tenant_id = ? AND member_id = ?";
    execute(txn, sql, vec![tenant_id.into(), loser.into()]).await?;
    Ok(())
}

/// Drops an erased member's personal facts (city, birthday) and keeps them out of audiences;
/// what they bought and did still counts.
pub async fn erase(txn: &DatabaseTransaction, tenant_id: &str, member_id: &str) -> Result<(), DbErr> {
    let sql = "UPDATE members SET city = NULL, birthday = NULL, erased = TRUE WHERE tenant_id = ? AND member_id = ?";
    execute(txn, sql, vec![tenant_id.into(), member_id.into()]).await?;
    Ok(())
}
