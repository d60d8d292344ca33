//! Assist tasks (助力): a member starts a task, friends help it once each, and the assist that
//! completes it gives the campaign's reward, once. A helper's assists are counted under a lock of
//! the helper, so concurrent assists never pass the limit of tasks one helper may help.

use chrono::{DateTime, Utc};
use quanyu_proto::campaign::v1 as pb;
use quanyu_runtime::clock::to_proto;
use quanyu_runtime::db::{begin_write, lock_keys, with_retries};
use quanyu_runtime::error::quote;
use sea_orm::{ConnectionTrait, DatabaseConnection};

use super::campaigns::is_active;
use super::rewards::{Happening, give};
use crate::domain::assist::AssistRules;
use crate::domain::campaign::{Campaign, Kind};
use crate::error::CampaignError;
use crate::events;
use crate::store;
use crate::store::entity::{assist_tasks, campaigns};

/// Who helps a task: a member, or someone known by a device or phone hash.
pub enum Helper<'a> {
    Member(&'a str),
    Device(&'a str),
}

impl Helper<'_> {
    /// How the helper is stored and announced.
    fn key(&self) -> String {
        match self {
            Self::Member(member_id) => format!("member:{member_id}"),
            Self::Device(hash) => format!("device:{hash}"),
        }
    }
}

async fn assist_campaign<C: ConnectionTrait>(
    db: &C,
    tenant_id: &str,
    campaign_id: &str,
) -> Result<(campaigns::Model, Campaign, AssistRules), CampaignError> {
    let rules_of = |kind: &Kind| match kind {
        Kind::Assist(rules) => Some(*rules),
        _ => None,
    };
    super::campaigns::load_of_kind(db, (tenant_id, campaign_id), Kind::ASSIST, rules_of).await
}

fn not_active() -> CampaignError {
    CampaignError::refused("CAMPAIGN_NOT_ACTIVE", "campaign_id", "the campaign is not active")
}

/// Starts a member's task, or answers the one they started.
pub async fn start(
    db: &DatabaseConnection,
    tenant_id: &str,
    (campaign_id, member_id): (&str, &str),
    now: DateTime<Utc>,
) -> Result<pb::AssistTask, CampaignError> {
    let (row, _, rules) = assist_campaign(db, tenant_id, campaign_id).await?;
    let task = assist_tasks::Model {
        tenant_id: tenant_id.to_owned(),
        campaign_id: campaign_id.to_owned(),
        member_id: member_id.to_owned(),
        assists: 0,
        started_at: now,
        expires_at: rules.expires_at(now).min(row.ends_at),
        completed_at: None,
    };
    with_retries(|| async {
        let txn = begin_write(db).await?;
        if store::assists::find(&txn, tenant_id, (campaign_id, member_id))
            .await?
            .is_none()
        {
            if !is_active(&row, now) {
                return Err(not_active());
            }
            store::assists::start(&txn, &task).await?;
        }
        let started = store::assists::find(&txn, tenant_id, (campaign_id, member_id)).await?;
        txn.commit().await?;
        let started = started.ok_or_else(|| CampaignError::NotFound("the task was not kept".into()))?;
        Ok(task_to_pb(&started, &rules))
    })
    .await
}

/// Records `helper`'s assist to the task of `member_id`, and completes the task (giving its
/// reward) when it reaches the assists needed.
pub async fn record(
    db: &DatabaseConnection,
    tenant_id: &str,
    (campaign_id, member_id): (&str, &str),
    helper: &Helper<'_>,
    now: DateTime<Utc>,
) -> Result<pb::AssistTask, CampaignError> {
    if matches!(helper, Helper::Member(helper) if *helper == member_id) {
        return Err(CampaignError::refused(
            "SELF_ASSIST",
            "helper_member_id",
            "a member cannot help their own task",
        ));
    }
    let helper = helper.key();
    with_retries(|| async {
        let txn = begin_write(db).await?;
        let (row, campaign, rules) = assist_campaign(&txn, tenant_id, campaign_id).await?;
        if !is_active(&row, now) {
            return Err(not_active());
        }
        let task = store::assists::find(&txn, tenant_id, (campaign_id, member_id))
            .await?
            .ok_or_else(|| CampaignError::NotFound(format!("{} has no task in this campaign", quote(member_id))))?;
        if task.completed_at.is_some() {
            return Err(CampaignError::refused(
                "TASK_COMPLETE",
                "member_id",
                "the task is complete",
            ));
        }
        if now >= task.expires_at {
            return Err(CampaignError::refused(
                "TASK_EXPIRED",
                "member_id",
                "the task's time is up",
            ));
        }
        lock_keys(&txn, &[format!("assist-helper:{tenant_id}:{campaign_id}:{helper}")]).await?;
        if !store::assists::assist(&txn, &task, &helper, now).await? {
            return Err(CampaignError::refused(
                "ALREADY_ASSISTED",
                "helper",
                "the helper helped this task before",
            ));
        }
        // Counted with this assist; a refusal rolls it back.
        let helped_before = store::assists::helped_by(&txn, tenant_id, (campaign_id, &helper)).await? - 1;
        if !rules.helper_has_room(helped_before) {
            let why = format!("the helper has helped {helped_before} tasks, the most this campaign allows");
            return Err(CampaignError::refused("HELPER_LIMIT_REACHED", "helper", why));
        }
        let task = store::assists::find(&txn, tenant_id, (campaign_id, member_id))
            .await?
            .unwrap_or(task);
        let assists = u32::try_from(task.assists).unwrap_or(u32::MAX);
        let mut happened = vec![events::assist_recorded(&task, &helper)];
        if assists >= rules.assists_needed && store::assists::complete(&txn, &task, now).await? {
            let completed = Happening {
                kinds: &[Kind::ASSIST],
                member_id,
                at: now,
                place: None,
                occurrence: format!("assist:{}", task.started_at.timestamp_millis()),
                sale: None,
                tier: None,
            };
            give(
                &txn,
                tenant_id,
                (&campaign, &completed),
                (campaign.points, String::new()),
                now,
            )
            .await?;
            happened.push(events::assist_task_completed(&task));
        }
        quanyu_outbox::append(&txn, happened).await?;
        let task = store::assists::find(&txn, tenant_id, (campaign_id, member_id))
            .await?
            .unwrap_or(task);
        txn.commit().await?;
        Ok(task_to_pb(&task, &rules))
    })
    .await
}

fn task_to_pb(task: &assist_tasks::Model, rules: &AssistRules) -> pb::AssistTask {
    pb::AssistTask {
        campaign_id: task.campaign_id.clone(),
        member_id: task.member_id.clone(),
        assists: u32::try_from(task.assists).unwrap_or(u32::MAX),
        assists_needed: rules.assists_needed,
        started_at: Some(to_proto(task.started_at)),
        expires_at: Some(to_proto(task.expires_at)),
        completed_at: task.completed_at.map(to_proto),
    }
}
