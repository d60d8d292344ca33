//! What the demo group is made of, member by member: pure and deterministic for a seed, so that
//! running the demo again (after Ctrl-C) sends the same identities, sales and keys, and the
//! services answer what is already there as duplicates.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use quanyu_proto::analytics::v1 as analytics_pb;
use quanyu_proto::common::v1::{Channel, Money};
use quanyu_proto::identity::v1 as identity_pb;
use quanyu_proto::points::v1 as points_pb;
use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};

pub const BRANDS: [(&str, &str); 2] = [("lumen", "Lumen apparel"), ("aurora", "Aurora beauty")];
const CITIES: [(&str, &str); 8] = [
    ("sh", "Shanghai"),
    ("bj", "Beijing"),
    ("gz", "Guangzhou"),
    ("sz", "Shenzhen"),
    ("hz", "Hangzhou"),
    ("cd", "Chengdu"),
    ("wh", "Wuhan"),
    ("nj", "Nanjing"),
];
/// Stores per city: 8 cities × 5 = 40 stores, each with three guides.
const STORES_PER_CITY: usize = 5;
const GUIDES_PER_STORE: usize = 3;
const WECHAT_APP: &str = "wx-demo-mall";
const CATEGORIES: [(&str, i64); 6] = [
    ("apparel", 39_900),
    ("shoes", 59_900),
    ("accessories", 9_900),
    ("skincare", 29_900),
    ("makeup", 19_900),
    ("fragrance", 69_900),
];

/// The demo's shape: how many members, over how many days up to which day.
#[derive(Debug, Clone)]
pub struct Plan {
    pub seed: u64,
    pub members: u64,
    pub days: u32,
    /// Sales and interactions happen on the days before this one.
    pub until: NaiveDate,
}

/// A person enrolled once, and perhaps again on another channel (merged afterwards).
#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    pub enrol: identity_pb::EnrollMemberRequest,
    /// The same person enrolled a second time, with another channel's identity only.
    pub second_enrolment: Option<identity_pb::EnrollMemberRequest>,
    /// Friends who join with the member's invite code.
    pub friends: Vec<identity_pb::EnrollMemberRequest>,
    /// Claims the welcome coupon.
    pub claims_coupon: bool,
    pub sales: Vec<points_pb::Sale>,
    pub refunds: Vec<points_pb::Sale>,
    pub interactions: Vec<analytics_pb::Interaction>,
}

pub fn store_ids() -> Vec<String> {
    CITIES
        .iter()
        .flat_map(|(city, _)| (1..=STORES_PER_CITY).map(move |number| format!("{city}-{number:02}")))
        .collect()
}

fn identity(kind: identity_pb::IdentityKind, value: String, namespace: &str) -> identity_pb::Identity {
    identity_pb::Identity {
        kind: kind.into(),
        value,
        namespace: namespace.to_owned(),
    }
}

/// The identity a channel knows the person by.
fn channel_identity(channel: Channel, person: u64) -> identity_pb::Identity {
    use identity_pb::IdentityKind as Kind;
    match channel {
        Channel::Tmall => identity(Kind::TmallOuid, format!("ouid{person:012}"), ""),
        Channel::Jd => identity(Kind::JdPin, format!("jd_{person:010}"), ""),
        Channel::Douyin => identity(Kind::DouyinOpenid, format!("dy{person:014}"), ""),
        Channel::WechatMall => identity(Kind::WechatOpenid, format!("oDemo{person:013}"), WECHAT_APP),
        _ => identity(Kind::PosCard, format!("C{person:09}"), ""),
    }
}

pub(super) fn cny(amount_minor: i64) -> Option<Money> {
    Some(Money {
        amount_minor,
        currency: "CNY".to_owned(),
    })
}

pub(super) fn timestamp(at: DateTime<Utc>) -> Option<prost_types::Timestamp> {
    Some(quanyu_runtime::clock::to_proto(at))
}

const CHANNELS: [(Channel, u32); 5] = [
    (Channel::Store, 40),
    (Channel::WechatMall, 20),
    (Channel::Tmall, 20),
    (Channel::Jd, 10),
    (Channel::Douyin, 10),
];

impl Plan {
    /// A generator for person `person`, independent of every other person's.
    fn rng(&self, person: u64) -> StdRng {
        StdRng::seed_from_u64(self.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ person)
    }

    fn channel(rng: &mut StdRng) -> Channel {
        let mut pick = rng.random_range(0..100);
        for (channel, weight) in CHANNELS {
            if pick < weight {
                return channel;
            }
            pick -= weight;
        }
        Channel::Store
    }

    fn first_moment_of_until(&self) -> DateTime<Utc> {
        self.until.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc()
    }

    /// A time on day `days_before` before `until`, between 10:00 and 22:00 at +08:00.
    fn time(&self, rng: &mut StdRng, days_before: i64) -> DateTime<Utc> {
        let day = self.until - Duration::days(days_before);
        let midnight = day.and_hms_opt(2, 0, 0).unwrap_or_default().and_utc();
        midnight + Duration::seconds(rng.random_range(0..12 * 3600))
    }

    /// Person `person` joining on `channel`, `days_before` days before `until` (None: now).
    fn enrolment(
        &self,
        rng: &mut StdRng,
        person: u64,
        channel: Channel,
        days_before: Option<i64>,
    ) -> identity_pb::EnrollMemberRequest {
        let phone = identity(identity_pb::IdentityKind::Phone, format!("139{person:08}"), "");
        let stores = store_ids();
        let (store_id, guide_id) = if channel == Channel::Store {
            let store = stores[rng.random_range(0..stores.len())].clone();
            let guide = format!("{store}-g{}", rng.random_range(1..=GUIDES_PER_STORE));
            (store, guide)
        } else {
            (String::new(), String::new())
        };
        let (_, city) = CITIES[rng.random_range(0..CITIES.len())];
        let year = rng.random_range(1965..2006);
        identity_pb::EnrollMemberRequest {
            identities: vec![phone, channel_identity(channel, person)],
            profile: Some(identity_pb::Profile {
                city: city.to_owned(),
                birthday: format!("{year}-{:02}-{:02}", rng.random_range(1..=12), rng.random_range(1..=28)),
                ..Default::default()
            }),
            enrollment: Some(identity_pb::Enrollment {
                channel: channel.into(),
                brand_id: BRANDS[rng.random_range(0..BRANDS.len())].0.to_owned(),
                store_id,
                guide_id,
                referral_code: String::new(),
            }),
            enrolled_at: days_before.and_then(|days_before| timestamp(self.time(rng, days_before))),
        }
    }

    /// Member `index` (0-based): who they are, what they buy, return and look at.
    pub fn member(&self, index: u64) -> Member {
        let mut rng = self.rng(index);
        let home = Self::channel(&mut rng);
        // Members joined over the demo's days and half a year before; some only days ago.
        let joined_before = rng.random_range(1..=i64::from(self.days) + 180);
        let enrol = self.enrolment(&mut rng, index, home, Some(joined_before));
        // One person in twenty also joined on another channel before the two were linked.
        let second_enrolment = rng.random_bool(0.05).then(|| {
            let other = CHANNELS
                .iter()
                .map(|(channel, _)| *channel)
                .find(|channel| *channel != home && *channel != Channel::Store);
            let other = other.unwrap_or(Channel::Tmall);
            let days_before = rng.random_range(1..=joined_before);
            identity_pb::EnrollMemberRequest {
                identities: vec![channel_identity(other, index)],
                enrollment: Some(identity_pb::Enrollment {
                    channel: other.into(),
                    ..Default::default()
                }),
                enrolled_at: timestamp(self.time(&mut rng, days_before)),
                ..Default::default()
            }
        });
        // One member in a hundred brings one to three friends with an invite code.
        let friends = if rng.random_bool(0.01) {
            (0..rng.random_range(1..=3u64))
                .map(|friend| {
                    let person = self.members + index * 3 + friend;
                    let mut friend_rng = self.rng(person);
                    // Friends join now, with the code the member shares today.
                    self.enrolment(&mut friend_rng, person, Channel::WechatMall, None)
                })
                .collect()
        } else {
            Vec::new()
        };
        let claims_coupon = rng.random_bool(0.1);
        let buying_days = joined_before.min(i64::from(self.days));
        let (sales, refunds) = self.sales(&mut rng, index, home, buying_days, &enrol, second_enrolment.as_ref());
        let interactions = self.interactions(&mut rng, index, home);
        Member {
            enrol,
            second_enrolment,
            friends,
            claims_coupon,
            sales,
            refunds,
            interactions,
        }
    }

    fn sales(
        &self,
        rng: &mut StdRng,
        index: u64,
        home: Channel,
        buying_days: i64,
        enrol: &identity_pb::EnrollMemberRequest,
        second: Option<&identity_pb::EnrollMemberRequest>,
    ) -> (Vec<points_pb::Sale>, Vec<points_pb::Sale>) {
        let brand = enrol
            .enrollment
            .as_ref()
            .map(|e| e.brand_id.clone())
            .unwrap_or_default();
        let home_store = enrol
            .enrollment
            .as_ref()
            .map(|e| e.store_id.clone())
            .unwrap_or_default();
        let stores = store_ids();
        let count = [0, 1, 1, 2, 2, 3, 4, 6][rng.random_range(0..8)];
        let (mut sales, mut refunds) = (Vec::new(), Vec::new());
        for number in 0..count {
            // Most buy where they joined; some elsewhere, which makes the channel overlap.
            let channel = if rng.random_bool(0.75) {
                home
            } else {
                Self::channel(rng)
            };
            let buyer = match (channel, second) {
                (Channel::Store, _) => enrol.identities[0].clone(),
                (channel, Some(second)) if second.identities[0] == channel_identity(channel, index) => {
                    second.identities[0].clone()
                }
                (channel, _) if channel == home => enrol.identities[1].clone(),
                // A channel the member did not join on knows them by phone, as stores do.
                _ => enrol.identities[0].clone(),
            };
            let store_id = match channel {
                Channel::Store if !home_store.is_empty() && rng.random_bool(0.8) => home_store.clone(),
                Channel::Store => stores[rng.random_range(0..stores.len())].clone(),
                _ => String::new(),
            };
            let days_before = rng.random_range(1..=buying_days);
            let lines: Vec<points_pb::SaleLine> = (0..rng.random_range(1..=3))
                .map(|line| {
                    let (category, price) = CATEGORIES[rng.random_range(0..CATEGORIES.len())];
                    let quantity = rng.random_range(1..=2);
                    points_pb::SaleLine {
                        sku: format!("{category}-{:03}", rng.random_range(1..40) + line),
                        category: category.to_owned(),
                        quantity,
                        amount: cny(price * quantity),
                    }
                })
                .collect();
            let total: i64 = lines
                .iter()
                .filter_map(|line| line.amount.as_ref())
                .map(|money| money.amount_minor)
                .sum();
            let source = source(channel);
            let transaction_id = format!("demo-{index}-{number}");
            let at = self.time(rng, days_before);
            // One sale in twenty is returned, whole or in part, within a week.
            if rng.random_bool(0.05) {
                let back = if rng.random_bool(0.5) { total } else { total / 2 };
                let later = at + Duration::days(rng.random_range(1..=7));
                refunds.push(points_pb::Sale {
                    source: source.clone(),
                    transaction_id: format!("{transaction_id}-r"),
                    kind: points_pb::SaleKind::Refund.into(),
                    original_transaction_id: transaction_id.clone(),
                    channel: channel.into(),
                    brand_id: brand.clone(),
                    store_id: store_id.clone(),
                    // Never after the day before `until` ends in UTC: `until` may be today.
                    occurred_at: timestamp(later.min(self.first_moment_of_until() - Duration::hours(1))),
                    buyer: None,
                    amount: cny(back),
                    lines: Vec::new(),
                    points_redeemed: 0,
                });
            }
            // A few store sales are to people who did not show a phone or card.
            let buyer = (channel != Channel::Store || rng.random_bool(0.9)).then_some(points_pb::Buyer {
                who: Some(points_pb::buyer::Who::Identity(buyer)),
            });
            sales.push(points_pb::Sale {
                source,
                transaction_id,
                kind: points_pb::SaleKind::Sale.into(),
                original_transaction_id: String::new(),
                channel: channel.into(),
                brand_id: brand.clone(),
                store_id,
                occurred_at: timestamp(at),
                buyer,
                amount: cny(total),
                lines,
                points_redeemed: 0,
            });
        }
        (sales, refunds)
    }

    /// Exposures and engagements on the member's online channel, and a prospect who is not a
    /// member (yet) seen by WeChat ads.
    fn interactions(&self, rng: &mut StdRng, index: u64, home: Channel) -> Vec<analytics_pb::Interaction> {
        use analytics_pb::InteractionKind as Kind;
        let online = if home == Channel::Store {
            Channel::WechatMall
        } else {
            home
        };
        let prospect = identity(
            identity_pb::IdentityKind::WechatOpenid,
            format!("oProspect{index:09}"),
            WECHAT_APP,
        );
        let mut seen = Vec::new();
        for number in 0..rng.random_range(0..4) {
            let (who, channel) = if number % 2 == 0 {
                (channel_identity(online, index), online)
            } else {
                (prospect.clone(), Channel::WechatMall)
            };
            let kind = [Kind::Exposure, Kind::Click, Kind::Visit, Kind::AddToCart][rng.random_range(0..4)];
            let days_before = rng.random_range(1..=30.min(i64::from(self.days)));
            seen.push(analytics_pb::Interaction {
                source: "demo-ads".to_owned(),
                event_id: format!("demo-{index}-{number}"),
                identity: Some(who),
                kind: kind.into(),
                channel: channel.into(),
                brand_id: BRANDS[rng.random_range(0..BRANDS.len())].0.to_owned(),
                store_id: String::new(),
                occurred_at: timestamp(self.time(rng, days_before)),
            });
        }
        seen
    }
}

/// The source system of a channel's sales.
fn source(channel: Channel) -> String {
    crate::names::short(channel.as_str_name(), "CHANNEL_").replace('_', "-")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn plan(seed: u64) -> Plan {
        Plan {
            seed,
            members: 1_000,
            days: 365,
            until: NaiveDate::from_ymd_opt(2026, 12, 3).unwrap(),
        }
    }

    #[test]
    fn forty_stores_in_eight_cities() {
        let stores = store_ids();
        assert_eq!(stores.len(), 40);
        assert_eq!(stores.iter().collect::<std::collections::BTreeSet<_>>().len(), 40);
    }

    #[test]
    fn a_seed_makes_the_same_group_and_another_seed_another() {
        assert_eq!(plan(7).member(42), plan(7).member(42));
        let differs = (0..20).any(|index| plan(7).member(index) != plan(8).member(index));
        assert!(differs);
    }

    proptest! {
        #[test]
        fn every_member_is_consistent(seed in any::<u64>(), index in 0u64..1_000) {
            let plan = plan(seed);
            let member = plan.member(index);
            let known: Vec<&identity_pb::Identity> = member
                .enrol
                .identities
                .iter()
                .chain(member.second_enrolment.iter().flat_map(|second| second.identities.iter()))
                .collect();
            let first_day = (plan.until - Duration::days(i64::from(plan.days))).and_hms_opt(0, 0, 0).unwrap().and_utc();
            let until = plan.until.and_hms_opt(0, 0, 0).unwrap().and_utc();
            for sale in &member.sales {
                if let Some(points_pb::Buyer { who: Some(points_pb::buyer::Who::Identity(buyer)) }) = &sale.buyer {
                    prop_assert!(known.contains(&buyer), "a sale's buyer is one of the person's identities");
                }
                let at = DateTime::from_timestamp(sale.occurred_at.unwrap().seconds, 0).unwrap();
                prop_assert!(at >= first_day && at < until, "sales fall in the days asked for");
            }
            for refund in &member.refunds {
                let sale = member.sales.iter().find(|sale| sale.transaction_id == refund.original_transaction_id);
                let sale = sale.expect("a refund names a sale of the member");
                prop_assert!(refund.amount.as_ref().unwrap().amount_minor <= sale.amount.as_ref().unwrap().amount_minor);
                prop_assert!(refund.occurred_at.unwrap().seconds >= sale.occurred_at.unwrap().seconds);
                prop_assert_eq!(&refund.source, &sale.source);
            }
        }
    }
}
