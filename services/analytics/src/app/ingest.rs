//! Facts from member-identity's, loyalty-points' and campaign's event streams: enrolments,
//! profiles, tags, bindings, identities linked (which fold an identity's interactions into its
//! member), merges, erasures, sales, balances and tiers; campaigns' rewards and coupons. Each event is applied in the consumer's transaction with
//! its cursor, so exactly once.

use std::collections::{BTreeMap, BTreeSet};

use chrono::FixedOffset;
use quanyu_outbox::consumer::EventHandler;
use quanyu_proto::events::v1::Event;
use quanyu_proto::events::v1::event::Payload;
use quanyu_proto::points::v1::{SaleKind, SaleRecorded};
use quanyu_runtime::clock::from_proto;
use sea_orm::{DatabaseTransaction, DbErr};

use crate::domain::Place;
use crate::domain::interaction::{anonymous_consumer, linked_keys};
use crate::domain::lines::split;
use crate::domain::window::day_of;
use crate::store::campaigns::{self, Counts, Scope};
use crate::store::changes::{self, Changed};
use crate::store::consumers;
use crate::store::facts::{self, LineFact, SaleFact};
use crate::store::profiles::{self, Account, AccountFact};

/// The identity events analytics reads, by stream name.
pub fn identity_event_types() -> Vec<String> {
    use quanyu_proto::events::event_type_of;
    use quanyu_proto::identity::v1 as identity;
    vec![
        event_type_of::<identity::MemberEnrolled>(),
        event_type_of::<identity::ProfileUpdated>(),
        event_type_of::<identity::TagsChanged>(),
        event_type_of::<identity::GuideBound>(),
        event_type_of::<identity::IdentityLinked>(),
        event_type_of::<identity::IdentityUnlinked>(),
        event_type_of::<identity::MembersMerged>(),
        event_type_of::<identity::MemberErased>(),
    ]
}

/// The points events analytics reads, by stream name.
pub fn points_event_types() -> Vec<String> {
    use quanyu_proto::events::event_type_of;
    use quanyu_proto::points::v1 as points;
    vec![
        event_type_of::<points::SaleRecorded>(),
        event_type_of::<points::PointsChanged>(),
        event_type_of::<points::TierChanged>(),
    ]
}

/// The campaign events analytics reads: what campaigns and coupons achieved.
pub fn campaign_event_types() -> Vec<String> {
    use quanyu_proto::campaign::v1 as campaign;
    use quanyu_proto::events::event_type_of;
    vec![
        event_type_of::<campaign::RewardGranted>(),
        event_type_of::<campaign::CouponIssued>(),
        event_type_of::<campaign::CouponRedeemed>(),
        event_type_of::<campaign::CouponRestored>(),
        event_type_of::<campaign::ReferralAttributed>(),
        event_type_of::<campaign::TaskProgressed>(),
    ]
}

/// Applies enrolments, merges and sales to the facts; days are read in `offset`.
pub struct Facts {
    pub offset: FixedOffset,
}

#[async_trait::async_trait]
impl EventHandler for Facts {
    async fn apply(&self, txn: &DatabaseTransaction, event: &Event) -> Result<(), DbErr> {
        self.apply_all(txn, std::slice::from_ref(event)).await
    }

    /// Each run of points facts (sales, balances, tiers) is written in a few statements whatever
    /// its length; other events one at a time.
    async fn apply_all(&self, txn: &DatabaseTransaction, events: &[Event]) -> Result<(), DbErr> {
        let mut rest = events;
        let mut changed = BTreeSet::new();
        while let Some(first) = rest.first() {
            let run = rest.iter().take_while(|event| is_points_fact(event)).count();
            if run == 0 {
                self.apply_other(txn, first, &mut changed).await?;
                rest = &rest[1..];
            } else {
                self.apply_points_facts(txn, &rest[..run], &mut changed).await?;
                rest = &rest[run..];
            }
        }
        changes::record(txn, &changed).await
    }
}

/// Sales, balances and tiers: sales add up, and the last balance or tier announced of an account
/// stands, so a run of them can be written together. (A refund follows the sale it refunds in
/// the stream, and its sale's lines are kept before any refund of the run is read.)
fn is_points_fact(event: &Event) -> bool {
    matches!(
        event.payload,
        Some(Payload::SaleRecorded(_) | Payload::PointsChanged(_) | Payload::TierChanged(_))
    )
}

impl Facts {
    /// A run of events that [`is_points_fact`] accepts (others in it are not applied).
    async fn apply_points_facts(
        &self,
        txn: &DatabaseTransaction,
        events: &[Event],
        changed: &mut BTreeSet<Changed>,
    ) -> Result<(), DbErr> {
        let mut sales: BTreeMap<&str, Vec<&SaleRecorded>> = BTreeMap::new();
        let mut balances: BTreeMap<Account<'_>, i64> = BTreeMap::new();
        let mut tiers: BTreeMap<Account<'_>, &str> = BTreeMap::new();
        for event in events {
            let tenant_id = event.tenant_id.as_str();
            match &event.payload {
                Some(Payload::SaleRecorded(sale)) => sales.entry(tenant_id).or_default().push(sale),
                Some(Payload::PointsChanged(changed)) => {
                    let account = (tenant_id, changed.member_id.as_str(), changed.program_id.as_str());
                    balances.insert(account, changed.balance_after);
                }
                Some(Payload::TierChanged(changed)) => {
                    let account = (tenant_id, changed.member_id.as_str(), changed.program_id.as_str());
                    tiers.insert(account, changed.to_tier.as_str());
                }
                _ => {}
            }
        }
        for (tenant_id, sales) in sales {
            self.record_sales(txn, tenant_id, &sales, changed).await?;
        }
        profiles::set_accounts(txn, AccountFact::Balance, &balances).await?;
        profiles::set_accounts(txn, AccountFact::Tier, &tiers).await
    }

    /// A tenant's sales and refunds, in stream order.
    async fn record_sales(
        &self,
        txn: &DatabaseTransaction,
        tenant_id: &str,
        sales: &[&SaleRecorded],
        changed: &mut BTreeSet<Changed>,
    ) -> Result<(), DbErr> {
        let buyers: Vec<&str> = sales
            .iter()
            .map(|sale| sale.member_id.as_str())
            .filter(|member_id| !member_id.is_empty())
            .collect();
        // A sale may arrive after its buyer's merge (the streams are not ordered between them):
        // it counts for the survivor.
        let survivors = facts::survivors(txn, tenant_id, &buyers).await?;
        let fact = |sale: &SaleRecorded, lines: Vec<LineFact>| {
            let is_refund = sale.kind == SaleKind::Refund as i32;
            let amount = sale.amount.as_ref().map_or(0, |amount| amount.amount_minor);
            let at = sale.occurred_at.as_ref().and_then(from_proto).unwrap_or_default();
            let member_id = Some(sale.member_id.as_str()).filter(|member_id| !member_id.is_empty());
            SaleFact {
                member_id: member_id.map(|member_id| {
                    survivors
                        .get(member_id)
                        .cloned()
                        .unwrap_or_else(|| member_id.to_owned())
                }),
                day: day_of(at, self.offset),
                place: Place {
                    brand_id: sale.brand_id.clone(),
                    channel: sale.channel,
                    store_id: sale.store_id.clone(),
                },
                amount_minor: if is_refund { -amount } else { amount },
                orders: i64::from(!is_refund),
                lines,
            }
        };
        let (refunds, bought): (Vec<&SaleRecorded>, Vec<&SaleRecorded>) =
            sales.iter().partition(|sale| sale.kind == SaleKind::Refund as i32);
        let mut recorded: Vec<SaleFact> = bought
            .iter()
            .map(|sale| {
                let lines = sale
                    .lines
                    .iter()
                    .map(|line| LineFact {
                        category: line.category.clone(),
                        sku: line.sku.clone(),
                        amount_minor: line.amount.as_ref().map_or(0, |amount| amount.amount_minor),
                    })
                    .collect();
                fact(sale, lines)
            })
            .collect();
        let kept: Vec<((&str, &str), &[LineFact])> = bought
            .iter()
            .zip(&recorded)
            .map(|(sale, fact)| {
                (
                    (sale.source.as_str(), sale.transaction_id.as_str()),
                    fact.lines.as_slice(),
                )
            })
            .collect();
        facts::keep_lines(txn, tenant_id, &kept).await?;
        for refund in refunds {
            // A refund takes back from the lines of the sale it refunds, in their proportions.
            let refunded = (refund.source.as_str(), refund.original_transaction_id.as_str());
            let original = facts::lines_of(txn, tenant_id, refunded).await?;
            let amounts: Vec<i64> = original.iter().map(|line| line.amount_minor).collect();
            let amount = refund.amount.as_ref().map_or(0, |amount| amount.amount_minor);
            let lines = original
                .into_iter()
                .zip(split(-amount, &amounts))
                .map(|(line, share)| LineFact {
                    amount_minor: share,
                    ..line
                })
                .collect();
            recorded.push(fact(refund, lines));
        }
        let buyers = recorded.iter().filter_map(|sale| sale.member_id.clone());
        changed.extend(buyers.map(|member_id| (tenant_id.to_owned(), member_id)));
        facts::record_sales(txn, tenant_id, &recorded).await
    }

    /// An event that is not a points fact.
    async fn apply_other(
        &self,
        txn: &DatabaseTransaction,
        event: &Event,
        changed: &mut BTreeSet<Changed>,
    ) -> Result<(), DbErr> {
        let tenant_id = event.tenant_id.as_str();
        let mut change = |consumer_id: &str| changed.insert((tenant_id.to_owned(), consumer_id.to_owned()));
        match &event.payload {
            Some(Payload::MemberEnrolled(enrolled)) => {
                let enrollment = enrolled.enrollment.clone().unwrap_or_default();
                let at = enrolled.enrolled_at.as_ref().or(event.occurred_at.as_ref());
                let at = at.and_then(from_proto).unwrap_or_default();
                let place = Place {
                    brand_id: enrollment.brand_id,
                    channel: enrollment.channel,
                    store_id: enrollment.store_id,
                };
                let member_id = enrolled.member_id.as_str();
                change(member_id);
                facts::enrol(txn, tenant_id, member_id, &day_of(at, self.offset), &place).await?;
                let binding = (place.store_id.as_str(), enrollment.guide_id.as_str());
                profiles::bind(txn, tenant_id, member_id, binding).await
            }
            Some(Payload::ProfileUpdated(updated)) => {
                let profile = updated.profile.clone().unwrap_or_default();
                let facts = (profile.city.as_str(), profile.birthday.as_str());
                profiles::set_profile(txn, tenant_id, &updated.member_id, facts).await
            }
            Some(Payload::TagsChanged(changed)) => {
                let set: Vec<(String, String)> = changed
                    .set
                    .iter()
                    .map(|tag| (tag.name.clone(), tag.value.clone()))
                    .collect();
                profiles::change_tags(txn, tenant_id, &changed.member_id, &set, &changed.removed).await
            }
            Some(Payload::GuideBound(bound)) => match &bound.binding {
                Some(binding) if binding.unbound_at.is_none() => {
                    let binding = (binding.store_id.as_str(), binding.guide_id.as_str());
                    profiles::bind(txn, tenant_id, &bound.member_id, binding).await
                }
                _ => Ok(()),
            },
            Some(Payload::IdentityLinked(linked)) => {
                let keys = linked_keys(&linked.identity.clone().unwrap_or_default());
                change(&linked.member_id);
                for key in &keys {
                    change(&anonymous_consumer(key));
                }
                consumers::link(txn, tenant_id, &keys, &linked.member_id).await
            }
            Some(Payload::IdentityUnlinked(unlinked)) => {
                let keys = linked_keys(&unlinked.identity.clone().unwrap_or_default());
                consumers::unlink(txn, tenant_id, &keys, &unlinked.member_id).await
            }
            Some(Payload::MembersMerged(merged)) => {
                let (survivor, loser) = (&merged.survivor_id, &merged.merged_member_id);
                change(survivor);
                change(loser);
                facts::merge(txn, tenant_id, survivor, loser).await?;
                profiles::merge(txn, tenant_id, survivor, loser).await?;
                consumers::merge(txn, tenant_id, survivor, loser).await?;
                campaigns::merge(txn, tenant_id, survivor, loser).await
            }
            Some(Payload::MemberErased(erased)) => {
                profiles::erase(txn, tenant_id, &erased.member_id).await?;
                consumers::erase(txn, tenant_id, &erased.member_id).await
            }
            Some(Payload::RewardGranted(granted)) => {
                let counts = Counts {
                    rewards: 1,
                    points_granted: granted.points,
                    coupons_issued: i64::from(!granted.coupon_id.is_empty()),
                    ..Counts::default()
                };
                if !granted.coupon_id.is_empty() {
                    campaigns::remember_coupon(txn, tenant_id, &granted.coupon_id, &granted.campaign_id).await?;
                }
                let result = (Scope::Campaign, granted.campaign_id.as_str());
                campaign_result(txn, tenant_id, result, &granted.member_id, counts).await
            }
            Some(Payload::CouponIssued(issued)) => {
                let counts = Counts {
                    coupons_issued: 1,
                    ..Counts::default()
                };
                let result = (Scope::Template, issued.template_id.as_str());
                campaign_result(txn, tenant_id, result, &issued.member_id, counts).await
            }
            Some(Payload::CouponRedeemed(coupon)) => {
                let used = (
                    coupon.coupon_id.as_str(),
                    coupon.template_id.as_str(),
                    coupon.member_id.as_str(),
                );
                let counts = Counts {
                    coupons_redeemed: 1,
                    ..Counts::default()
                };
                coupon_used(txn, tenant_id, used, counts).await
            }
            Some(Payload::ReferralAttributed(referral)) => {
                let campaign_id = referral.campaign_id.as_str();
                let inviters = (Scope::Inviters, campaign_id);
                campaign_result(txn, tenant_id, inviters, &referral.inviter_id, Counts::default()).await?;
                let counts = Counts {
                    invitees: 1,
                    ..Counts::default()
                };
                campaigns::add(txn, tenant_id, (Scope::Campaign, campaign_id), None, counts).await
            }
            Some(Payload::TaskProgressed(progressed)) => {
                let counts = Counts {
                    invitees_qualified: i64::from(progressed.change),
                    ..Counts::default()
                };
                let result = (Scope::Campaign, progressed.campaign_id.as_str());
                campaigns::add(txn, tenant_id, result, None, counts).await
            }
            Some(Payload::CouponRestored(coupon)) => {
                let used = (
                    coupon.coupon_id.as_str(),
                    coupon.template_id.as_str(),
                    coupon.member_id.as_str(),
                );
                let counts = Counts {
                    coupons_restored: 1,
                    ..Counts::default()
                };
                coupon_used(txn, tenant_id, used, counts).await
            }
            _ => Ok(()),
        }
    }
}

/// Adds `counts` to a campaign's or a template's result, reaching the member (as merges left it).
async fn campaign_result(
    txn: &DatabaseTransaction,
    tenant_id: &str,
    result: (Scope, &str),
    member_id: &str,
    counts: Counts,
) -> Result<(), DbErr> {
    campaigns::lock_member(txn, tenant_id, member_id).await?;
    let member_id = facts::member_now(txn, tenant_id, member_id).await?;
    campaigns::add(txn, tenant_id, result, Some(&member_id), counts).await
}

/// Adds a redemption (or its restoring) to the coupon's template and, when a campaign gave the
/// coupon, to the campaign.
async fn coupon_used(
    txn: &DatabaseTransaction,
    tenant_id: &str,
    (coupon_id, template_id, member_id): (&str, &str, &str),
    counts: Counts,
) -> Result<(), DbErr> {
    campaign_result(txn, tenant_id, (Scope::Template, template_id), member_id, counts).await?;
    match campaigns::campaign_of_coupon(txn, tenant_id, coupon_id).await? {
        Some(campaign_id) => {
            let result = (Scope::Campaign, campaign_id.as_str());
            campaign_result(txn, tenant_id, result, member_id, counts).await
        }
        None => Ok(()),
    }
}
