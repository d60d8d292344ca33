//! The events campaign publishes on its stream, built from what a use case changed.

use quanyu_outbox::NewEvent;
use quanyu_proto::campaign::v1 as pb;
use quanyu_proto::common::v1::Money;
use quanyu_proto::events::v1::event::Payload;

use crate::store::entity::{campaigns, coupons, rewards};

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

/// A reward given to a member.
pub fn reward_granted(reward: &rewards::Model) -> NewEvent {
    NewEvent {
        tenant_id: reward.tenant_id.clone(),
        aggregate_type: "campaign",
        aggregate_id: reward.campaign_id.clone(),
        payload: Payload::RewardGranted(pb::RewardGranted {
            campaign_id: reward.campaign_id.clone(),
            member_id: reward.member_id.clone(),
            occurrence: reward.occurrence.clone(),
            points: reward.points,
            coupon_id: reward.coupon_id.clone(),
        }),
    }
}

/// A campaign whose window opened while it was scheduled.
pub fn campaign_started(campaign: &campaigns::Model) -> NewEvent {
    NewEvent {
        tenant_id: campaign.tenant_id.clone(),
        aggregate_type: "campaign",
        aggregate_id: campaign.campaign_id.clone(),
        payload: Payload::CampaignStarted(pb::CampaignStarted {
            campaign_id: campaign.campaign_id.clone(),
            kind: pb::CampaignKind::from_str_name(&format!("CAMPAIGN_KIND_{}", campaign.kind))
                .unwrap_or_default()
                .into(),
            starts_at: Some(quanyu_runtime::clock::to_proto(campaign.starts_at)),
            ends_at: Some(quanyu_runtime::clock::to_proto(campaign.ends_at)),
        }),
    }
}
