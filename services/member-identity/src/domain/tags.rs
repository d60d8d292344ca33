//! Tag definitions and the values a member's tag may take.

use quanyu_runtime::error::{FieldViolation, Violations, quote};

use super::profile::is_key;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TagKind {
    Label,
    Enum,
    Number,
}

impl TagKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Label => "label",
            Self::Enum => "enum",
            Self::Number => "number",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        [Self::Label, Self::Enum, Self::Number]
            .into_iter()
            .find(|kind| kind.as_str() == name)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagDefinition {
    pub name: String,
    pub kind: TagKind,
    pub allowed_values: Vec<String>,
    pub description: String,
}

const MAX_ENUM_VALUES: usize = 100;

impl TagDefinition {
    /// Checks a new definition.
    pub fn validate(&self) -> Result<(), Vec<FieldViolation>> {
        let mut violations = Violations::default();
        if !is_key(&self.name) {
            violations.add("name", "must be 1-64 characters of [a-z0-9_]");
        }
        match self.kind {
            TagKind::Enum => {
                let mut distinct = self.allowed_values.clone();
                distinct.sort();
                distinct.dedup();
                if self.allowed_values.is_empty() || self.allowed_values.len() > MAX_ENUM_VALUES {
                    violations.add(
                        "allowed_values",
                        format!("an enum tag needs 1-{MAX_ENUM_VALUES} values"),
                    );
                } else if distinct.len() != self.allowed_values.len() {
                    violations.add("allowed_values", "values must be distinct");
                }
                if let Some(bad) = self
                    .allowed_values
                    .iter()
                    .find(|v| v.is_empty() || v.chars().count() > 64)
                {
                    violations.add(
                        "allowed_values",
                        format!("{}: values must be 1-64 characters", quote(bad)),
                    );
                }
            }
            TagKind::Label | TagKind::Number if !self.allowed_values.is_empty() => {
                violations.add("allowed_values", "only enum tags take allowed values");
            }
            _ => {}
        }
        if self.description.chars().count() > 500 {
            violations.add("description", "must be at most 500 characters");
        }
        violations.into_result()
    }

    /// Returns the stored form of a value for this tag, or why it does not fit.
    pub fn check_value(&self, value: &str) -> Result<String, String> {
        match self.kind {
            TagKind::Label if value.is_empty() => Ok(String::new()),
            TagKind::Label => Err(format!("tag {:?} is a label and takes no value", self.name)),
            TagKind::Enum if self.allowed_values.iter().any(|allowed| allowed == value) => Ok(value.to_owned()),
            TagKind::Enum => Err(format!(
                "{} is not a value of tag {:?}; allowed: {}",
                quote(value),
                self.name,
                self.allowed_values.join(", ")
            )),
            TagKind::Number => match value.trim().parse::<f64>() {
                Ok(number) if number.is_finite() => Ok(number.to_string()),
                _ => Err(format!(
                    "tag {:?} takes a decimal number, got {}",
                    self.name,
                    quote(value)
                )),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(kind: TagKind, values: &[&str]) -> TagDefinition {
        TagDefinition {
            name: "skin_type".into(),
            kind,
            allowed_values: values.iter().map(|v| (*v).to_owned()).collect(),
            description: String::new(),
        }
    }

    #[test]
    fn definitions_and_values() {
        assert!(tag(TagKind::Enum, &["dry", "oily"]).validate().is_ok());
        assert!(tag(TagKind::Enum, &[]).validate().is_err());
        assert!(tag(TagKind::Enum, &["dry", "dry"]).validate().is_err());
        assert!(tag(TagKind::Label, &["x"]).validate().is_err());
        assert!(
            TagDefinition {
                name: "Skin".into(),
                ..tag(TagKind::Label, &[])
            }
            .validate()
            .is_err()
        );

        assert_eq!(tag(TagKind::Label, &[]).check_value(""), Ok(String::new()));
        assert!(tag(TagKind::Label, &[]).check_value("yes").is_err());
        assert_eq!(tag(TagKind::Enum, &["dry"]).check_value("dry"), Ok("dry".into()));
        assert!(tag(TagKind::Enum, &["dry"]).check_value("wet").is_err());
        assert_eq!(tag(TagKind::Number, &[]).check_value(" 42.50 "), Ok("42.5".into()));
        assert!(tag(TagKind::Number, &[]).check_value("NaN").is_err());
    }
}
