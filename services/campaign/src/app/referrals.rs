//! Referral campaigns: invite codes, attributing new members to their inviters, qualifying them
//! by a first purchase, paying each inviter's rungs once, and taking a qualification back when
//! its purchase is refunded. Attribution by the API and by an enrolment event, qualification and
//! refunds all move the same rows by conditional statements, so a repeated or concurrent event
//! pays nothing twice.

use chrono::{DateTime, Duration, Utc};
use quanyu_proto::campaign::v1 as pb;
use quanyu_runtime::clock::to_proto;
use quanyu_runtime::db::{begin_write, with_retries};
use quanyu_runtime::error::quote;
use sea_orm::{DatabaseConnection, DatabaseTransaction};

use super::campaigns::is_active;
use super::rewards::{Happening, give, take_back};
use crate::domain::campaign::{Campaign, Kind, state_at};
use crate::domain::code;
use crate::domain::referral::Ladder;
use crate::error::CampaignError;
use crate::events;
use crate::store;
use crate::store::entity::{invite_codes, referral_tasks, referrals};
use crate::store::referrals::{ATTRIBUTED, HELD, Purchase};

/// A referral campaign and its ladder, or INVALID_ARGUMENT when the campaign is of another kind.
async fn referral_campaign<C: sea_orm::ConnectionTrait>(
    db: &C,
    tenant_id: &str,
    campaign_id: &str,
) -> Result<(store::entity::campaigns::Model, Campaign, Ladder), CampaignError> {
    let ladder_of = |kind: &Kind| match kind {
        Kind::Referral(ladder) => Some(ladder.clone()),
        _ => None,
    };
    super::campaigns::load_of_kind(db, (tenant_id, campaign_id), Kind::REFERRAL, ladder_of).await
}

/// A member's invite code, made on the first ask.
pub async fn invite_code(
    db: &DatabaseConnection,
    tenant_id: &str,
    (campaign_id, member_id): (&str, &str),
    now: DateTime<Utc>,
) -> Result<String, CampaignError> {
    let (row, _, _) = referral_campaign(db, tenant_id, campaign_id).await?;
    if let Some(kept) = store::referrals::code_of(db, tenant_id, (campaign_id, member_id)).await? {
        return Ok(kept.code);
    }
    if state_at(super::campaigns::stored(&row), row.starts_at, row.ends_at, now) == pb::CampaignState::Ended {
        return Err(CampaignError::refused(
            "CAMPAIGN_NOT_ACTIVE",
            "campaign_id",
            "the campaign has ended",
        ));
    }
    let code = invite_codes::Model {
        tenant_id: tenant_id.to_owned(),
        campaign_id: campaign_id.to_owned(),
        member_id: member_id.to_owned(),
        code: code::generate()?,
        created_at: now,
    };
    with_retries(|| async {
        let txn = begin_write(db).await?;
        store::referrals::keep_code(&txn, code.clone()).await?;
        let kept = store::referrals::code_of(&txn, tenant_id, (campaign_id, member_id)).await?;
        txn.commit().await?;
        kept.map(|kept| kept.code)
            .ok_or_else(|| CampaignError::NotFound("the invite code was not kept".into()))
    })
    .await
}

/// Attributes `invitee_id` to the owner of `code`, or answers the same attribution made before.
pub async fn attribute_by_call(
    db: &DatabaseConnection,
    tenant_id: &str,
    (code, invitee_id): (&str, &str),
    now: DateTime<Utc>,
) -> Result<pb::Referral, CampaignError> {
    with_retries(|| async {
        let txn = begin_write(db).await?;
        let referral = attribute(&txn, tenant_id, (code, invitee_id), now).await?;
        txn.commit().await?;
        Ok(referral_to_pb(&referral))
    })
    .await
}

/// Attributes `invitee_id` to the owner of `code` in `txn`: the rules every attribution keeps.
pub(crate) async fn attribute(
    txn: &DatabaseTransaction,
    tenant_id: &str,
    (code, invitee_id): (&str, &str),
    now: DateTime<Utc>,
) -> Result<referrals::Model, CampaignError> {
    let code = store::referrals::find_code(txn, tenant_id, &code::normalize(code))
        .await?
        .ok_or_else(|| CampaignError::NotFound(format!("no invite code is {}", quote(code))))?;
    let campaign_id = code.campaign_id.as_str();
    let (row, _, ladder) = referral_campaign(txn, tenant_id, campaign_id).await?;
    if let Some(referral) = store::referrals::find(txn, tenant_id, (campaign_id, invitee_id)).await? {
        return if referral.inviter_id == code.member_id {
            Ok(referral)
        } else {
            Err(CampaignError::refused(
                "ALREADY_REFERRED",
                "member_id",
                "the member was referred to this campaign by another member",
            ))
        };
    }
    if !is_active(&row, now) {
        return Err(CampaignError::refused(
            "CAMPAIGN_NOT_ACTIVE",
            "code",
            "the code's campaign is not active",
        ));
    }
    if code.member_id == invitee_id {
        return Err(CampaignError::refused(
            "SELF_REFERRAL",
            "member_id",
            "a member cannot use their own code",
        ));
    }
    let Some(enrolled_at) = store::referrals::enrolled_at(txn, tenant_id, invitee_id).await? else {
        return Err(CampaignError::refused(
            "MEMBER_NOT_SEEN",
            "member_id",
            "campaign has not seen the member enrol (yet): try again shortly",
        ));
    };
    if enrolled_at < code.created_at {
        return Err(CampaignError::refused(
            "ALREADY_A_MEMBER",
            "member_id",
            "the member enrolled before the code was made",
        ));
    }
    store::referrals::lock_invitee(txn, tenant_id, invitee_id).await?;
    let keys = store::referrals::identity_keys_of(txn, tenant_id, invitee_id).await?;
    if !store::referrals::claim_referred_keys(txn, tenant_id, (campaign_id, invitee_id), &keys).await? {
        return Err(referred_before());
    }
    let inviter = (campaign_id, code.member_id.as_str());
    store::referrals::lock_task(txn, tenant_id, inviter).await?;
    let last_hour = store::referrals::attributed_since(txn, tenant_id, inviter, now - Duration::hours(1)).await?;
    let held = ladder.holds(last_hour);
    if !held {
        count_invitee(txn, tenant_id, inviter, &ladder, "code").await?;
    }
    let referral = referrals::Model {
        tenant_id: tenant_id.to_owned(),
        campaign_id: campaign_id.to_owned(),
        invitee_id: invitee_id.to_owned(),
        inviter_id: code.member_id.clone(),
        state: if held {
            store::referrals::HELD
        } else {
            store::referrals::ATTRIBUTED
        }
        .to_owned(),
        enrolled_at,
        attributed_at: now,
        qualified_order: String::new(),
        qualified_amount_minor: 0,
        refunded_minor: 0,
        qualified_at: None,
    };
    store::referrals::insert(txn, referral.clone()).await?;
    if held {
        tracing::info!(
            tenant_id,
            campaign_id,
            inviter = code.member_id,
            "a referral is held for review"
        );
        return Ok(referral);
    }
    quanyu_outbox::append(txn, vec![events::referral_attributed(&referral)]).await?;
    qualify_by_first_purchase(txn, &referral, now).await?;
    // Read back: the first purchase may have qualified it.
    let stored = store::referrals::find(txn, tenant_id, (campaign_id, invitee_id)).await?;
    Ok(stored.unwrap_or(referral))
}

fn referred_before() -> CampaignError {
    CampaignError::refused(
        "REFERRED_BEFORE",
        "member_id",
        "the person was referred to this campaign before, as another member",
    )
}

/// Keeps the keyed hash of an identity linked to a member; a referral of the member not yet
/// qualified whose identity was referred before, as another member (the person erased or merged
/// and enrolled again), is denied. Identities are announced after the enrolment that carries
/// the code, so this is where a re-referral is found.
pub(crate) async fn identity_linked(
    txn: &DatabaseTransaction,
    tenant_id: &str,
    member_id: &str,
    key: &str,
) -> Result<(), CampaignError> {
    store::referrals::lock_invitee(txn, tenant_id, member_id).await?;
    store::referrals::keep_identity_key(txn, tenant_id, member_id, key).await?;
    let keys = [key.to_owned()];
    for referral in store::referrals::of_invitee(txn, tenant_id, member_id, &[ATTRIBUTED, HELD]).await? {
        let invitee = (referral.campaign_id.as_str(), member_id);
        if store::referrals::claim_referred_keys(txn, tenant_id, invitee, &keys).await? {
            continue;
        }
        if store::referrals::deny(txn, &referral).await? {
            let campaign_id = referral.campaign_id.as_str();
            tracing::info!(tenant_id, campaign_id, member_id, "{}", referred_before());
        }
    }
    Ok(())
}

/// Counts one more invitee for the inviter (their ladder locked); INVITEE_CAP_REACHED, naming
/// `field`, when the cap has no room.
async fn count_invitee(
    txn: &DatabaseTransaction,
    tenant_id: &str,
    inviter: (&str, &str),
    ladder: &Ladder,
    field: &str,
) -> Result<(), CampaignError> {
    if store::referrals::count_invitee(txn, tenant_id, inviter, ladder.max_invitees).await? {
        return Ok(());
    }
    Err(CampaignError::refused(
        "INVITEE_CAP_REACHED",
        field,
        format!(
            "the inviter has {} invitees, the most this campaign allows",
            ladder.max_invitees
        ),
    ))
}

/// Approves or denies a held referral; a referral decided the same way before is answered as
/// it is.
pub async fn review(
    db: &DatabaseConnection,
    tenant_id: &str,
    (campaign_id, invitee_id): (&str, &str),
    approve: bool,
    now: DateTime<Utc>,
) -> Result<pb::Referral, CampaignError> {
    with_retries(|| async {
        let txn = begin_write(db).await?;
        let (_, _, ladder) = referral_campaign(&txn, tenant_id, campaign_id).await?;
        let mut referral = store::referrals::find(&txn, tenant_id, (campaign_id, invitee_id))
            .await?
            .ok_or_else(|| {
                CampaignError::NotFound(format!("{} was not referred to this campaign", quote(invitee_id)))
            })?;
        let denied = referral.state == store::referrals::DENIED;
        if referral.state != store::referrals::HELD {
            return if approve != denied {
                Ok(referral_to_pb(&referral))
            } else {
                let why = format!("the referral is {}, not held", referral.state.to_lowercase());
                Err(CampaignError::refused("NOT_HELD", "invitee_id", why))
            };
        }
        let inviter = (campaign_id, referral.inviter_id.as_str());
        if approve {
            store::referrals::lock_task(&txn, tenant_id, inviter).await?;
            count_invitee(&txn, tenant_id, inviter, &ladder, "approve").await?;
        }
        let decided = if approve {
            store::referrals::ATTRIBUTED
        } else {
            store::referrals::DENIED
        };
        if !store::referrals::decide(&txn, &referral, decided).await? {
            return Err(CampaignError::Database(sea_orm::DbErr::Custom(
                "the referral's state changed under its lock".into(),
            )));
        }
        referral.state = decided.to_owned();
        if approve {
            quanyu_outbox::append(&txn, vec![events::referral_attributed(&referral)]).await?;
            store::referrals::lock_invitee(&txn, tenant_id, invitee_id).await?;
            qualify_by_first_purchase(&txn, &referral, now).await?;
        }
        txn.commit().await?;
        let stored = store::referrals::find(db, tenant_id, (campaign_id, invitee_id)).await?;
        Ok(referral_to_pb(&stored.unwrap_or(referral)))
    })
    .await
}

/// A page of a campaign's referrals, of one state or all.
pub async fn list(
    db: &DatabaseConnection,
    tenant_id: &str,
    (campaign_id, state): (&str, Option<&str>),
    (after, size): (Option<String>, u64),
) -> Result<(Vec<pb::Referral>, String), CampaignError> {
    referral_campaign(db, tenant_id, campaign_id).await?;
    let listed = store::referrals::Listed {
        campaign_id,
        inviter_id: None,
        state,
    };
    let rows = store::referrals::list(db, tenant_id, listed, (after, size + 1)).await?;
    let (rows, next) = super::page(rows, size, |row| &row.invitee_id);
    Ok((rows.iter().map(referral_to_pb).collect(), next))
}

/// Qualifies the buyer's unqualified referrals by a purchase, and pays the rungs their
/// inviters reach. The member's first purchase is kept: a referral attributed after it arrived
/// is qualified by it then.
pub(crate) async fn qualify(
    txn: &DatabaseTransaction,
    tenant_id: &str,
    invitee_id: &str,
    purchase: &Purchase,
    now: DateTime<Utc>,
) -> Result<(), CampaignError> {
    store::referrals::lock_invitee(txn, tenant_id, invitee_id).await?;
    store::referrals::keep_first_purchase(txn, tenant_id, invitee_id, purchase).await?;
    for referral in store::referrals::of_invitee(txn, tenant_id, invitee_id, &[store::referrals::ATTRIBUTED]).await? {
        qualify_referral(txn, &referral, purchase, now).await?;
    }
    Ok(())
}

/// Qualifies a just-counted referral by its invitee's first purchase, if campaign saw one.
async fn qualify_by_first_purchase(
    txn: &DatabaseTransaction,
    referral: &referrals::Model,
    now: DateTime<Utc>,
) -> Result<(), CampaignError> {
    match store::referrals::first_purchase(txn, &referral.tenant_id, &referral.invitee_id).await? {
        Some(purchase) => qualify_referral(txn, referral, &purchase, now).await,
        None => Ok(()),
    }
}

/// Qualifies one referral by `purchase` if it qualifies it (once), and pays the rungs its
/// inviter reaches.
async fn qualify_referral(
    txn: &DatabaseTransaction,
    referral: &referrals::Model,
    purchase: &Purchase,
    now: DateTime<Utc>,
) -> Result<(), CampaignError> {
    let tenant_id = referral.tenant_id.as_str();
    let (row, campaign, ladder) = referral_campaign(txn, tenant_id, &referral.campaign_id).await?;
    if !is_active(&row, purchase.at) || !ladder.qualifies(referral.enrolled_at, purchase.at) {
        return Ok(());
    }
    let order = purchase.order.as_str();
    if !store::referrals::qualify(txn, referral, (order, purchase.amount_minor), purchase.at).await? {
        return Ok(());
    }
    let inviter = (referral.campaign_id.as_str(), referral.inviter_id.as_str());
    let Some(task) = store::referrals::count_qualified(txn, tenant_id, inviter, 1).await? else {
        return Ok(());
    };
    let progressed = events::task_progressed(&task, &referral.invitee_id, 1);
    quanyu_outbox::append(txn, vec![progressed]).await?;
    pay_rungs(txn, (&campaign, &ladder), &task, order, now).await
}

/// Pays the rungs `task`'s qualified count reaches and it has not been paid, each once. The
/// purchase that completed them (`<source>/<transaction id>`) names the payment: a rung clawed
/// back and reached again is paid under another.
async fn pay_rungs(
    txn: &DatabaseTransaction,
    (campaign, ladder): (&Campaign, &Ladder),
    task: &referral_tasks::Model,
    completed_by: &str,
    now: DateTime<Utc>,
) -> Result<(), CampaignError> {
    let paid = usize::try_from(task.rungs_paid).unwrap_or(0);
    let reached = ladder.rungs_reached(paid, task.qualified);
    if reached.is_empty() {
        return Ok(());
    }
    let moved = (task.rungs_paid, i64::try_from(reached.end).unwrap_or(i64::MAX));
    if !store::referrals::set_rungs_paid(txn, task, moved).await? {
        return Ok(());
    }
    for index in reached {
        let rung = &ladder.rungs[index];
        // The rung's reward, given as the campaign's: the same budget, grant and event.
        let paying = Campaign {
            points: rung.reward.points,
            program_id: rung.reward.program_id.clone(),
            coupon_template_id: rung.reward.coupon_template_id.clone(),
            ..campaign.clone()
        };
        let completed = Happening {
            kinds: &[Kind::REFERRAL],
            member_id: &task.inviter_id,
            at: now,
            place: None,
            occurrence: format!("rung:{index}/{completed_by}"),
            sale: None,
            tier: None,
        };
        give(
            txn,
            &task.tenant_id,
            (&paying, &completed),
            (rung.reward.points, String::new()),
            now,
        )
        .await?;
        let rung_number = u32::try_from(index).unwrap_or(u32::MAX);
        quanyu_outbox::append(txn, vec![events::task_completed(task, rung_number)]).await?;
    }
    Ok(())
}

/// Adds a refund (`refunded_minor`, made at `at`) of the purchase `order` to the referrals it
/// qualified: one refunded in full within the return window is qualified no more, and a
/// clawing ladder takes back the points of the rungs its inviter no longer reaches.
pub(crate) async fn refund(
    txn: &DatabaseTransaction,
    tenant_id: &str,
    (order, refunded_minor): (&str, i64),
    at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<(), CampaignError> {
    for referral in store::referrals::qualified_by(txn, tenant_id, order).await? {
        let (_, _, ladder) = referral_campaign(txn, tenant_id, &referral.campaign_id).await?;
        let qualified_at = referral.qualified_at.unwrap_or(at);
        if !ladder.refund_counts(qualified_at, at) || !store::referrals::refund(txn, &referral, refunded_minor).await? {
            continue;
        }
        let inviter = (referral.campaign_id.as_str(), referral.inviter_id.as_str());
        let Some(task) = store::referrals::count_qualified(txn, tenant_id, inviter, -1).await? else {
            continue;
        };
        quanyu_outbox::append(txn, vec![events::task_progressed(&task, &referral.invitee_id, -1)]).await?;
        let lost = ladder.rungs_lost(usize::try_from(task.rungs_paid).unwrap_or(0), task.qualified);
        if lost.is_empty() {
            continue;
        }
        let moved = (task.rungs_paid, i64::try_from(lost.start).unwrap_or(0));
        if !store::referrals::set_rungs_paid(txn, &task, moved).await? {
            continue;
        }
        for index in lost {
            for reward in store::referrals::rung_rewards(txn, tenant_id, inviter, index).await? {
                let points = reward.points - reward.revoked;
                take_back(txn, tenant_id, (&reward, points), &format!("clawback:{order}"), now).await?;
            }
        }
    }
    Ok(())
}

/// A member's progress in a referral campaign, with a page of their invitees.
pub async fn progress(
    db: &DatabaseConnection,
    tenant_id: &str,
    (campaign_id, member_id): (&str, &str),
    (after, size): (Option<String>, u64),
) -> Result<pb::GetTaskProgressResponse, CampaignError> {
    referral_campaign(db, tenant_id, campaign_id).await?;
    let inviter = (campaign_id, member_id);
    let task = store::referrals::task(db, tenant_id, inviter).await?;
    let listed = store::referrals::Listed {
        campaign_id,
        inviter_id: Some(member_id),
        state: None,
    };
    let rows = store::referrals::list(db, tenant_id, listed, (after, size + 1)).await?;
    let (rows, next_page_token) = super::page(rows, size, |row| &row.invitee_id);
    Ok(pb::GetTaskProgressResponse {
        invitees: task.as_ref().map_or(0, |task| task.invitees),
        qualified: task.as_ref().map_or(0, |task| task.qualified),
        rungs_paid: task.as_ref().map_or(0, |task| task.rungs_paid),
        referrals: rows.iter().map(referral_to_pb).collect(),
        next_page_token,
    })
}

/// A page of a campaign's leaderboard, from the `offset`th inviter.
pub async fn leaderboard(
    db: &DatabaseConnection,
    tenant_id: &str,
    campaign_id: &str,
    (offset, size): (u64, u64),
) -> Result<(Vec<pb::LeaderboardEntry>, String), CampaignError> {
    referral_campaign(db, tenant_id, campaign_id).await?;
    let mut tasks = store::referrals::leaderboard(db, tenant_id, campaign_id, (offset, size + 1)).await?;
    let more = tasks.len() as u64 > size;
    tasks.truncate(usize::try_from(size).unwrap_or(usize::MAX));
    let next = if more {
        quanyu_runtime::page::token(&(offset + size).to_string())
    } else {
        String::new()
    };
    let entries = (offset + 1..)
        .zip(tasks)
        .map(|(rank, task)| pb::LeaderboardEntry {
            rank: i64::try_from(rank).unwrap_or(i64::MAX),
            member_id: task.inviter_id,
            qualified: task.qualified,
            invitees: task.invitees,
            rungs_paid: task.rungs_paid,
        })
        .collect();
    Ok((entries, next))
}

/// How many of an invitee's own invitees a tree shows.
const TREE_SECOND_LEVEL: u64 = 100;

/// Two levels of a member's referral tree: who invited them, and a page of whom they invited,
/// each with whom they invited in turn.
pub async fn tree(
    db: &DatabaseConnection,
    tenant_id: &str,
    (campaign_id, member_id): (&str, &str),
    (after, size): (Option<String>, u64),
) -> Result<pb::GetReferralTreeResponse, CampaignError> {
    referral_campaign(db, tenant_id, campaign_id).await?;
    let invited_by = store::referrals::find(db, tenant_id, (campaign_id, member_id)).await?;
    let invited_by_member = |inviter_id| store::referrals::Listed {
        campaign_id,
        inviter_id: Some(inviter_id),
        state: None,
    };
    let rows = store::referrals::list(db, tenant_id, invited_by_member(member_id), (after, size + 1)).await?;
    let (rows, next_page_token) = super::page(rows, size, |row| &row.invitee_id);
    let mut invitees = Vec::with_capacity(rows.len());
    for row in &rows {
        let second = invited_by_member(&row.invitee_id);
        let invited = store::referrals::list(db, tenant_id, second, (None, TREE_SECOND_LEVEL)).await?;
        let counted = (campaign_id, row.invitee_id.as_str());
        invitees.push(pb::ReferralTreeNode {
            referral: Some(referral_to_pb(row)),
            invited: invited.iter().map(referral_to_pb).collect(),
            invited_count: store::referrals::count_invited(db, tenant_id, counted).await?,
        });
    }
    Ok(pb::GetReferralTreeResponse {
        invited_by: invited_by.as_ref().map(referral_to_pb),
        invitees,
        next_page_token,
    })
}

fn referral_to_pb(referral: &referrals::Model) -> pb::Referral {
    let state = match referral.state.as_str() {
        store::referrals::QUALIFIED => pb::ReferralState::Qualified,
        store::referrals::HELD => pb::ReferralState::Held,
        store::referrals::DENIED => pb::ReferralState::Denied,
        _ => pb::ReferralState::Attributed,
    };
    pb::Referral {
        campaign_id: referral.campaign_id.clone(),
        inviter_id: referral.inviter_id.clone(),
        invitee_id: referral.invitee_id.clone(),
        state: state.into(),
        attributed_at: Some(to_proto(referral.attributed_at)),
        qualified_at: referral.qualified_at.map(to_proto),
    }
}
