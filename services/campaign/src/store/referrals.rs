//! Referrals: invite codes, who invited whom, and each inviter's ladder. The counts an inviter's
//! ladder pays by are moved by single conditional statements, so concurrent attributions never
//! pass a cap and a rung is paid by the one writer that moved its count.

use chrono::{DateTime, Utc};
use quanyu_runtime::db::sql::{execute, statement, value};
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use super::entity::{invite_codes, member_enrolments, referral_tasks, referrals};

pub const ATTRIBUTED: &str = "ATTRIBUTED";
pub const QUALIFIED: &str = "QUALIFIED";
pub const HELD: &str = "HELD";
pub const DENIED: &str = "DENIED";

pub async fn code_of<C: ConnectionTrait>(
    db: &C,
    tenant_id: &str,
    (campaign_id, member_id): (&str, &str),
) -> Result<Option<invite_codes::Model>, DbErr> {
    invite_codes::Entity::find_by_id((tenant_id.to_owned(), campaign_id.to_owned(), member_id.to_owned()))
        .one(db)
        .await
}

/// Keeps a member's code; a code kept for them before stays (read it back).
pub async fn keep_code<C: ConnectionTrait>(db: &C, code: invite_codes::Model) -> Result<(), DbErr> {
    let sql = "INSERT INTO invite_codes (tenant_id, campaign_id, member_id, code, created_at) VALUES (?, ?, ?, ?, ?) \
               ON CONFLICT (tenant_id, campaign_id, member_id) DO NOTHING";
    let values = vec![
        code.tenant_id.into(),
        code.campaign_id.into(),
        code.member_id.into(),
        code.code.into(),
        code.created_at.into(),
    ];
    execute(db, sql, values).await?;
    Ok(())
}

pub async fn find_code<C: ConnectionTrait>(
    db: &C,
    tenant_id: &str,
    code: &str,
) -> Result<Option<invite_codes::Model>, DbErr> {
    invite_codes::Entity::find()
        .filter(invite_codes::Column::TenantId.eq(tenant_id))
        .filter(invite_codes::Column::Code.eq(code))
        .one(db)
        .await
}

/// Records when a member enrolled (the first enrolment seen stays).
pub async fn record_enrolment<C: ConnectionTrait>(
    db: &C,
    tenant_id: &str,
    member_id: &str,
    at: DateTime<Utc>,
) -> Result<(), DbErr> {
    let sql = "INSERT INTO member_enrolments (tenant_id, member_id, enrolled_at) VALUES (?, ?, ?) \
               ON CONFLICT (tenant_id, member_id) DO NOTHING";
    execute(db, sql, vec![tenant_id.into(), member_id.into(), at.into()]).await?;
    Ok(())
}

pub async fn enrolled_at<C: ConnectionTrait>(
    db: &C,
    tenant_id: &str,
    member_id: &str,
) -> Result<Option<DateTime<Utc>>, DbErr> {
    let found = member_enrolments::Entity::find_by_id((tenant_id.to_owned(), member_id.to_owned()))
        .one(db)
        .await?;
    Ok(found.map(|enrolment| enrolment.enrolled_at))
}

pub async fn find<C: ConnectionTrait>(
    db: &C,
    tenant_id: &str,
    (campaign_id, invitee_id): (&str, &str),
) -> Result<Option<referrals::Model>, DbErr> {
    referrals::Entity::find_by_id((tenant_id.to_owned(), campaign_id.to_owned(), invitee_id.to_owned()))
        .one(db)
        .await
}

/// Makes the transactions that attribute a member, record their purchases and link their
/// identities take turns (the identity and points streams are applied at once): each then sees
/// what the others committed, so a purchase or an identity is never missed by an attribution
/// made beside it.
pub async fn lock_invitee<C: ConnectionTrait>(db: &C, tenant_id: &str, member_id: &str) -> Result<(), DbErr> {
    quanyu_runtime::db::lock_keys(db, &[format!("referral-invitee:{tenant_id}:{member_id}")]).await
}

/// Locks the inviter's ladder (made if new) until the transaction ends: attributions to one
/// inviter take turns, so the counts they check (the cap, the last hour's) hold when they write.
pub async fn lock_task<C: ConnectionTrait>(
    db: &C,
    tenant_id: &str,
    (campaign_id, inviter_id): (&str, &str),
) -> Result<(), DbErr> {
    let task = "INSERT INTO referral_tasks (tenant_id, campaign_id, inviter_id, invitees, qualified, rungs_paid) \
                VALUES (?, ?, ?, 0, 0, 0) ON CONFLICT (tenant_id, campaign_id, inviter_id) DO NOTHING";
    let key = || vec![tenant_id.into(), campaign_id.into(), inviter_id.into()];
    execute(db, task, key()).await?;
    let touched =
        "UPDATE referral_tasks SET invitees = invitees WHERE tenant_id = ? AND campaign_id = ? AND inviter_id = ?";
    execute(db, touched, key()).await?;
    Ok(())
}

/// The attributions to an inviter since `since`, held ones included, denied ones not.
pub async fn attributed_since<C: ConnectionTrait>(
    db: &C,
    tenant_id: &str,
    (campaign_id, inviter_id): (&str, &str),
    since: DateTime<Utc>,
) -> Result<i64, DbErr> {
    let sql = "SELECT count(*) AS attributed FROM referrals WHERE tenant_id = ? AND campaign_id = ? \
               AND inviter_id = ? AND attributed_at > ? AND state <> ?";
    let values = vec![
        tenant_id.into(),
        campaign_id.into(),
        inviter_id.into(),
        since.into(),
        DENIED.into(),
    ];
    Ok(value(db, (sql, values), "attributed").await?.unwrap_or(0))
}

/// Decides a held referral: false when it was not held any more.
pub async fn decide<C: ConnectionTrait>(db: &C, referral: &referrals::Model, state: &str) -> Result<bool, DbErr> {
    let sql = "UPDATE referrals SET state = ? WHERE tenant_id = ? AND campaign_id = ? AND invitee_id = ? AND state = ?";
    let values = vec![
        state.into(),
        referral.tenant_id.as_str().into(),
        referral.campaign_id.as_str().into(),
        referral.invitee_id.as_str().into(),
        HELD.into(),
    ];
    Ok(execute(db, sql, values).await? == 1)
}

/// Which of a campaign's referrals to list: one inviter's or all, of one state or all.
pub struct Listed<'a> {
    pub campaign_id: &'a str,
    pub inviter_id: Option<&'a str>,
    pub state: Option<&'a str>,
}

/// A page of a campaign's referrals by invitee id, after `after`.
pub async fn list<C: ConnectionTrait>(
    db: &C,
    tenant_id: &str,
    listed: Listed<'_>,
    (after, limit): (Option<String>, u64),
) -> Result<Vec<referrals::Model>, DbErr> {
    let mut query = referrals::Entity::find()
        .filter(referrals::Column::TenantId.eq(tenant_id))
        .filter(referrals::Column::CampaignId.eq(listed.campaign_id));
    if let Some(inviter_id) = listed.inviter_id {
        query = query.filter(referrals::Column::InviterId.eq(inviter_id));
    }
    if let Some(state) = listed.state {
        query = query.filter(referrals::Column::State.eq(state));
    }
    if let Some(after) = after {
        query = query.filter(referrals::Column::InviteeId.gt(after));
    }
    query
        .order_by_asc(referrals::Column::InviteeId)
        .limit(limit)
        .all(db)
        .await
}

/// Gives the inviter (their ladder locked by [`lock_task`]) one more invitee, unless they have
/// `max` already (0: no limit); false when they have.
pub async fn count_invitee<C: ConnectionTrait>(
    db: &C,
    tenant_id: &str,
    (campaign_id, inviter_id): (&str, &str),
    max: u32,
) -> Result<bool, DbErr> {
    let key = || vec![tenant_id.into(), campaign_id.into(), inviter_id.into()];
    let counted = "UPDATE referral_tasks SET invitees = invitees + 1 \
                   WHERE tenant_id = ? AND campaign_id = ? AND inviter_id = ? AND (? = 0 OR invitees < ?)";
    let mut values = key();
    values.extend([i64::from(max).into(), i64::from(max).into()]);
    Ok(execute(db, counted, values).await? == 1)
}

pub async fn insert<C: ConnectionTrait>(db: &C, referral: referrals::Model) -> Result<(), DbErr> {
    let row: referrals::ActiveModel = referral.into();
    referrals::Entity::insert(row).exec_without_returning(db).await?;
    Ok(())
}

/// The invitee's referrals in one of `states`, in every campaign.
pub async fn of_invitee<C: ConnectionTrait>(
    db: &C,
    tenant_id: &str,
    invitee_id: &str,
    states: &[&str],
) -> Result<Vec<referrals::Model>, DbErr> {
    referrals::Entity::find()
        .filter(referrals::Column::TenantId.eq(tenant_id))
        .filter(referrals::Column::InviteeId.eq(invitee_id))
        .filter(referrals::Column::State.is_in(states.iter().copied()))
        .all(db)
        .await
}

/// The referrals the purchase `order` (`<source>/<transaction id>`) qualified.
pub async fn qualified_by<C: ConnectionTrait>(
    db: &C,
    tenant_id: &str,
    order: &str,
) -> Result<Vec<referrals::Model>, DbErr> {
    referrals::Entity::find()
        .filter(referrals::Column::TenantId.eq(tenant_id))
        .filter(referrals::Column::QualifiedOrder.eq(order))
        .filter(referrals::Column::State.eq(QUALIFIED))
        .all(db)
        .await
}

/// Qualifies a referral by the purchase `order` of `amount_minor` at `at`; false when it was
/// qualified already (the same event again, or another purchase first).
pub async fn qualify<C: ConnectionTrait>(
    db: &C,
    referral: &referrals::Model,
    (order, amount_minor): (&str, i64),
    at: DateTime<Utc>,
) -> Result<bool, DbErr> {
    let sql = "UPDATE referrals SET state = ?, qualified_order = ?, qualified_amount_minor = ?, refunded_minor = 0, \
               qualified_at = ? WHERE tenant_id = ? AND campaign_id = ? AND invitee_id = ? AND state = ?";
    let values = vec![
        QUALIFIED.into(),
        order.into(),
        amount_minor.into(),
        at.into(),
        referral.tenant_id.as_str().into(),
        referral.campaign_id.as_str().into(),
        referral.invitee_id.as_str().into(),
        ATTRIBUTED.into(),
    ];
    Ok(execute(db, sql, values).await? == 1)
}

/// Adds a refund of the qualifying purchase; true when it takes the qualification back (the
/// refunds reach what the purchase paid), which it does once.
pub async fn refund<C: ConnectionTrait>(
    db: &C,
    referral: &referrals::Model,
    refunded_minor: i64,
) -> Result<bool, DbErr> {
    let sql = "UPDATE referrals SET refunded_minor = refunded_minor + ? \
               WHERE tenant_id = ? AND campaign_id = ? AND invitee_id = ? AND state = ?";
    let key = || {
        vec![
            referral.tenant_id.as_str().into(),
            referral.campaign_id.as_str().into(),
            referral.invitee_id.as_str().into(),
            QUALIFIED.into(),
        ]
    };
    let mut values = vec![refunded_minor.into()];
    values.extend(key());
    execute(db, sql, values).await?;
    let taken_back = "UPDATE referrals SET state = ?, qualified_order = '', qualified_at = NULL \
                      WHERE tenant_id = ? AND campaign_id = ? AND invitee_id = ? AND state = ? \
                      AND refunded_minor >= qualified_amount_minor";
    let mut values = vec![ATTRIBUTED.into()];
    values.extend(key());
    Ok(execute(db, taken_back, values).await? == 1)
}

pub async fn task<C: ConnectionTrait>(
    db: &C,
    tenant_id: &str,
    (campaign_id, inviter_id): (&str, &str),
) -> Result<Option<referral_tasks::Model>, DbErr> {
    referral_tasks::Entity::find_by_id((tenant_id.to_owned(), campaign_id.to_owned(), inviter_id.to_owned()))
        .one(db)
        .await
}

/// Moves an inviter's qualified count by `delta`; the task after the move.
pub async fn count_qualified<C: ConnectionTrait>(
    db: &C,
    tenant_id: &str,
    (campaign_id, inviter_id): (&str, &str),
    delta: i64,
) -> Result<Option<referral_tasks::Model>, DbErr> {
    let sql = "UPDATE referral_tasks SET qualified = qualified + ? WHERE tenant_id = ? AND campaign_id = ? AND inviter_id = ?";
    let values = vec![delta.into(), tenant_id.into(), campaign_id.into(), inviter_id.into()];
    execute(db, sql, values).await?;
    task(db, tenant_id, (campaign_id, inviter_id)).await
}

/// Moves the rungs paid from `from` to `to`; false when they were not `from` any more.
pub async fn set_rungs_paid<C: ConnectionTrait>(
    db: &C,
    task: &referral_tasks::Model,
    (from, to): (i64, i64),
) -> Result<bool, DbErr> {
    let sql = "UPDATE referral_tasks SET rungs_paid = ? \
               WHERE tenant_id = ? AND campaign_id = ? AND inviter_id = ? AND rungs_paid = ?";
    let values = vec![
        to.into(),
        task.tenant_id.as_str().into(),
        task.campaign_id.as_str().into(),
        task.inviter_id.as_str().into(),
        from.into(),
    ];
    Ok(execute(db, sql, values).await? == 1)
}

/// A page of a campaign's inviters by qualified invitees, then invitees, most first (then by
/// member id), from the `offset`th.
pub async fn leaderboard<C: ConnectionTrait>(
    db: &C,
    tenant_id: &str,
    campaign_id: &str,
    (offset, limit): (u64, u64),
) -> Result<Vec<referral_tasks::Model>, DbErr> {
    referral_tasks::Entity::find()
        .filter(referral_tasks::Column::TenantId.eq(tenant_id))
        .filter(referral_tasks::Column::CampaignId.eq(campaign_id))
        .filter(referral_tasks::Column::Invitees.gt(0))
        .order_by_desc(referral_tasks::Column::Qualified)
        .order_by_desc(referral_tasks::Column::Invitees)
        .order_by_asc(referral_tasks::Column::InviterId)
        .offset(offset)
        .limit(limit)
        .all(db)
        .await
}

/// How many members `inviter_id` was attributed in a campaign, held and denied ones included.
pub async fn count_invited<C: ConnectionTrait>(
    db: &C,
    tenant_id: &str,
    (campaign_id, inviter_id): (&str, &str),
) -> Result<i64, DbErr> {
    let sql = "SELECT count(*) AS invited FROM referrals WHERE tenant_id = ? AND campaign_id = ? AND inviter_id = ?";
    let values = vec![tenant_id.into(), campaign_id.into(), inviter_id.into()];
    Ok(value(db, (sql, values), "invited").await?.unwrap_or(0))
}

/// The points a rung paid to an inviter and has not taken back: its reward rows, newest first.
pub async fn rung_rewards<C: ConnectionTrait>(
    db: &C,
    tenant_id: &str,
    (campaign_id, inviter_id): (&str, &str),
    rung: usize,
) -> Result<Vec<super::entity::rewards::Model>, DbErr> {
    let sql = "SELECT * FROM rewards WHERE tenant_id = ? AND campaign_id = ? AND member_id = ? \
               AND occurrence LIKE ? AND outcome = ? AND points > revoked ORDER BY created_at DESC";
    let values = vec![
        tenant_id.into(),
        campaign_id.into(),
        inviter_id.into(),
        format!("rung:{rung}/%").into(),
        super::rewards::GIVEN.into(),
    ];
    use sea_orm::FromQueryResult as _;
    super::entity::rewards::Model::find_by_statement(statement(db.get_database_backend(), sql, values))
        .all(db)
        .await
}

/// A member's first purchase, as campaign saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Purchase {
    /// `<source>/<transaction id>`
    pub order: String,
    pub amount_minor: i64,
    pub at: DateTime<Utc>,
}

/// Keeps a member's purchase if it is the first campaign sees.
pub async fn keep_first_purchase<C: ConnectionTrait>(
    db: &C,
    tenant_id: &str,
    member_id: &str,
    purchase: &Purchase,
) -> Result<(), DbErr> {
    let sql = "INSERT INTO member_purchases (tenant_id, member_id, purchase, amount_minor, purchased_at) \
               VALUES (?, ?, ?, ?, ?) ON CONFLICT (tenant_id, member_id) DO NOTHING";
    let values = vec![
        tenant_id.into(),
        member_id.into(),
        purchase.order.as_str().into(),
        purchase.amount_minor.into(),
        purchase.at.into(),
    ];
    execute(db, sql, values).await?;
    Ok(())
}

pub async fn first_purchase<C: ConnectionTrait>(
    db: &C,
    tenant_id: &str,
    member_id: &str,
) -> Result<Option<Purchase>, DbErr> {
    let sql = "SELECT purchase, amount_minor, purchased_at FROM member_purchases WHERE tenant_id = ? AND member_id = ?";
    let row = db
        .query_one_raw(statement(
            db.get_database_backend(),
            sql,
            vec![tenant_id.into(), member_id.into()],
        ))
        .await?;
    row.map(|row| {
        Ok(Purchase {
            order: row.try_get("", "purchase")?,
            amount_minor: row.try_get("", "amount_minor")?,
            at: row.try_get("", "purchased_at")?,
        })
    })
    .transpose()
}

/// Keeps a keyed hash of one of a member's identities.
pub async fn keep_identity_key<C: ConnectionTrait>(
    db: &C,
    tenant_id: &str,
    member_id: &str,
    key: &str,
) -> Result<(), DbErr> {
    let sql = "INSERT INTO member_identity_keys (tenant_id, identity_key, member_id) VALUES (?, ?, ?) \
               ON CONFLICT (tenant_id, identity_key, member_id) DO NOTHING";
    execute(db, sql, vec![tenant_id.into(), key.into(), member_id.into()]).await?;
    Ok(())
}

pub async fn identity_keys_of<C: ConnectionTrait>(
    db: &C,
    tenant_id: &str,
    member_id: &str,
) -> Result<Vec<String>, DbErr> {
    let sql = "SELECT identity_key FROM member_identity_keys WHERE tenant_id = ? AND member_id = ?";
    let rows = db
        .query_all_raw(statement(
            db.get_database_backend(),
            sql,
            vec![tenant_id.into(), member_id.into()],
        ))
        .await?;
    rows.iter().map(|row| row.try_get("", "identity_key")).collect()
}

/// Records `keys` as referred to a campaign as `invitee_id`; false when one of them was
/// referred before as another member (the same person, erased or merged and enrolled again).
pub async fn claim_referred_keys<C: ConnectionTrait>(
    db: &C,
    tenant_id: &str,
    (campaign_id, invitee_id): (&str, &str),
    keys: &[String],
) -> Result<bool, DbErr> {
    let claim = "INSERT INTO referred_keys (tenant_id, campaign_id, identity_key, invitee_id) VALUES (?, ?, ?, ?) \
                 ON CONFLICT (tenant_id, campaign_id, identity_key) DO NOTHING";
    let owner = "SELECT invitee_id FROM referred_keys WHERE tenant_id = ? AND campaign_id = ? AND identity_key = ?";
    for key in keys {
        let values = vec![
            tenant_id.into(),
            campaign_id.into(),
            key.as_str().into(),
            invitee_id.into(),
        ];
        execute(db, claim, values).await?;
        let values = vec![tenant_id.into(), campaign_id.into(), key.as_str().into()];
        let claimed_by: Option<String> = value(db, (owner, values), "invitee_id").await?;
        if claimed_by.is_some_and(|claimed_by| claimed_by != invitee_id) {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Denies an attributed or held referral, taking an attributed one off its inviter's count;
/// false when it was neither any more.
pub async fn deny<C: ConnectionTrait>(db: &C, referral: &referrals::Model) -> Result<bool, DbErr> {
    let sql = "UPDATE referrals SET state = ? WHERE tenant_id = ? AND campaign_id = ? AND invitee_id = ? AND state = ?";
    let values = vec![
        DENIED.into(),
        referral.tenant_id.as_str().into(),
        referral.campaign_id.as_str().into(),
        referral.invitee_id.as_str().into(),
        referral.state.as_str().into(),
    ];
    if execute(db, sql, values).await? == 0 {
        return Ok(false);
    }
    if referral.state == ATTRIBUTED {
        let uncount = "UPDATE referral_tasks SET invitees = invitees - 1 \
                       WHERE tenant_id = ? AND campaign_id = ? AND inviter_id = ?";
        let values = vec![
            referral.tenant_id.as_str().into(),
            referral.campaign_id.as_str().into(),
            referral.inviter_id.as_str().into(),
        ];
        execute(db, uncount, values).await?;
    }
    Ok(true)
}
