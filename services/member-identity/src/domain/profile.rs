//! A member's profile, the patches that change it, and the survivorship rule of a merge.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use quanyu_runtime::error::{FieldViolation, Violations, quote};

/// A member's gender, as they stated it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Gender {
    #[default]
    Unspecified,
    Female,
    Male,
    Other,
}

/// A member's stage of life, as they stated it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LifeStage {
    #[default]
    Unspecified,
    Student,
    Single,
    Couple,
    Expecting,
    Parent,
    Retired,
}

pub const MAX_ATTRIBUTES: usize = 100;
const MAX_NAME_CHARS: usize = 100;
const MAX_PLACE_CHARS: usize = 64;
const MAX_ATTRIBUTE_VALUE_CHARS: usize = 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    pub name: String,
    pub gender: Gender,
    pub birthday: Option<NaiveDate>,
    pub province: String,
    pub city: String,
    pub life_stage: LifeStage,
    pub attributes: BTreeMap<String, String>,
}

impl Default for Profile {
    fn default() -> Self {
        Self {
            name: String::new(),
            gender: Gender::Unspecified,
            birthday: None,
            province: String::new(),
            city: String::new(),
            life_stage: LifeStage::Unspecified,
            attributes: BTreeMap::new(),
        }
    }
}

/// The fields an update sets; `None` leaves a field alone, an empty value clears it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProfilePatch {
    pub name: Option<String>,
    pub gender: Option<Gender>,
    pub birthday: Option<Option<NaiveDate>>,
    pub province: Option<String>,
    pub city: Option<String>,
    pub life_stage: Option<LifeStage>,
    pub set_attributes: BTreeMap<String, String>,
    pub remove_attributes: Vec<String>,
}

impl Profile {
    /// Applies a patch; returns the names of the fields whose value changed.
    pub fn apply(&mut self, patch: ProfilePatch) -> Result<Vec<String>, Vec<FieldViolation>> {
        let mut next = self.clone();
        if let Some(name) = patch.name {
            next.name = name;
        }
        if let Some(gender) = patch.gender {
            next.gender = gender;
        }
        if let Some(birthday) = patch.birthday {
            next.birthday = birthday;
        }
        if let Some(province) = patch.province {
            next.province = province;
        }
        if let Some(city) = patch.city {
            next.city = city;
        }
        if let Some(life_stage) = patch.life_stage {
            next.life_stage = life_stage;
        }
        for key in &patch.remove_attributes {
            next.attributes.remove(key);
        }
        next.attributes.extend(patch.set_attributes);
        next.validate()?;
        let changed = self.changed_fields(&next);
        *self = next;
        Ok(changed)
    }

    /// Checks lengths and attribute keys; a patch is applied only to a profile that passes.
    pub fn validate(&self) -> Result<(), Vec<FieldViolation>> {
        let mut violations = Violations::default();
        let too_long = |value: &str, max: usize| value.chars().count() > max || value.chars().any(char::is_control);
        if too_long(&self.name, MAX_NAME_CHARS) {
            violations.add(
                "name",
                format!("must be at most {MAX_NAME_CHARS} characters without control characters"),
            );
        }
        for (field, value) in [("province", &self.province), ("city", &self.city)] {
            if too_long(value, MAX_PLACE_CHARS) {
                violations.add(field, format!("must be at most {MAX_PLACE_CHARS} characters"));
            }
        }
        if self.attributes.len() > MAX_ATTRIBUTES {
            violations.add("attributes", format!("at most {MAX_ATTRIBUTES} attributes per member"));
        }
        for (key, value) in &self.attributes {
            if let Err(violation) = check_attribute_key(key) {
                violations.push(violation);
            }
            if value.chars().count() > MAX_ATTRIBUTE_VALUE_CHARS {
                violations.add(
                    format!("attributes[{key}]"),
                    format!("must be at most {MAX_ATTRIBUTE_VALUE_CHARS} characters"),
                );
            }
        }
        violations.into_result()
    }

    fn changed_fields(&self, next: &Profile) -> Vec<String> {
        let mut changed = Vec::new();
        let mut note = |field: &str, differs: bool| {
            if differs {
                changed.push(field.to_owned());
            }
        };
        note("name", self.name != next.name);
        note("gender", self.gender != next.gender);
        note("birthday", self.birthday != next.birthday);
        note("province", self.province != next.province);
        note("city", self.city != next.city);
        note("life_stage", self.life_stage != next.life_stage);
        let keys: std::collections::BTreeSet<&String> = self.attributes.keys().chain(next.attributes.keys()).collect();
        for key in keys {
            if self.attributes.get(key) != next.attributes.get(key) {
                changed.push(format!("attributes.{key}"));
            }
        }
        changed
    }
}

/// Survivorship: each field keeps the survivor's value when set and takes the loser's otherwise;
/// attributes are the union, the survivor's value winning on the same key.
pub fn survive(survivor: &Profile, loser: &Profile) -> Profile {
    fn text(survivor: &str, loser: &str) -> String {
        if survivor.is_empty() { loser } else { survivor }.to_owned()
    }
    let mut attributes = loser.attributes.clone();
    attributes.extend(survivor.attributes.clone());
    Profile {
        name: text(&survivor.name, &loser.name),
        gender: if survivor.gender == Gender::Unspecified {
            loser.gender
        } else {
            survivor.gender
        },
        birthday: survivor.birthday.or(loser.birthday),
        province: text(&survivor.province, &loser.province),
        city: text(&survivor.city, &loser.city),
        life_stage: if survivor.life_stage == LifeStage::Unspecified {
            loser.life_stage
        } else {
            survivor.life_stage
        },
        attributes,
    }
}

/// Parses a birthday: an ISO date between 1900-01-01 and today; empty means unknown.
pub fn parse_birthday(value: &str, today: NaiveDate) -> Result<Option<NaiveDate>, FieldViolation> {
    if value.is_empty() {
        return Ok(None);
    }
    let earliest = NaiveDate::from_ymd_opt(1900, 1, 1).unwrap_or(NaiveDate::MIN);
    match NaiveDate::parse_from_str(value, "%Y-%m-%d") {
        Ok(date) if date >= earliest && date <= today => Ok(Some(date)),
        Ok(_) => Err(FieldViolation::new("birthday", "must be between 1900-01-01 and today")),
        Err(_) => Err(FieldViolation::new(
            "birthday",
            format!("{} is not a date in the form YYYY-MM-DD", quote(value)),
        )),
    }
}

/// Attribute and tag names: 1-64 characters of [a-z0-9_].
pub fn is_key(key: &str) -> bool {
    (1..=64).contains(&key.len())
        && key
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

fn check_attribute_key(key: &str) -> Result<(), FieldViolation> {
    if is_key(key) {
        Ok(())
    } else {
        Err(FieldViolation::new(
            format!("attributes[{key}]"),
            "attribute keys must be 1-64 characters of [a-z0-9_]",
        ))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use proptest::prelude::*;

    use super::*;

    pub fn arb_profile() -> impl Strategy<Value = Profile> {
        (
            proptest::option::of("[a-z]{1,5}"),
            0usize..4,
            proptest::option::of(0u32..20_000),
            proptest::option::of("[a-z]{1,5}"),
            proptest::collection::btree_map("[a-c]", "[x-z]", 0..3),
        )
            .prop_map(|(name, gender, birthday, city, attributes)| Profile {
                name: name.unwrap_or_default(),
                gender: [Gender::Unspecified, Gender::Female, Gender::Male, Gender::Other][gender],
                birthday: birthday.and_then(|days| {
                    NaiveDate::from_ymd_opt(1950, 1, 1)?.checked_add_days(chrono::Days::new(u64::from(days)))
                }),
                city: city.unwrap_or_default(),
                attributes,
                ..Profile::default()
            })
    }

    #[test]
    fn survivor_fields_win_and_gaps_are_filled() {
        let survivor = Profile {
            name: "Li Na".into(),
            attributes: BTreeMap::from([("size".into(), "M".into())]),
            ..Profile::default()
        };
        let loser = Profile {
            name: "Na Li".into(),
            city: "Shanghai".into(),
            gender: Gender::Female,
            attributes: BTreeMap::from([("size".into(), "L".into()), ("skin".into(), "dry".into())]),
            ..Profile::default()
        };
        let merged = survive(&survivor, &loser);
        assert_eq!(merged.name, "Li Na");
        assert_eq!(merged.city, "Shanghai");
        assert_eq!(merged.gender, Gender::Female);
        assert_eq!(merged.attributes["size"], "M");
        assert_eq!(merged.attributes["skin"], "dry");
    }

    #[test]
    fn patches_report_changed_fields_and_reject_bad_values() {
        let mut profile = Profile::default();
        let patch = ProfilePatch {
            name: Some("Li Na".into()),
            city: Some(String::new()),
            set_attributes: BTreeMap::from([("vip_note".into(), "likes tea".into())]),
            ..ProfilePatch::default()
        };
        assert_eq!(profile.apply(patch).unwrap(), vec!["name", "attributes.vip_note"]);
        let bad = ProfilePatch {
            name: Some("x".repeat(101)),
            set_attributes: BTreeMap::from([("Bad Key".into(), "v".into())]),
            ..ProfilePatch::default()
        };
        let violations = profile.apply(bad).unwrap_err();
        assert_eq!(violations.len(), 2);
        assert_eq!(profile.name, "Li Na", "a rejected patch changes nothing");
    }

    #[test]
    fn birthdays() {
        let today = NaiveDate::from_ymd_opt(2026, 11, 23).unwrap();
        assert_eq!(parse_birthday("", today), Ok(None));
        assert!(parse_birthday("1990-02-30", today).is_err());
        assert!(parse_birthday("2027-01-01", today).is_err());
        assert_eq!(
            parse_birthday("1990-02-28", today).unwrap().unwrap().to_string(),
            "1990-02-28"
        );
    }

    proptest! {
        #[test]
        fn survivorship_is_associative(a in arb_profile(), b in arb_profile(), c in arb_profile()) {
            prop_assert_eq!(survive(&survive(&a, &b), &c), survive(&a, &survive(&b, &c)));
        }

        #[test]
        fn survivorship_is_idempotent(a in arb_profile()) {
            prop_assert_eq!(survive(&a, &a), a);
        }
    }
}
