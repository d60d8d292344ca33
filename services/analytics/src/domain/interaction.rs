//! An interaction as it counts: checked, keyed by the identity of its consumer, on a day and at a
//! place. Identities are kept as keys (a SHA-256), never as the values platforms sent.

use chrono::{DateTime, FixedOffset, Utc};
use md5::Md5;
use quanyu_proto::analytics::v1 as pb;
use quanyu_proto::common::v1::Channel;
use quanyu_proto::identity::v1::{Identity, IdentityKind};
use quanyu_runtime::clock::from_proto;
use quanyu_runtime::error::{FieldViolation, Violations};
use sha2::{Digest, Sha256};

use super::Place;
use super::window::day_of;

/// How far ahead of analytics' clock an interaction may be dated: a till's clock runs fast.
const CLOCK_SKEW: chrono::Duration = chrono::Duration::minutes(5);

/// An interaction that passed its checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedInteraction {
    pub identity_key: String,
    /// An exposure (Aware), else an engagement (Interested).
    pub exposure: bool,
    pub day: String,
    pub place: Place,
}

/// Checks an interaction; every field at fault is named. Its day is read in `offset`.
pub fn check(
    interaction: &pb::Interaction,
    now: DateTime<Utc>,
    offset: FixedOffset,
) -> Result<CheckedInteraction, Vec<FieldViolation>> {
    let mut violations = Violations::default();
    violations.text("source", &interaction.source, 64, true);
    violations.text("event_id", &interaction.event_id, 128, true);
    let identity_key = match &interaction.identity {
        None => {
            violations.add("identity", "is required");
            None
        }
        Some(identity) => violations.check(channel_identity(identity).map_err(|violation| violation.under("identity"))),
    };
    let exposure = match pb::InteractionKind::try_from(interaction.kind) {
        Ok(pb::InteractionKind::Unspecified) | Err(_) => {
            violations.add("kind", format!("{} is not a kind of interaction", interaction.kind));
            false
        }
        Ok(kind) => kind == pb::InteractionKind::Exposure,
    };
    match Channel::try_from(interaction.channel) {
        Ok(Channel::Unspecified) => violations.add("channel", "is required"),
        Err(_) => violations.add("channel", format!("{} is not a channel", interaction.channel)),
        Ok(_) => {}
    }
    violations.text("brand_id", &interaction.brand_id, 64, false);
    violations.text("store_id", &interaction.store_id, 64, false);
    let at = match interaction.occurred_at.as_ref().and_then(from_proto) {
        None => {
            violations.add("occurred_at", "is required");
            None
        }
        Some(at) if at > now + CLOCK_SKEW => {
            violations.add("occurred_at", "is in the future");
            None
        }
        Some(at) => Some(at),
    };
    violations.into_result()?;
    Ok(CheckedInteraction {
        identity_key: identity_key.unwrap_or_default(),
        exposure,
        day: at.map(|at| day_of(at, offset)).unwrap_or_default(),
        place: Place {
            brand_id: interaction.brand_id.clone(),
            channel: interaction.channel,
            store_id: interaction.store_id.clone(),
        },
    })
}

/// The key of an identity an interaction may be keyed by, normalised as member-identity
/// normalises it; phones and emails are refused (member-identity alone reads those).
fn channel_identity(identity: &Identity) -> Result<String, FieldViolation> {
    let kind = IdentityKind::try_from(identity.kind).unwrap_or(IdentityKind::Unspecified);
    let namespace = identity.namespace.trim();
    let value = identity.value.trim();
    match kind {
        IdentityKind::Unspecified => return Err(FieldViolation::new("kind", "is required")),
        IdentityKind::Phone | IdentityKind::Email => {
            return Err(FieldViolation::new(
                "kind",
                "must be a channel identity: send a phone's digest as PHONE_HASH, and resolve phones and emails through member-identity",
            ));
        }
        _ => {}
    }
    let namespace_required = matches!(kind, IdentityKind::WechatOpenid | IdentityKind::External);
    if namespace_required && namespace.is_empty() {
        return Err(FieldViolation::new("namespace", "is required for this kind"));
    }
    if !namespace_required && kind != IdentityKind::PosCard && !namespace.is_empty() {
        return Err(FieldViolation::new("namespace", "must be empty for this kind"));
    }
    if namespace.chars().count() > 64 {
        return Err(FieldViolation::new("namespace", "must be at most 64 characters"));
    }
    if value.is_empty() || value.chars().count() > 256 || value.chars().any(char::is_control) {
        return Err(FieldViolation::new(
            "value",
            "must be 1-256 characters without control characters",
        ));
    }
    if kind == IdentityKind::PhoneHash {
        let hash = value.to_ascii_lowercase();
        if !(matches!(hash.len(), 32 | 64) && hash.chars().all(|c| c.is_ascii_hexdigit())) {
            return Err(FieldViolation::new(
                "value",
                "must be the hex MD5 (32 digits) or SHA-256 (64 digits) of an E.164 phone number",
            ));
        }
        return Ok(identity_key(kind, namespace, &hash));
    }
    Ok(identity_key(kind, namespace, value))
}

/// The key an identity is kept by.
fn identity_key(kind: IdentityKind, namespace: &str, value: &str) -> String {
    let mut digest = Sha256::new();
    for part in [&(kind as i32).to_string(), namespace, value] {
        digest.update(part.as_bytes());
        digest.update([0]);
    }
    hex::encode(digest.finalize())
}

/// The keys interactions reach a member by once member-identity links `identity` (already
/// normalised) to them: the identity's own, and for a phone the digests platforms send of it.
pub fn linked_keys(identity: &Identity) -> Vec<String> {
    match IdentityKind::try_from(identity.kind) {
        Ok(IdentityKind::Phone) => {
            let e164 = identity.value.as_bytes();
            vec![
                identity_key(IdentityKind::PhoneHash, "", &hex::encode(Md5::digest(e164))),
                identity_key(IdentityKind::PhoneHash, "", &hex::encode(Sha256::digest(e164))),
            ]
        }
        Ok(IdentityKind::Email | IdentityKind::Unspecified) | Err(_) => Vec::new(),
        Ok(kind) => vec![identity_key(kind, &identity.namespace, &identity.value)],
    }
}

/// What the consumer of an identity no member holds is named by: `identity:<key>`.
const ANONYMOUS_PREFIX: &str = "identity:";

/// The consumer an identity no member holds stands for.
pub fn anonymous_consumer(identity_key: &str) -> String {
    format!("{ANONYMOUS_PREFIX}{identity_key}")
}

/// Whether a consumer is an identity's own rather than a member.
pub fn is_anonymous(consumer_id: &str) -> bool {
    consumer_id.starts_with(ANONYMOUS_PREFIX)
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone as _;

    use super::*;

    fn openid(value: &str) -> Identity {
        Identity {
            kind: IdentityKind::WechatOpenid.into(),
            value: value.into(),
            namespace: "wx-app".into(),
        }
    }

    fn interaction(identity: Identity) -> pb::Interaction {
        pb::Interaction {
            source: "wechat-ads".into(),
            event_id: "e-1".into(),
            identity: Some(identity),
            kind: pb::InteractionKind::Exposure.into(),
            channel: Channel::WechatMall.into(),
            brand_id: "acme".into(),
            store_id: String::new(),
            occurred_at: Some(prost_types::Timestamp {
                seconds: 1_764_547_200,
                nanos: 0,
            }),
        }
    }

    fn check_now(interaction: &pb::Interaction) -> Result<CheckedInteraction, Vec<String>> {
        let now = Utc.with_ymd_and_hms(2026, 12, 3, 0, 0, 0).unwrap();
        let offset = FixedOffset::east_opt(8 * 3600).unwrap();
        check(interaction, now, offset).map_err(|violations| violations.into_iter().map(|v| v.field).collect())
    }

    #[test]
    fn an_interaction_counts_on_its_day_for_the_key_of_its_identity() {
        let checked = check_now(&interaction(openid(" oAbc123 "))).unwrap();
        assert_eq!(checked.day, "2025-12-01");
        assert!(checked.exposure);
        assert_eq!(
            checked.identity_key,
            linked_keys(&openid("oAbc123"))[0],
            "trimmed as member-identity trims"
        );
        assert_ne!(
            checked.identity_key,
            check_now(&interaction(openid("oAbc124"))).unwrap().identity_key
        );
    }

    #[test]
    fn a_phone_hash_reaches_the_member_linked_with_the_phone() {
        let phone = Identity {
            kind: IdentityKind::Phone.into(),
            value: "+8613800138000".into(),
            namespace: String::new(),
        };
        let sha256 = hex::encode(Sha256::digest(b"+8613800138000")).to_uppercase();
        let hashed = Identity {
            kind: IdentityKind::PhoneHash.into(),
            value: sha256,
            namespace: String::new(),
        };
        let checked = check_now(&interaction(hashed)).unwrap();
        assert!(linked_keys(&phone).contains(&checked.identity_key));
    }

    #[test]
    fn every_field_at_fault_is_named() {
        let mut bad = interaction(Identity {
            kind: IdentityKind::Phone.into(),
            value: "13800138000".into(),
            namespace: String::new(),
        });
        bad.source.clear();
        bad.kind = 99;
        bad.channel = 0;
        bad.occurred_at = None;
        assert_eq!(
            check_now(&bad).unwrap_err(),
            ["source", "identity.kind", "kind", "channel", "occurred_at"]
        );
        let mut missing_namespace = openid("oAbc123");
        missing_namespace.namespace.clear();
        assert_eq!(
            check_now(&interaction(missing_namespace)).unwrap_err(),
            ["identity.namespace"]
        );
        let mut future = interaction(openid("oAbc123"));
        future.occurred_at = Some(prost_types::Timestamp {
            seconds: 1_900_000_000,
            nanos: 0,
        });
        assert_eq!(check_now(&future).unwrap_err(), ["occurred_at"]);
    }
}
