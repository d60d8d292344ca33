//! Assist tasks (助力): friends help a member's task, which completes at a number of assists
//! within hours of its start; one helper helps a limited number of tasks.

use chrono::Duration;
use quanyu_proto::campaign::v1 as pb;
use quanyu_runtime::error::Violations;

use super::template::Timestamp;

/// The hours a task may be helped in when the campaign names none.
const DEFAULT_WINDOW_HOURS: u32 = 24;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AssistRules {
    pub assists_needed: u32,
    pub window_hours: u32,
    /// 0 for no limit.
    pub max_tasks_per_helper: u32,
}

impl AssistRules {
    /// Until when a task started at `started_at` may be helped.
    pub fn expires_at(&self, started_at: Timestamp) -> Timestamp {
        started_at + Duration::hours(i64::from(self.window_hours))
    }

    /// Whether a helper who helped `helped` tasks may help one more.
    pub fn helper_has_room(&self, helped: i64) -> bool {
        self.max_tasks_per_helper == 0 || helped < i64::from(self.max_tasks_per_helper)
    }
}

/// Checks an ASSIST campaign's rules.
pub fn check(rules: Option<&pb::AssistRules>, violations: &mut Violations) -> AssistRules {
    let rules = rules.copied().unwrap_or_else(|| {
        violations.add("campaign.assist", "is required for an ASSIST campaign");
        pb::AssistRules::default()
    });
    if !(1..=1_000).contains(&rules.assists_needed) {
        violations.add("campaign.assist.assists_needed", "must be 1-1,000");
    }
    if rules.window_hours > 8_760 {
        violations.add("campaign.assist.window_hours", "must be 1-8,760 (0 for 24)");
    }
    AssistRules {
        assists_needed: rules.assists_needed,
        window_hours: if rules.window_hours == 0 {
            DEFAULT_WINDOW_HOURS
        } else {
            rules.window_hours
        },
        max_tasks_per_helper: rules.max_tasks_per_helper,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_default_their_window_and_name_bad_fields() {
        let mut violations = Violations::default();
        let rules = check(Some(&pb::AssistRules::default()), &mut violations);
        assert_eq!(rules.window_hours, 24);
        let fields: Vec<String> = violations
            .into_result()
            .unwrap_err()
            .into_iter()
            .map(|violation| violation.field)
            .collect();
        assert_eq!(fields, ["campaign.assist.assists_needed"]);
    }

    #[test]
    fn a_helper_helps_up_to_the_limit() {
        let rules = AssistRules {
            assists_needed: 3,
            window_hours: 24,
            max_tasks_per_helper: 2,
        };
        assert!(rules.helper_has_room(1));
        assert!(!rules.helper_has_room(2));
        let unlimited = AssistRules {
            max_tasks_per_helper: 0,
            ..rules
        };
        assert!(unlimited.helper_has_room(1_000_000));
        let start = Timestamp::default();
        assert_eq!(rules.expires_at(start), start + Duration::hours(24));
    }
}
