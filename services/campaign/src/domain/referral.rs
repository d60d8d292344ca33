//! Referral ladders (任务宝): rungs paid as an inviter's qualified invitees reach their counts,
//! who qualifies and when a refund takes it back.

use std::ops::Range;

use chrono::Duration;
use quanyu_proto::campaign::v1 as pb;
use quanyu_runtime::error::Violations;
use sha2::{Digest, Sha256};

use super::campaign::check_reward;
use super::template::Timestamp;

/// The most rungs a ladder may have.
const MAX_RUNGS: usize = 10;
/// The days to qualify in when the campaign names none.
const DEFAULT_QUALIFY_DAYS: u32 = 30;
/// How long before the enrolment a purchase still qualifies: a member often joins at the till
/// as they pay, and a till's clock is not the server's.
const JOINED_AS_THEY_PAID_MINUTES: i64 = 60;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rung {
    pub invitees: u32,
    pub reward: pb::Reward,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ladder {
    pub rungs: Vec<Rung>,
    pub qualify_within_days: u32,
    pub return_window_days: u32,
    pub claw_back: bool,
    /// 0 for no limit.
    pub max_invitees: u32,
    /// Attributions to one inviter within an hour past which they are held; 0 for no limit.
    pub max_per_hour: u32,
}

impl Ladder {
    /// The rungs to pay now that `qualified` invitees count and the first `paid` are paid.
    pub fn rungs_reached(&self, paid: usize, qualified: i64) -> Range<usize> {
        let reached = self
            .rungs
            .iter()
            .take_while(|rung| i64::from(rung.invitees) <= qualified)
            .count();
        paid..reached.max(paid)
    }

    /// The paid rungs a refund takes back now that `qualified` invitees count: those no longer
    /// reached, when the ladder claws back; none when it keeps what it paid.
    pub fn rungs_lost(&self, paid: usize, qualified: i64) -> Range<usize> {
        if !self.claw_back {
            return paid..paid;
        }
        let kept = self
            .rungs
            .iter()
            .take(paid)
            .take_while(|rung| i64::from(rung.invitees) <= qualified)
            .count();
        kept..paid
    }

    /// Whether a purchase at `purchased_at` qualifies an invitee who enrolled at `enrolled_at`:
    /// within the days to qualify after, or made as they joined.
    pub fn qualifies(&self, enrolled_at: Timestamp, purchased_at: Timestamp) -> bool {
        let days = Duration::days(i64::from(self.qualify_within_days));
        let joining = Duration::minutes(JOINED_AS_THEY_PAID_MINUTES);
        purchased_at >= enrolled_at - joining && purchased_at <= enrolled_at + days
    }

    /// Whether a refund at `refunded_at` of the purchase that qualified at `qualified_at` takes
    /// the qualification back.
    pub fn refund_counts(&self, qualified_at: Timestamp, refunded_at: Timestamp) -> bool {
        refunded_at <= qualified_at + Duration::days(i64::from(self.return_window_days))
    }

    /// Whether an attribution to an inviter who had `last_hour` in the hour before is held for
    /// review.
    pub fn holds(&self, last_hour: i64) -> bool {
        self.max_per_hour != 0 && last_hour >= i64::from(self.max_per_hour)
    }

    /// Whether an inviter with `invitees` may have one more.
    pub fn has_room(&self, invitees: i64) -> bool {
        self.max_invitees == 0 || invitees < i64::from(self.max_invitees)
    }
}

/// A keyed hash of one of a member's identities (`kind`, `namespace`, `value`): what campaign
/// keeps to know a person again after an erasure or a merge, never the identity. The key keeps
/// phone numbers, few enough to try every one, from being read back from their hashes.
pub fn identity_key(key: &str, tenant_id: &str, (kind, namespace, value): (i32, &str, &str)) -> String {
    let digest = Sha256::digest(format!("{key}\0{tenant_id}\0{kind}\0{namespace}\0{value}"));
    hex::encode(&digest[..16])
}

/// Checks a REFERRAL campaign's rules.
pub fn check(rules: Option<&pb::ReferralRules>, violations: &mut Violations) -> Ladder {
    let Some(rules) = rules else {
        violations.add("campaign.referral", "is required for a REFERRAL campaign");
        return Ladder {
            rungs: Vec::new(),
            qualify_within_days: DEFAULT_QUALIFY_DAYS,
            return_window_days: 0,
            claw_back: false,
            max_invitees: 0,
            max_per_hour: 0,
        };
    };
    if rules.rungs.is_empty() || rules.rungs.len() > MAX_RUNGS {
        violations.add("campaign.referral.rungs", format!("must list 1-{MAX_RUNGS} rungs"));
    }
    let mut below = 0;
    for (index, rung) in rules.rungs.iter().enumerate() {
        let field = format!("campaign.referral.rungs[{index}]");
        if rung.invitees <= below {
            violations.add(
                format!("{field}.invitees"),
                "must be more than the rung before's (and at least 1)",
            );
        }
        below = rung.invitees;
        let reward = rung.reward.clone().unwrap_or_default();
        if !check_reward(&format!("{field}.reward"), &reward, violations) {
            violations.add(format!("{field}.reward"), "must give points or a coupon");
        }
    }
    if rules.qualify_within_days > 365 {
        violations.add("campaign.referral.qualify_within_days", "must be 1-365 (0 for 30)");
    }
    if rules.return_window_days > 365 {
        violations.add("campaign.referral.return_window_days", "must be 0-365");
    }
    Ladder {
        rungs: rules
            .rungs
            .iter()
            .map(|rung| Rung {
                invitees: rung.invitees,
                reward: rung.reward.clone().unwrap_or_default(),
            })
            .collect(),
        qualify_within_days: if rules.qualify_within_days == 0 {
            DEFAULT_QUALIFY_DAYS
        } else {
            rules.qualify_within_days
        },
        return_window_days: rules.return_window_days,
        claw_back: rules.claw_back,
        max_invitees: rules.max_invitees,
        max_per_hour: rules.max_per_hour,
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn ladder(counts: &[u32], claw_back: bool) -> Ladder {
        Ladder {
            rungs: counts
                .iter()
                .map(|&invitees| Rung {
                    invitees,
                    reward: pb::Reward {
                        points: 100,
                        ..Default::default()
                    },
                })
                .collect(),
            qualify_within_days: 7,
            return_window_days: 7,
            claw_back,
            max_invitees: 0,
            max_per_hour: 0,
        }
    }

    #[test]
    fn bad_ladders_name_their_fields() {
        let mut violations = Violations::default();
        let rules = pb::ReferralRules {
            rungs: vec![
                pb::Rung {
                    invitees: 2,
                    reward: None,
                },
                pb::Rung {
                    invitees: 2,
                    reward: Some(pb::Reward {
                        points: 10,
                        ..Default::default()
                    }),
                },
            ],
            qualify_within_days: 400,
            ..Default::default()
        };
        check(Some(&rules), &mut violations);
        let fields: Vec<String> = violations
            .into_result()
            .unwrap_err()
            .into_iter()
            .map(|violation| violation.field)
            .collect();
        assert_eq!(
            fields,
            [
                "campaign.referral.rungs[0].reward",
                "campaign.referral.rungs[1].invitees",
                "campaign.referral.qualify_within_days"
            ]
        );
    }

    #[test]
    fn identity_keys_depend_on_the_key_the_tenant_and_the_identity() {
        let phone = (1, "", "+8613800138000");
        let key = identity_key("k", "acme", phone);
        assert_eq!(key, identity_key("k", "acme", phone));
        assert_ne!(key, identity_key("other", "acme", phone));
        assert_ne!(key, identity_key("k", "globex", phone));
        assert_ne!(key, identity_key("k", "acme", (1, "", "+8613800138001")));
        assert!(!key.contains("138"), "the identity is not in its key");
    }

    #[test]
    fn a_purchase_qualifies_within_the_days_after_enrolling() {
        let enrolled = Timestamp::default();
        let ladder = ladder(&[1], false);
        assert!(ladder.qualifies(enrolled, enrolled + Duration::days(7)));
        assert!(!ladder.qualifies(enrolled, enrolled + Duration::days(7) + Duration::seconds(1)));
        assert!(
            ladder.qualifies(enrolled, enrolled - Duration::minutes(5)),
            "paid as they joined"
        );
        assert!(!ladder.qualifies(enrolled, enrolled - Duration::hours(2)));
    }

    proptest! {
        /// Whatever invitees qualify and are taken back, in any order: a clawing ladder has paid
        /// exactly the rungs the count reaches now, a keeping one the rungs the count ever reached.
        #[test]
        fn rungs_paid_follow_the_count(steps in proptest::collection::vec(any::<bool>(), 0..60), claw_back: bool) {
            let ladder = ladder(&[1, 3, 5, 10], claw_back);
            let (mut qualified, mut paid, mut highest) = (0i64, 0usize, 0i64);
            for qualifies in steps {
                if qualifies {
                    qualified += 1;
                    paid = ladder.rungs_reached(paid, qualified).end;
                } else if qualified > 0 {
                    qualified -= 1;
                    paid = ladder.rungs_lost(paid, qualified).start;
                }
                highest = highest.max(qualified);
                let reached = |count: i64| ladder.rungs.iter().filter(|rung| i64::from(rung.invitees) <= count).count();
                prop_assert_eq!(paid, if claw_back { reached(qualified) } else { reached(highest) });
            }
        }
    }
}
