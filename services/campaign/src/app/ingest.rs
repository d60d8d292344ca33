//! What campaign takes from the other services' streams: what campaigns reward (enrolments,
//! purchases, tiers reached), merges (a merged member's coupons and counts move to the
//! survivor) and refunds (a refunded purchase's points are taken back; a fully refunded order
//! gives its coupons back). Each event is applied in the consumer's transaction with its cursor,
//! so exactly once.

use quanyu_outbox::consumer::EventHandler;
use quanyu_proto::events::event_type_of;
use quanyu_proto::events::v1::Event;
use quanyu_proto::events::v1::event::Payload;
use quanyu_proto::points::v1::{SaleKind, SaleRecorded};
use quanyu_runtime::clock::Clock;
use quanyu_runtime::clock::from_proto;
use sea_orm::{DatabaseTransaction, DbErr};

use super::audiences::AudienceSource;
use super::referrals;
use super::rewards::{self, Happening};
use crate::domain::campaign::{Kind, Place};
use crate::domain::referral::identity_key;
use crate::error::CampaignError;
use crate::events;
use crate::store;
use crate::store::referrals::Purchase;

/// The identity events campaign reads.
pub fn identity_event_types() -> Vec<String> {
    use quanyu_proto::identity::v1 as identity;
    vec![
        event_type_of::<identity::MemberEnrolled>(),
        event_type_of::<identity::ProfileUpdated>(),
        event_type_of::<identity::MembersMerged>(),
        event_type_of::<identity::MemberErased>(),
        event_type_of::<identity::IdentityLinked>(),
    ]
}

/// The points events campaign reads.
pub fn points_event_types() -> Vec<String> {
    vec![
        event_type_of::<SaleRecorded>(),
        event_type_of::<quanyu_proto::points::v1::TierChanged>(),
    ]
}

pub struct Effects {
    pub clock: Clock,
    pub audiences: std::sync::Arc<dyn AudienceSource>,
    /// The key of the hashes kept of members' identities.
    pub identity_hash_key: String,
}

#[async_trait::async_trait]
impl EventHandler for Effects {
    async fn apply(&self, txn: &DatabaseTransaction, event: &Event) -> Result<(), DbErr> {
        self.effect(txn, event)
            .await
            .map_err(|error| DbErr::Custom(format!("event {}: {error}", event.event_id)))
    }
}

impl Effects {
    async fn effect(&self, txn: &DatabaseTransaction, event: &Event) -> Result<(), CampaignError> {
        let tenant_id = event.tenant_id.as_str();
        let now = self.clock.now();
        let occurred_at = event.occurred_at.as_ref().and_then(from_proto).unwrap_or(now);
        let happening = match &event.payload {
            Some(Payload::MembersMerged(merged)) => {
                let (survivor, loser) = (&merged.survivor_id, &merged.merged_member_id);
                return Ok(store::members::fold(txn, tenant_id, survivor, loser).await?);
            }
            Some(Payload::ProfileUpdated(updated)) => {
                let birthday = updated.profile.as_ref().map_or("", |profile| profile.birthday.as_str());
                // `YYYY-MM-DD`: the month and day only are kept.
                let month_day = birthday.get(5..10).filter(|_| birthday.len() == 10);
                return Ok(store::members::set_birthday(txn, tenant_id, &updated.member_id, month_day).await?);
            }
            Some(Payload::IdentityLinked(linked)) => {
                let identity = linked.identity.clone().unwrap_or_default();
                let identity = (identity.kind, identity.namespace.as_str(), identity.value.as_str());
                let key = identity_key(&self.identity_hash_key, tenant_id, identity);
                return referrals::identity_linked(txn, tenant_id, &linked.member_id, &key).await;
            }
            Some(Payload::MemberErased(erased)) => {
                return Ok(store::members::set_birthday(txn, tenant_id, &erased.member_id, None).await?);
            }
            Some(Payload::SaleRecorded(sale)) if sale.kind == i32::from(SaleKind::Refund) => {
                return self.refund(txn, tenant_id, sale).await;
            }
            Some(Payload::MemberEnrolled(enrolled)) => {
                let enrollment = enrolled.enrollment.as_ref();
                let enrolled_at = enrolled
                    .enrolled_at
                    .as_ref()
                    .and_then(from_proto)
                    .unwrap_or(occurred_at);
                self.enrolled(txn, tenant_id, &enrolled.member_id, enrollment, enrolled_at)
                    .await?;
                Some(Happening {
                    kinds: &[Kind::ENTRY_GIFT],
                    member_id: &enrolled.member_id,
                    at: enrolled_at,
                    place: Some(Place {
                        channel: enrollment.map_or(0, |enrollment| enrollment.channel),
                        brand_id: enrollment.map_or("", |enrollment| enrollment.brand_id.as_str()),
                        store_id: enrollment.map_or("", |enrollment| enrollment.store_id.as_str()),
                    }),
                    occurrence: "enrolment".into(),
                    sale: None,
                    tier: None,
                })
            }
            Some(Payload::SaleRecorded(sale)) if !sale.member_id.is_empty() => {
                let amount = sale.amount.as_ref();
                let at = sale.occurred_at.as_ref().and_then(from_proto).unwrap_or(occurred_at);
                let purchase = Purchase {
                    order: format!("{}/{}", sale.source, sale.transaction_id),
                    amount_minor: amount.map_or(0, |amount| amount.amount_minor),
                    at,
                };
                referrals::qualify(txn, tenant_id, &sale.member_id, &purchase, now).await?;
                Some(Happening {
                    kinds: &[Kind::PURCHASE_BONUS, Kind::MEMBER_DAY],
                    member_id: &sale.member_id,
                    at,
                    place: Some(Place {
                        channel: sale.channel,
                        brand_id: &sale.brand_id,
                        store_id: &sale.store_id,
                    }),
                    occurrence: format!("sale:{}/{}", sale.source, sale.transaction_id),
                    sale: Some((
                        amount.map_or(0, |amount| amount.amount_minor),
                        amount.map_or("", |amount| amount.currency.as_str()),
                    )),
                    tier: None,
                })
            }
            Some(Payload::TierChanged(changed)) => Some(Happening {
                kinds: &[Kind::TIER_GIFT],
                member_id: &changed.member_id,
                at: occurred_at,
                place: None,
                occurrence: format!("tier:{}:{}", changed.program_id, changed.to_tier),
                sale: None,
                tier: Some(&changed.to_tier),
            }),
            _ => None,
        };
        match happening {
            Some(happening) => rewards::reward(txn, tenant_id, (&happening, self.audiences.as_ref()), now).await,
            None => Ok(()),
        }
    }

    /// Records when a member enrolled, and attributes them to the inviter whose code they
    /// enrolled with. An attribution the rules refuse is logged: the enrolment stands.
    async fn enrolled(
        &self,
        txn: &DatabaseTransaction,
        tenant_id: &str,
        member_id: &str,
        enrollment: Option<&quanyu_proto::identity::v1::Enrollment>,
        enrolled_at: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), CampaignError> {
        store::referrals::record_enrolment(txn, tenant_id, member_id, enrolled_at).await?;
        let Some(code) = enrollment
            .map(|enrollment| enrollment.referral_code.as_str())
            .filter(|code| !code.is_empty())
        else {
            return Ok(());
        };
        let savepoint = sea_orm::TransactionTrait::begin(txn).await?;
        match referrals::attribute(&savepoint, tenant_id, (code, member_id), enrolled_at).await {
            Ok(_) => Ok(savepoint.commit().await?),
            Err(refusal @ (CampaignError::Refused { .. } | CampaignError::NotFound(_))) => {
                tracing::info!(tenant_id, member_id, %refusal, "an enrolment's referral code is refused");
                Ok(savepoint.rollback().await?)
            }
            Err(error) => Err(error),
        }
    }

    /// Adds a refund to the order's redemption; once the refunds cover the order, gives back its
    /// coupons that are still valid.
    async fn refund(
        &self,
        txn: &DatabaseTransaction,
        tenant_id: &str,
        sale: &SaleRecorded,
    ) -> Result<(), CampaignError> {
        let order = (sale.source.as_str(), sale.original_transaction_id.as_str());
        let refunded = sale.amount.as_ref().map_or(0, |amount| amount.amount_minor);
        let occurrence = format!("sale:{}/{}", sale.source, sale.original_transaction_id);
        let refund = format!("{}/{}", sale.source, sale.transaction_id);
        let now = self.clock.now();
        rewards::revoke_for_refund(txn, tenant_id, &occurrence, (&refund, refunded), now).await?;
        let refunded_at = sale.occurred_at.as_ref().and_then(from_proto).unwrap_or(now);
        let refunded_order = format!("{}/{}", order.0, order.1);
        referrals::refund(txn, tenant_id, (&refunded_order, refunded), refunded_at, now).await?;
        let Some(redemption) = store::coupons::add_refund(txn, tenant_id, order, refunded).await? else {
            return Ok(());
        };
        if redemption.restored || redemption.refunded_minor < redemption.amount_minor {
            return Ok(());
        }
        let restored = store::coupons::restore(txn, tenant_id, order, self.clock.now()).await?;
        let events = restored.iter().map(|coupon| events::restored(coupon, order)).collect();
        quanyu_outbox::append(txn, events).await?;
        // Counted before the consumer's commit: a failed commit retries, and may count twice.
        crate::app::coupons::counted("restored", restored.len());
        Ok(())
    }
}
