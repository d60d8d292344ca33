//! Campaigns: what they reward, when and where, their states, and the checks a campaign must
//! pass to be created.

use chrono::{Datelike, FixedOffset};
use quanyu_proto::campaign::v1 as pb;
use quanyu_proto::common::v1::Money;
use quanyu_runtime::auth::is_slug;
use quanyu_runtime::clock::from_proto;
use quanyu_runtime::error::{FieldViolation, Violations};

use super::assist::AssistRules;
use super::referral::Ladder;
use super::template::{Timestamp, amount_of, check_places};

/// The most points one reward grants: far above any real gift.
pub const MAX_REWARD_POINTS: i64 = 1_000_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberDay {
    /// 1 (Monday) to 7 (Sunday).
    Weekday(u32),
    DayOfMonth(u32),
}

impl MemberDay {
    fn is(self, day: chrono::NaiveDate) -> bool {
        match self {
            Self::Weekday(weekday) => day.weekday().number_from_monday() == weekday,
            Self::DayOfMonth(of_month) => day.day() == of_month,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    EntryGift,
    PurchaseBonus,
    MemberDay(MemberDay),
    TierGift(String),
    BirthdayGift,
    CouponDrop,
    Referral(Ladder),
    Assist(AssistRules),
}

impl Kind {
    pub const ENTRY_GIFT: &'static str = "ENTRY_GIFT";
    pub const PURCHASE_BONUS: &'static str = "PURCHASE_BONUS";
    pub const MEMBER_DAY: &'static str = "MEMBER_DAY";
    pub const TIER_GIFT: &'static str = "TIER_GIFT";
    pub const BIRTHDAY_GIFT: &'static str = "BIRTHDAY_GIFT";
    pub const COUPON_DROP: &'static str = "COUPON_DROP";
    pub const REFERRAL: &'static str = "REFERRAL";
    pub const ASSIST: &'static str = "ASSIST";

    /// How it is stored, to find the campaigns an event may trigger.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::EntryGift => Self::ENTRY_GIFT,
            Self::PurchaseBonus => Self::PURCHASE_BONUS,
            Self::MemberDay(_) => Self::MEMBER_DAY,
            Self::TierGift(_) => Self::TIER_GIFT,
            Self::BirthdayGift => Self::BIRTHDAY_GIFT,
            Self::CouponDrop => Self::COUPON_DROP,
            Self::Referral(_) => Self::REFERRAL,
            Self::Assist(_) => Self::ASSIST,
        }
    }
}

/// Points by a purchase's amount.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bonus {
    pub points_per_unit: i64,
    pub unit_minor: i64,
    pub min_spend_minor: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BudgetKind {
    Points,
    Coupons,
    /// The face value of the coupons issued.
    Money,
}

/// Who a campaign may reward: the members an analytics audience selects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Audience {
    Rule(String),
    /// A saved audience's name.
    Saved(String),
}

/// The longest audience rule analytics reads.
const MAX_RULE_CHARS: usize = 4_000;

/// Where something happened: its channel, brand and store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Place<'a> {
    pub channel: i32,
    pub brand_id: &'a str,
    pub store_id: &'a str,
}

/// A campaign as the rules read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Campaign {
    pub campaign_id: String,
    pub kind: Kind,
    pub starts_at: Timestamp,
    pub ends_at: Timestamp,
    pub offset: FixedOffset,
    pub channels: Vec<i32>,
    pub brand_ids: Vec<String>,
    pub store_ids: Vec<String>,
    pub points: i64,
    pub program_id: String,
    pub coupon_template_id: String,
    pub bonus: Option<Bonus>,
    pub currency: String,
    pub budget: Option<(BudgetKind, i64)>,
    pub per_member_limit: u32,
    pub audience: Option<Audience>,
}

impl Campaign {
    /// The campaign of a stored definition (checked when it was created).
    pub fn of_definition(definition: &pb::Campaign) -> Self {
        let mut violations = Violations::default();
        let campaign = read(definition, &mut violations);
        debug_assert!(violations.into_result().is_ok(), "stored campaigns were checked");
        campaign
    }

    /// Whether something that happened at `at`, at `place`, is the campaign's to reward.
    pub fn covers(&self, at: Timestamp, place: &Place<'_>) -> bool {
        let listed = |ids: &[String], id: &str| ids.is_empty() || ids.iter().any(|listed| listed == id);
        (self.starts_at..self.ends_at).contains(&at)
            && (self.channels.is_empty() || self.channels.contains(&place.channel))
            && listed(&self.brand_ids, place.brand_id)
            && listed(&self.store_ids, place.store_id)
    }

    /// The member day `at` falls on (`YYYY-MM-DD` in the campaign's time zone), if it is one.
    pub fn member_day_of(&self, at: Timestamp) -> Option<String> {
        let Kind::MemberDay(member_day) = self.kind else {
            return None;
        };
        let day = at.with_timezone(&self.offset).date_naive();
        member_day.is(day).then(|| day.format("%Y-%m-%d").to_string())
    }

    /// The birthdays (`MM-DD`) celebrated on the day `at` falls on in the campaign's time zone,
    /// and the year they are celebrated in: 29 February is celebrated on 28 February in years
    /// without it.
    pub fn birthdays_at(&self, at: Timestamp) -> (Vec<String>, i32) {
        let day = at.with_timezone(&self.offset).date_naive();
        let mut month_days = vec![day.format("%m-%d").to_string()];
        if day.month() == 2 && day.day() == 28 && day.with_day(29).is_none() {
            month_days.push("02-29".into());
        }
        (month_days, day.year())
    }

    /// The points a purchase of `amount` (minor units, in `currency`) earns, with the reward's
    /// own; `None` when the purchase is not rewarded (too small, another currency).
    pub fn purchase_points(&self, amount_minor: i64, currency: &str) -> Option<i64> {
        let bonus = self.bonus?;
        if currency != self.currency || amount_minor < bonus.min_spend_minor {
            return None;
        }
        let by_amount =
            i128::from(amount_minor.max(0)) / i128::from(bonus.unit_minor.max(1)) * i128::from(bonus.points_per_unit);
        let total = i128::from(self.points) + by_amount;
        Some(i64::try_from(total.min(i128::from(MAX_REWARD_POINTS))).unwrap_or(MAX_REWARD_POINTS))
    }

    /// What a reward of `points` and, when it gives one, a coupon of `coupon_face_value` costs
    /// the budget.
    pub fn cost(&self, points: i64, coupon_face_value: Option<i64>) -> i64 {
        match self.budget {
            Some((BudgetKind::Points, _)) => points,
            Some((BudgetKind::Coupons, _)) => i64::from(coupon_face_value.is_some()),
            Some((BudgetKind::Money, _)) => coupon_face_value.unwrap_or(0),
            None => 0,
        }
    }
}

/// The states a campaign is stored in; ACTIVE is SCHEDULED within its window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    Draft,
    Scheduled,
    Paused,
    Ended,
}

impl Stored {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Draft => "DRAFT",
            Self::Scheduled => "SCHEDULED",
            Self::Paused => "PAUSED",
            Self::Ended => "ENDED",
        }
    }

    pub fn parse(stored: &str) -> Option<Self> {
        [Self::Draft, Self::Scheduled, Self::Paused, Self::Ended]
            .into_iter()
            .find(|state| state.as_str() == stored)
    }
}

/// The state a campaign is in at `now`.
pub fn state_at(stored: Stored, starts_at: Timestamp, ends_at: Timestamp, now: Timestamp) -> pb::CampaignState {
    match stored {
        Stored::Draft => pb::CampaignState::Draft,
        Stored::Ended => pb::CampaignState::Ended,
        _ if now >= ends_at => pb::CampaignState::Ended,
        Stored::Paused => pb::CampaignState::Paused,
        Stored::Scheduled if now >= starts_at => pb::CampaignState::Active,
        Stored::Scheduled => pb::CampaignState::Scheduled,
    }
}

/// The stored state after a move from `current` to `target`; `None` when the move is not
/// allowed. Moving to the current state keeps it.
pub fn change(stored: Stored, current: pb::CampaignState, target: pb::CampaignState) -> Option<Stored> {
    use pb::CampaignState as S;
    if current == target {
        return Some(stored);
    }
    match (current, target) {
        (S::Draft, S::Scheduled) | (S::Paused, S::Active) => Some(Stored::Scheduled),
        (S::Scheduled | S::Active, S::Paused) => Some(Stored::Paused),
        (S::Draft | S::Scheduled | S::Active | S::Paused, S::Ended) => Some(Stored::Ended),
        _ => None,
    }
}

/// Checks a campaign as a caller defines it; the rules' campaign, or every field at fault.
pub fn check(definition: &pb::Campaign) -> Result<Campaign, Vec<FieldViolation>> {
    let mut violations = Violations::default();
    let campaign = read(definition, &mut violations);
    violations.into_result().map(|()| campaign)
}

fn read(definition: &pb::Campaign, violations: &mut Violations) -> Campaign {
    if !is_slug(&definition.campaign_id) {
        violations.add("campaign.campaign_id", "must be 1-64 of [a-z0-9_.-]");
    }
    violations.text("campaign.name", &definition.name, 100, true);
    let kind = kind(definition, violations);
    let mut instant = |name: &str, at: Option<&prost_types::Timestamp>| match at.map(from_proto) {
        Some(Some(at)) => at,
        Some(None) => {
            violations.add(format!("campaign.{name}"), "is not a valid time");
            Timestamp::default()
        }
        None => {
            violations.add(format!("campaign.{name}"), "is required");
            Timestamp::default()
        }
    };
    let starts_at = instant("starts_at", definition.starts_at.as_ref());
    let ends_at = instant("ends_at", definition.ends_at.as_ref());
    if definition.starts_at.is_some() && definition.ends_at.is_some() && ends_at <= starts_at {
        violations.add("campaign.ends_at", "must be after starts_at");
    }
    let offset_text = if definition.utc_offset.is_empty() {
        "+08:00"
    } else {
        definition.utc_offset.as_str()
    };
    let offset = offset_text.parse::<FixedOffset>().unwrap_or_else(|_| {
        violations.add("campaign.utc_offset", "must be an offset such as +08:00");
        FixedOffset::east_opt(0).unwrap_or_else(|| unreachable!("0 is a valid offset"))
    });
    let places = (
        &definition.channels[..],
        &definition.brand_ids[..],
        &definition.store_ids[..],
    );
    check_places("campaign", places, violations);
    let reward = definition.reward.clone().unwrap_or_default();
    let (bonus, currency) = bonus(definition, &kind, violations);
    if let Kind::Referral(_) = kind {
        if definition.reward.is_some() {
            violations.add("campaign.reward", "is given by each rung of a REFERRAL campaign");
        }
    } else if !check_reward("campaign.reward", &reward, violations) && bonus.is_none() {
        violations.add(
            "campaign.reward",
            "must give points, a coupon, or a bonus by the amount",
        );
    }
    let budget = definition.budget.as_ref().map(|budget| {
        let kind = match pb::BudgetKind::try_from(budget.kind) {
            Ok(pb::BudgetKind::Points) => BudgetKind::Points,
            Ok(pb::BudgetKind::Coupons) => BudgetKind::Coupons,
            Ok(pb::BudgetKind::Money) => BudgetKind::Money,
            _ => {
                violations.add("campaign.budget.kind", "must be POINTS, COUPONS or MONEY");
                BudgetKind::Points
            }
        };
        if budget.limit <= 0 {
            violations.add("campaign.budget.limit", "must be positive");
        }
        (kind, budget.limit)
    });
    if definition.per_member_limit > 0 && !matches!(kind, Kind::MemberDay(_)) {
        violations.add("campaign.per_member_limit", "is for MEMBER_DAY campaigns");
    }
    let audience = audience(definition, &kind, violations);
    Campaign {
        campaign_id: definition.campaign_id.clone(),
        kind,
        starts_at,
        ends_at,
        offset,
        channels: definition.channels.clone(),
        brand_ids: definition.brand_ids.clone(),
        store_ids: definition.store_ids.clone(),
        points: reward.points,
        program_id: reward.program_id,
        coupon_template_id: reward.coupon_template_id,
        bonus,
        currency,
        budget,
        per_member_limit: definition.per_member_limit.max(1),
        audience,
    }
}

/// The audience a campaign names: required for a drop, refused for an entry gift (decided as the
/// member joins, before analytics knows them). Analytics checks the rule itself.
fn audience(definition: &pb::Campaign, kind: &Kind, violations: &mut Violations) -> Option<Audience> {
    use quanyu_proto::analytics::v1::audience_selector::Audience as Selected;
    let selected = definition
        .audience
        .as_ref()
        .and_then(|selector| selector.audience.clone());
    let audience = match selected {
        Some(Selected::Rule(rule)) => {
            violations.text("campaign.audience.rule", &rule, MAX_RULE_CHARS, true);
            Some(Audience::Rule(rule))
        }
        Some(Selected::Name(name)) => {
            violations.text("campaign.audience.name", &name, 64, true);
            Some(Audience::Saved(name))
        }
        None => None,
    };
    match (kind, &audience) {
        (Kind::CouponDrop, None) => violations.add("campaign.audience", "is required for a COUPON_DROP"),
        (Kind::EntryGift, Some(_)) => violations.add(
            "campaign.audience",
            "cannot limit an ENTRY_GIFT: members join before analytics knows them; limit its channels, brands or stores",
        ),
        _ => {}
    }
    audience
}

fn kind(definition: &pb::Campaign, violations: &mut Violations) -> Kind {
    let kind = pb::CampaignKind::try_from(definition.kind).unwrap_or_default();
    if definition.member_day.is_some() && kind != pb::CampaignKind::MemberDay {
        violations.add("campaign.member_day", "is for MEMBER_DAY campaigns");
    }
    if !definition.tier.is_empty() && kind != pb::CampaignKind::TierGift {
        violations.add("campaign.tier", "is for TIER_GIFT campaigns");
    }
    if definition.referral.is_some() && kind != pb::CampaignKind::Referral {
        violations.add("campaign.referral", "is for REFERRAL campaigns");
    }
    if definition.assist.is_some() && kind != pb::CampaignKind::Assist {
        violations.add("campaign.assist", "is for ASSIST campaigns");
    }
    match kind {
        pb::CampaignKind::EntryGift => Kind::EntryGift,
        pb::CampaignKind::PurchaseBonus => Kind::PurchaseBonus,
        pb::CampaignKind::MemberDay => {
            use pb::member_day::Day;
            let day = definition.member_day.and_then(|member_day| member_day.day);
            Kind::MemberDay(match day {
                Some(Day::Weekday(weekday)) if (1..=7).contains(&weekday) => MemberDay::Weekday(weekday),
                Some(Day::DayOfMonth(day)) if (1..=28).contains(&day) => MemberDay::DayOfMonth(day),
                _ => {
                    violations.add("campaign.member_day", "name a weekday 1-7 or a day of the month 1-28");
                    MemberDay::Weekday(1)
                }
            })
        }
        pb::CampaignKind::BirthdayGift => Kind::BirthdayGift,
        pb::CampaignKind::CouponDrop => Kind::CouponDrop,
        pb::CampaignKind::Referral => Kind::Referral(super::referral::check(definition.referral.as_ref(), violations)),
        pb::CampaignKind::Assist => Kind::Assist(super::assist::check(definition.assist.as_ref(), violations)),
        pb::CampaignKind::TierGift => {
            violations.text("campaign.tier", &definition.tier, 64, true);
            Kind::TierGift(definition.tier.clone())
        }
        pb::CampaignKind::Unspecified => {
            violations.add(
                "campaign.kind",
                "must be ENTRY_GIFT, PURCHASE_BONUS, MEMBER_DAY, TIER_GIFT, BIRTHDAY_GIFT, COUPON_DROP, REFERRAL or ASSIST",
            );
            Kind::EntryGift
        }
    }
}

/// Checks what a reward gives, its fields named under `field`; whether it gives anything.
pub(super) fn check_reward(field: &str, reward: &pb::Reward, violations: &mut Violations) -> bool {
    if !(0..=MAX_REWARD_POINTS).contains(&reward.points) {
        violations.add(format!("{field}.points"), format!("must be 0 to {MAX_REWARD_POINTS}"));
    }
    violations.text(format!("{field}.program_id"), &reward.program_id, 64, false);
    if !reward.coupon_template_id.is_empty() && !is_slug(&reward.coupon_template_id) {
        violations.add(format!("{field}.coupon_template_id"), "must be 1-64 of [a-z0-9_.-]");
    }
    reward.points != 0 || !reward.coupon_template_id.is_empty()
}

/// The purchase bonus and the currency purchases are counted in.
fn bonus(definition: &pb::Campaign, kind: &Kind, violations: &mut Violations) -> (Option<Bonus>, String) {
    let by_purchase = matches!(kind, Kind::PurchaseBonus | Kind::MemberDay(_));
    let Some(bonus) = &definition.bonus else {
        return (None, "CNY".into());
    };
    if !by_purchase {
        violations.add("campaign.bonus", "is for PURCHASE_BONUS and MEMBER_DAY campaigns");
    }
    let unit_currency = bonus.unit.as_ref().map_or("", |unit| unit.currency.as_str());
    let currency = if unit_currency.is_empty() { "CNY" } else { unit_currency }.to_owned();
    let mut minor = |field: &str, money: Option<&Money>| {
        amount_of(violations, format!("campaign.bonus.{field}"), &currency, (money, false))
    };
    let unit_minor = minor("unit", bonus.unit.as_ref());
    let min_spend_minor = minor("min_spend", bonus.min_spend.as_ref());
    if unit_minor == 0 && bonus.points_per_unit != 0 {
        violations.add("campaign.bonus.unit", "must be positive");
    }
    if !(0..=MAX_REWARD_POINTS).contains(&bonus.points_per_unit) {
        violations.add(
            "campaign.bonus.points_per_unit",
            format!("must be 0 to {MAX_REWARD_POINTS}"),
        );
    }
    let bonus = Bonus {
        points_per_unit: bonus.points_per_unit,
        unit_minor,
        min_spend_minor,
    };
    (Some(bonus), currency)
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Duration};
    use proptest::prelude::*;

    use super::*;

    fn at(text: &str) -> Timestamp {
        DateTime::parse_from_rfc3339(text).unwrap().to_utc()
    }

    fn member_day() -> pb::Campaign {
        pb::Campaign {
            campaign_id: "day".into(),
            name: "Member day".into(),
            kind: pb::CampaignKind::MemberDay.into(),
            starts_at: Some(quanyu_runtime::clock::to_proto(at("2026-12-01T00:00:00+08:00"))),
            ends_at: Some(quanyu_runtime::clock::to_proto(at("2027-01-01T00:00:00+08:00"))),
            member_day: Some(pb::MemberDay {
                day: Some(pb::member_day::Day::DayOfMonth(8)),
            }),
            bonus: Some(pb::PurchaseBonus {
                points_per_unit: 2,
                unit: Some(Money {
                    amount_minor: 100,
                    currency: "CNY".into(),
                }),
                min_spend: Some(Money {
                    amount_minor: 10_000,
                    currency: "CNY".into(),
                }),
            }),
            ..Default::default()
        }
    }

    #[test]
    fn member_days_are_read_in_the_campaigns_time_zone() {
        let campaign = check(&member_day()).unwrap();
        assert_eq!(
            campaign.member_day_of(at("2026-12-07T16:30:00Z")).as_deref(),
            Some("2026-12-08")
        );
        assert_eq!(
            campaign.member_day_of(at("2026-12-08T16:30:00Z")),
            None,
            "the 9th in +08:00"
        );
        assert_eq!(campaign.purchase_points(12_345, "CNY"), Some(246));
        assert_eq!(campaign.purchase_points(9_999, "CNY"), None, "below the minimum spend");
        assert_eq!(campaign.purchase_points(12_345, "USD"), None);
    }

    #[test]
    fn leap_day_birthdays_are_celebrated_on_the_28th_in_other_years() {
        let gift = Campaign {
            kind: Kind::BirthdayGift,
            ..check(&member_day()).unwrap()
        };
        assert_eq!(
            gift.birthdays_at(at("2027-02-28T10:00:00+08:00")),
            (vec!["02-28".into(), "02-29".into()], 2027)
        );
        assert_eq!(gift.birthdays_at(at("2028-02-28T10:00:00+08:00")).0, ["02-28"]);
        assert_eq!(
            gift.birthdays_at(at("2026-12-31T17:00:00Z")),
            (vec!["01-01".into()], 2027),
            "+08:00"
        );
    }

    #[test]
    fn a_campaign_covers_its_window_and_places() {
        let campaign = Campaign {
            store_ids: vec!["sh-01".into()],
            ..check(&member_day()).unwrap()
        };
        let store = |store_id| Place {
            channel: 5,
            brand_id: "",
            store_id,
        };
        assert!(campaign.covers(at("2026-12-08T10:00:00Z"), &store("sh-01")));
        assert!(!campaign.covers(at("2026-12-08T10:00:00Z"), &store("bj-02")));
        assert!(
            !campaign.covers(at("2026-11-30T15:59:59Z"), &store("sh-01")),
            "before the window"
        );
    }

    #[test]
    fn bad_campaigns_name_every_field_at_fault() {
        let bad = pb::Campaign {
            campaign_id: "No".into(),
            kind: pb::CampaignKind::EntryGift.into(),
            tier: "gold".into(),
            starts_at: member_day().ends_at,
            ends_at: member_day().starts_at,
            utc_offset: "Asia/Shanghai".into(),
            budget: Some(pb::Budget { kind: 0, limit: 0 }),
            per_member_limit: 2,
            ..Default::default()
        };
        let fields: Vec<String> = check(&bad).unwrap_err().into_iter().map(|v| v.field).collect();
        for field in [
            "campaign.campaign_id",
            "campaign.name",
            "campaign.tier",
            "campaign.ends_at",
            "campaign.utc_offset",
            "campaign.reward",
            "campaign.budget.kind",
            "campaign.budget.limit",
            "campaign.per_member_limit",
        ] {
            assert!(fields.iter().any(|f| f == field), "{field} in {fields:?}");
        }
    }

    #[test]
    fn a_drop_needs_an_audience_and_an_entry_gift_cannot_have_one() {
        use quanyu_proto::analytics::v1::{AudienceSelector, audience_selector};
        let gift = |kind: pb::CampaignKind, audience: Option<audience_selector::Audience>| pb::Campaign {
            kind: kind.into(),
            audience: audience.map(|audience| AudienceSelector {
                audience: Some(audience),
            }),
            reward: Some(pb::Reward {
                coupon_template_id: "ten-off".into(),
                ..Default::default()
            }),
            bonus: None,
            member_day: None,
            ..member_day()
        };
        let faults = |campaign: &pb::Campaign| -> Vec<String> {
            check(campaign)
                .err()
                .unwrap_or_default()
                .into_iter()
                .map(|v| v.field)
                .collect()
        };
        let rule = || Some(audience_selector::Audience::Rule("tier = \"gold\"".into()));
        assert_eq!(faults(&gift(pb::CampaignKind::CouponDrop, None)), ["campaign.audience"]);
        assert_eq!(
            faults(&gift(pb::CampaignKind::EntryGift, rule())),
            ["campaign.audience"]
        );
        let empty_name = Some(audience_selector::Audience::Name(String::new()));
        assert_eq!(
            faults(&gift(pb::CampaignKind::CouponDrop, empty_name)),
            ["campaign.audience.name"]
        );
        let drop = check(&gift(pb::CampaignKind::CouponDrop, rule())).unwrap();
        assert_eq!(drop.audience, Some(Audience::Rule("tier = \"gold\"".into())));
        assert!(faults(&gift(pb::CampaignKind::BirthdayGift, rule())).is_empty());
    }

    #[test]
    fn moves_follow_the_state_machine() {
        use pb::CampaignState as S;
        let (start, end) = (at("2026-12-01T00:00:00Z"), at("2026-12-31T00:00:00Z"));
        assert_eq!(
            state_at(Stored::Scheduled, start, end, start - Duration::seconds(1)),
            S::Scheduled
        );
        assert_eq!(state_at(Stored::Scheduled, start, end, start), S::Active);
        assert_eq!(state_at(Stored::Paused, start, end, end), S::Ended);
        assert_eq!(change(Stored::Draft, S::Draft, S::Scheduled), Some(Stored::Scheduled));
        assert_eq!(change(Stored::Scheduled, S::Active, S::Paused), Some(Stored::Paused));
        assert_eq!(change(Stored::Paused, S::Paused, S::Active), Some(Stored::Scheduled));
        assert_eq!(change(Stored::Draft, S::Draft, S::Paused), None);
        assert_eq!(change(Stored::Ended, S::Ended, S::Scheduled), None);
        assert_eq!(change(Stored::Ended, S::Ended, S::Ended), Some(Stored::Ended));
    }

    proptest! {
        /// Whatever moves are asked, an ENDED campaign stays ENDED and no move reaches DRAFT.
        #[test]
        fn ended_is_final_and_draft_is_only_the_start(moves in proptest::collection::vec(1i32..=5, 0..12)) {
            let (start, end) = (at("2026-12-01T00:00:00Z"), at("2026-12-31T00:00:00Z"));
            let now = at("2026-12-10T00:00:00Z");
            let mut stored = Stored::Draft;
            let mut ended = false;
            for target in moves {
                let target = pb::CampaignState::try_from(target).unwrap();
                let current = state_at(stored, start, end, now);
                if let Some(next) = change(stored, current, target) {
                    stored = next;
                }
                prop_assert!(!ended || stored == Stored::Ended);
                prop_assert!(target == pb::CampaignState::Draft || stored != Stored::Draft || current == pb::CampaignState::Draft);
                ended = stored == Stored::Ended;
            }
        }
    }
}
