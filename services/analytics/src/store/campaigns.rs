//! What campaigns and coupon templates achieved: counters per result, the members each reached
//! (counted once, folded by merges), and the campaign of each coupon a campaign gave.

use sea_orm::{ConnectionTrait, DatabaseTransaction, DbErr};

use quanyu_runtime::db::sql::value;

use super::{additions, execute, statement};

/// Whose result a row is: a campaign's, a coupon template's, or a referral campaign's inviters
/// (whose members reached are the members with an invitee).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Campaign,
    Template,
    Inviters,
}

impl Scope {
    fn as_str(self) -> &'static str {
        match self {
            Self::Campaign => "campaign",
            Self::Template => "template",
            Self::Inviters => "inviters",
        }
    }
}

/// What one event adds to a result.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub rewards: i64,
    pub points_granted: i64,
    pub coupons_issued: i64,
    pub coupons_redeemed: i64,
    pub coupons_restored: i64,
    pub invitees: i64,
    pub invitees_qualified: i64,
}

/// A result as stored: what was counted, and the members it reached.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Outcome {
    pub members_reached: i64,
    pub counts: Counts,
}

const COUNTERS: [&str; 7] = [
    "rewards",
    "points_granted",
    "coupons_issued",
    "coupons_redeemed",
    "coupons_restored",
    "invitees",
    "invitees_qualified",
];

/// Makes the transactions that reach `member_id` and that fold it into another take turns: the
/// campaign and identity streams are read at once, and a reach recorded under the loser's id
/// while its merge is being folded would be missed by the fold.
pub async fn lock_member(txn: &DatabaseTransaction, tenant_id: &str, member_id: &str) -> Result<(), DbErr> {
    quanyu_runtime::db::lock_keys(txn, &[format!("analytics-reach:{tenant_id}:{member_id}")]).await
}

/// Adds `counts` to a result, and `member_id` (as it stands now), if any, to those it reached.
pub async fn add(
    txn: &DatabaseTransaction,
    tenant_id: &str,
    (scope, result_id): (Scope, &str),
    member_id: Option<&str>,
    counts: Counts,
) -> Result<(), DbErr> {
    let reached = "INSERT INTO campaign_reach (tenant_id, scope, result_id, member_id) VALUES (?, ?, ?, ?) \
                   ON CONFLICT (tenant_id, scope, result_id, member_id) DO NOTHING";
    let key = || vec![tenant_id.into(), scope.as_str().into(), result_id.into()];
    let new_member = match member_id {
        Some(member_id) => {
            let mut values = key();
            values.push(member_id.into());
            execute(txn, reached, values).await?
        }
        None => 0,
    };
    let sql = format!(
        "INSERT INTO campaign_results (tenant_id, scope, result_id, members_reached, {}) \
         VALUES (?, ?, ?, ?, {}) ON CONFLICT (tenant_id, scope, result_id) DO UPDATE SET \
         members_reached = campaign_results.members_reached + excluded.members_reached, {}",
        COUNTERS.join(", "),
        vec!["?"; COUNTERS.len()].join(", "),
        additions("campaign_results", &COUNTERS)
    );
    let mut values = key();
    values.extend([
        i64::try_from(new_member).unwrap_or(0).into(),
        counts.rewards.into(),
        counts.points_granted.into(),
        counts.coupons_issued.into(),
        counts.coupons_redeemed.into(),
        counts.coupons_restored.into(),
        counts.invitees.into(),
        counts.invitees_qualified.into(),
    ]);
    execute(txn, &sql, values).await?;
    Ok(())
}

/// Remembers that `campaign_id` gave `coupon_id`.
pub async fn remember_coupon(
    txn: &DatabaseTransaction,
    tenant_id: &str,
    coupon_id: &str,
    campaign_id: &str,
) -> Result<(), DbErr> {
    let sql = "INSERT INTO campaign_coupons (tenant_id, coupon_id, campaign_id) VALUES (?, ?, ?) \
               ON CONFLICT (tenant_id, coupon_id) DO NOTHING";
    execute(txn, sql, vec![tenant_id.into(), coupon_id.into(), campaign_id.into()]).await?;
    Ok(())
}

/// The campaign that gave `coupon_id`, if a campaign did.
pub async fn campaign_of_coupon(
    txn: &DatabaseTransaction,
    tenant_id: &str,
    coupon_id: &str,
) -> Result<Option<String>, DbErr> {
    let sql = "SELECT campaign_id FROM campaign_coupons WHERE tenant_id = ? AND coupon_id = ?";
    let values = vec![tenant_id.into(), coupon_id.into()];
    value(txn, (sql, values), "campaign_id").await
}

/// Folds `loser` into `survivor`: a result that reached both reached one person.
pub async fn merge(txn: &DatabaseTransaction, tenant_id: &str, survivor: &str, loser: &str) -> Result<(), DbErr> {
    if survivor == loser {
        return Ok(());
    }
    lock_member(txn, tenant_id, loser).await?;
    let both = "SELECT 1 FROM campaign_reach s WHERE s.tenant_id = r.tenant_id AND s.scope = r.scope \
                AND s.result_id = r.result_id AND s.member_id = ?";
    let uncount = format!(
        "UPDATE campaign_results SET members_reached = members_reached - 1 WHERE tenant_id = ? AND EXISTS \
         (SELECT 1 FROM campaign_reach r WHERE r.tenant_id = campaign_results.tenant_id \
         AND r.scope = campaign_results.scope AND r.result_id = campaign_results.result_id \
         AND r.member_id = ? AND EXISTS ({both}))"
    );
    let values = || vec![tenant_id.into(), loser.into(), survivor.into()];
    execute(txn, &uncount, values()).await?;
    let forget =
        format!("DELETE FROM campaign_reach AS r WHERE r.tenant_id = ? AND r.member_id = ? AND EXISTS ({both})");
    execute(txn, &forget, values()).await?;
    let moved = "UPDATE campaign_reach SET member_id = ? WHERE tenant_id = ? AND member_id = ?";
    execute(txn, moved, vec![survivor.into(), tenant_id.into(), loser.into()]).await?;
    Ok(())
}

/// The results of `ids` in `scope`, in the order asked; zeros for an id with none.
pub async fn results(
    db: &impl ConnectionTrait,
    tenant_id: &str,
    scope: Scope,
    ids: &[String],
) -> Result<Vec<Outcome>, DbErr> {
    let mut found = std::collections::HashMap::new();
    if !ids.is_empty() {
        let sql = format!(
            "SELECT result_id, members_reached, {} FROM campaign_results \
             WHERE tenant_id = ? AND scope = ? AND result_id IN ({})",
            COUNTERS.join(", "),
            vec!["?"; ids.len()].join(", ")
        );
        let mut values = vec![tenant_id.into(), scope.as_str().into()];
        values.extend(ids.iter().map(|id| id.as_str().into()));
        let rows = db
            .query_all_raw(statement(db.get_database_backend(), &sql, values))
            .await?;
        for row in rows {
            let id: String = row.try_get("", "result_id")?;
            let counts = Counts {
                rewards: row.try_get("", "rewards")?,
                points_granted: row.try_get("", "points_granted")?,
                coupons_issued: row.try_get("", "coupons_issued")?,
                coupons_redeemed: row.try_get("", "coupons_redeemed")?,
                coupons_restored: row.try_get("", "coupons_restored")?,
                invitees: row.try_get("", "invitees")?,
                invitees_qualified: row.try_get("", "invitees_qualified")?,
            };
            let members_reached = row.try_get("", "members_reached")?;
            found.insert(
                id,
                Outcome {
                    members_reached,
                    counts,
                },
            );
        }
    }
    Ok(ids
        .iter()
        .map(|id| found.get(id).copied().unwrap_or_default())
        .collect())
}
