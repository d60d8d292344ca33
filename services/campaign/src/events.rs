//! The events campaign publishes on its stream, built from what a use case changed.

use quanyu_outbox::NewEvent;
use quanyu_proto::campaign::v1 as pb;
use quanyu_proto::common::v1::Money;
use quanyu_proto::events::v1::event::Payload;

use crate::store::entity::{assist_tasks, campaigns, coupons, referral_tasks, referrals, rewards};

fn coupon_event(coupon: &coupons::Model, payload: Payload) -> NewEvent {
    NewEvent {
        tenant_id: coupon.tenant_id.clone(),
        aggregate_type: "coupon",
        aggregate_id: coupon.coupon_id.clone(),
        payload,
    }
}

pub fn issued(coupon: &coupons::Model, origin: pb::CouponOrigin, channel: i32) -> NewEvent {
    let payload = Payload::CouponIssued(pb::CouponIssued {
        coupon_id: coupon.coupon_id.clone(),
        template_id: coupon.template_id.clone(),
        member_id: coupon.member_id.clone(),
        origin: origin.into(),
        channel,
    });
    coupon_event(coupon, payload)
}

pub fn redeemed(coupon: &coupons::Model, order: &pb::Order, discount: Money) -> NewEvent {
    let payload = Payload::CouponRedeemed(pb::CouponRedeemed {
        coupon_id: coupon.coupon_id.clone(),
        template_id: coupon.template_id.clone(),
        member_id: coupon.member_id.clone(),
        order_source: order.source.clone(),
        order_id: order.order_id.clone(),
        channel: order.channel,
        brand_id: order.brand_id.clone(),
        store_id: order.store_id.clone(),
        order_amount: order.amount.clone(),
        discount: Some(discount),
    });
    coupon_event(coupon, payload)
}

pub fn restored(coupon: &coupons::Model, (order_source, order_id): (&str, &str)) -> NewEvent {
    let payload = Payload::CouponRestored(pb::CouponRestored {
        coupon_id: coupon.coupon_id.clone(),
        template_id: coupon.template_id.clone(),
        member_id: coupon.member_id.clone(),
        order_source: order_source.to_owned(),
        order_id: order_id.to_owned(),
    });
    coupon_event(coupon, payload)
}

pub fn voided(coupon: &coupons::Model, reason: &str) -> NewEvent {
    let payload = Payload::CouponVoided(pb::CouponVoided {
        coupon_id: coupon.coupon_id.clone(),
        template_id: coupon.template_id.clone(),
        member_id: coupon.member_id.clone(),
        reason: reason.to_owned(),
    });
    coupon_event(coupon, payload)
}

/// An event about one of a tenant's campaigns.
fn campaign_event(tenant_id: &str, campaign_id: &str, payload: Payload) -> NewEvent {
    NewEvent {
        tenant_id: tenant_id.to_owned(),
        aggregate_type: "campaign",
        aggregate_id: campaign_id.to_owned(),
        payload,
    }
}

/// A reward given to a member.
pub fn reward_granted(reward: &rewards::Model) -> NewEvent {
    let payload = Payload::RewardGranted(pb::RewardGranted {
        campaign_id: reward.campaign_id.clone(),
        member_id: reward.member_id.clone(),
        occurrence: reward.occurrence.clone(),
        points: reward.points,
        coupon_id: reward.coupon_id.clone(),
    });
    campaign_event(&reward.tenant_id, &reward.campaign_id, payload)
}

pub fn referral_attributed(referral: &referrals::Model) -> NewEvent {
    let payload = Payload::ReferralAttributed(pb::ReferralAttributed {
        campaign_id: referral.campaign_id.clone(),
        inviter_id: referral.inviter_id.clone(),
        invitee_id: referral.invitee_id.clone(),
    });
    campaign_event(&referral.tenant_id, &referral.campaign_id, payload)
}

/// An inviter's qualified count moved by `change`, by `invitee_id` qualifying (+1) or being
/// taken back (-1).
pub fn task_progressed(task: &referral_tasks::Model, invitee_id: &str, change: i32) -> NewEvent {
    let payload = Payload::TaskProgressed(pb::TaskProgressed {
        campaign_id: task.campaign_id.clone(),
        member_id: task.inviter_id.clone(),
        invitee_id: invitee_id.to_owned(),
        qualified: task.qualified,
        change,
    });
    campaign_event(&task.tenant_id, &task.campaign_id, payload)
}

pub fn task_completed(task: &referral_tasks::Model, rung: u32) -> NewEvent {
    let payload = Payload::TaskCompleted(pb::TaskCompleted {
        campaign_id: task.campaign_id.clone(),
        member_id: task.inviter_id.clone(),
        rung,
        qualified: task.qualified,
    });
    campaign_event(&task.tenant_id, &task.campaign_id, payload)
}

/// A campaign whose window opened while it was scheduled.
pub fn campaign_started(campaign: &campaigns::Model) -> NewEvent {
    let payload = Payload::CampaignStarted(pb::CampaignStarted {
        campaign_id: campaign.campaign_id.clone(),
        kind: pb::CampaignKind::from_str_name(&format!("CAMPAIGN_KIND_{}", campaign.kind))
            .unwrap_or_default()
            .into(),
        starts_at: Some(quanyu_runtime::clock::to_proto(campaign.starts_at)),
        ends_at: Some(quanyu_runtime::clock::to_proto(campaign.ends_at)),
    });
    campaign_event(&campaign.tenant_id, &campaign.campaign_id, payload)
}

/// A friend helped a member's task (`helper`: `member:<id>` or `device:<hash>`).
pub fn assist_recorded(task: &assist_tasks::Model, helper: &str) -> NewEvent {
    let payload = Payload::AssistRecorded(pb::AssistRecorded {
        campaign_id: task.campaign_id.clone(),
        member_id: task.member_id.clone(),
        helper: helper.to_owned(),
        assists: u32::try_from(task.assists).unwrap_or(u32::MAX),
    });
    campaign_event(&task.tenant_id, &task.campaign_id, payload)
}

/// A member's assist task completed.
pub fn assist_task_completed(task: &assist_tasks::Model) -> NewEvent {
    let payload = Payload::TaskCompleted(pb::TaskCompleted {
        campaign_id: task.campaign_id.clone(),
        member_id: task.member_id.clone(),
        rung: 0,
        qualified: task.assists,
    });
    campaign_event(&task.tenant_id, &task.campaign_id, payload)
}
