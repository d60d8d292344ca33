//! Who survives a merge, and how two members' tags and consents become one member's.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use quanyu_runtime::error::FieldViolation;

/// What the survivor choice needs to know of a member.
#[derive(Debug, Clone, Copy)]
pub struct Candidate<'a> {
    pub id: &'a str,
    pub enrolled_at: DateTime<Utc>,
}

/// Returns `(survivor, loser)`: the explicit survivor when given (it must be one of the two),
/// else the member enrolled first, the smaller id on a tie.
pub fn choose_survivor<'a>(
    a: Candidate<'a>,
    b: Candidate<'a>,
    explicit: Option<&str>,
) -> Result<(&'a str, &'a str), FieldViolation> {
    match explicit {
        Some(id) if id == a.id => Ok((a.id, b.id)),
        Some(id) if id == b.id => Ok((b.id, a.id)),
        Some(_) => Err(FieldViolation::new(
            "survivor_id",
            "must be one of the two members being merged (or empty for the earlier enrolled)",
        )),
        None if (a.enrolled_at, a.id) <= (b.enrolled_at, b.id) => Ok((a.id, b.id)),
        None => Ok((b.id, a.id)),
    }
}

/// How, where and when a member enrolled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enrolment {
    pub at: DateTime<Utc>,
    pub channel: String,
    pub brand_id: String,
    pub store_id: String,
    pub guide_id: String,
    pub referral_code: String,
}

/// The enrolment a merge keeps: the earlier of the two, since the person has been a member from
/// then (the survivor's on a tie).
pub fn surviving_enrolment(survivor: Enrolment, loser: Enrolment) -> Enrolment {
    if loser.at < survivor.at { loser } else { survivor }
}

/// A consent decision for one contact channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentDecision {
    pub channel: String,
    pub granted: bool,
    pub decided_at: DateTime<Utc>,
    pub source: String,
}

/// True when `incoming` should replace `stored`: it was decided later. A replay of the same
/// moment keeps what is stored, so a late or repeated delivery never overturns a newer choice.
pub fn supersedes(incoming: &ConsentDecision, stored: Option<&ConsentDecision>) -> bool {
    stored.is_none_or(|stored| incoming.decided_at > stored.decided_at)
}

/// Per channel, the decision made last; the survivor's on a tie.
pub fn merge_consents(survivor: Vec<ConsentDecision>, loser: Vec<ConsentDecision>) -> Vec<ConsentDecision> {
    let mut by_channel: BTreeMap<String, ConsentDecision> = BTreeMap::new();
    for decision in survivor.into_iter().chain(loser) {
        if supersedes(&decision, by_channel.get(&decision.channel)) {
            by_channel.insert(decision.channel.clone(), decision);
        }
    }
    by_channel.into_values().collect()
}

/// A tag on a member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagAssignment {
    pub name: String,
    pub value: String,
    pub tagged_at: DateTime<Utc>,
}

/// The union of two members' tags, the survivor's value winning on the same tag.
pub fn merge_tags(survivor: Vec<TagAssignment>, loser: Vec<TagAssignment>) -> Vec<TagAssignment> {
    let mut by_name: BTreeMap<String, TagAssignment> = BTreeMap::new();
    for tag in loser.into_iter().chain(survivor) {
        by_name.insert(tag.name.clone(), tag);
    }
    by_name.into_values().collect()
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn the_earlier_enrolment_survives_a_merge() {
        let enrolment = |day: u32, channel: &str| Enrolment {
            at: chrono::TimeZone::with_ymd_and_hms(&Utc, 2026, 1, day, 0, 0, 0).unwrap(),
            channel: channel.into(),
            brand_id: String::new(),
            store_id: "s1".into(),
            guide_id: String::new(),
            referral_code: String::new(),
        };
        let kept = surviving_enrolment(enrolment(5, "CHANNEL_POS"), enrolment(2, "CHANNEL_TMALL"));
        assert_eq!(kept, enrolment(2, "CHANNEL_TMALL"), "the loser enrolled first");
        let kept = surviving_enrolment(enrolment(2, "CHANNEL_POS"), enrolment(2, "CHANNEL_TMALL"));
        assert_eq!(kept.channel, "CHANNEL_POS", "the survivor's on a tie");
    }

    fn at(seconds: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_700_000_000 + seconds, 0).unwrap()
    }

    fn consent(channel: &str, granted: bool, seconds: i64, source: &str) -> ConsentDecision {
        ConsentDecision {
            channel: channel.into(),
            granted,
            decided_at: at(seconds),
            source: source.into(),
        }
    }

    #[test]
    fn survivor_is_explicit_or_the_earlier_enrolled() {
        let old = Candidate {
            id: "b",
            enrolled_at: at(0),
        };
        let new = Candidate {
            id: "a",
            enrolled_at: at(10),
        };
        assert_eq!(choose_survivor(new, old, None).unwrap(), ("b", "a"));
        assert_eq!(choose_survivor(old, new, None).unwrap(), ("b", "a"));
        assert_eq!(choose_survivor(old, new, Some("a")).unwrap(), ("a", "b"));
        assert_eq!(choose_survivor(old, new, Some("c")).unwrap_err().field, "survivor_id");
        let twin = Candidate {
            id: "a",
            enrolled_at: at(0),
        };
        assert_eq!(
            choose_survivor(old, twin, None).unwrap(),
            ("a", "b"),
            "ties go to the smaller id"
        );
    }

    #[test]
    fn latest_consent_wins() {
        let merged = merge_consents(
            vec![consent("sms", true, 5, "s"), consent("email", false, 1, "s")],
            vec![
                consent("sms", false, 9, "l"),
                consent("email", true, 1, "l"),
                consent("call", true, 3, "l"),
            ],
        );
        let summary: Vec<(&str, bool, &str)> = merged
            .iter()
            .map(|c| (c.channel.as_str(), c.granted, c.source.as_str()))
            .collect();
        assert_eq!(
            summary,
            vec![("call", true, "l"), ("email", false, "s"), ("sms", false, "l")]
        );
        assert!(!supersedes(
            &consent("sms", true, 5, "x"),
            Some(&consent("sms", false, 5, "y"))
        ));
    }

    #[test]
    fn survivor_tag_values_win() {
        let tag = |name: &str, value: &str| TagAssignment {
            name: name.into(),
            value: value.into(),
            tagged_at: at(0),
        };
        let merged = merge_tags(vec![tag("skin", "dry")], vec![tag("skin", "oily"), tag("koc", "")]);
        assert_eq!(merged, vec![tag("koc", ""), tag("skin", "dry")]);
    }

    fn arb_consents() -> impl Strategy<Value = Vec<ConsentDecision>> {
        proptest::collection::vec(
            (
                proptest::sample::select(vec!["sms", "email"]),
                any::<bool>(),
                0i64..4,
                "[a-c]",
            )
                .prop_map(|(channel, granted, seconds, source)| consent(channel, granted, seconds, &source)),
            0..4,
        )
        .prop_map(|decisions| merge_consents(decisions, Vec::new()))
    }

    proptest! {
        #[test]
        fn consent_merge_is_associative(a in arb_consents(), b in arb_consents(), c in arb_consents()) {
            let left = merge_consents(merge_consents(a.clone(), b.clone()), c.clone());
            let right = merge_consents(a, merge_consents(b, c));
            prop_assert_eq!(left, right);
        }
    }
}
