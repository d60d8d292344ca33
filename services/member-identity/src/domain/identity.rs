//! Identity kinds and their normalisation: the same person's phone, email or platform id always
//! becomes the same stored key.

use md5::Md5;
use phonenumber::{Mode, country};
use quanyu_runtime::error::{FieldViolation, quote};
use sha2::{Digest, Sha256};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IdentityKind {
    Phone,
    Email,
    WechatUnionid,
    WechatOpenid,
    TmallOuid,
    PhoneHash,
    JdPin,
    DouyinOpenid,
    PosCard,
    External,
}

impl IdentityKind {
    pub const ALL: [IdentityKind; 10] = [
        Self::Phone,
        Self::Email,
        Self::WechatUnionid,
        Self::WechatOpenid,
        Self::TmallOuid,
        Self::PhoneHash,
        Self::JdPin,
        Self::DouyinOpenid,
        Self::PosCard,
        Self::External,
    ];

    /// The stored name of the kind.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Phone => "phone",
            Self::Email => "email",
            Self::WechatUnionid => "wechat_unionid",
            Self::WechatOpenid => "wechat_openid",
            Self::TmallOuid => "tmall_ouid",
            Self::PhoneHash => "phone_hash",
            Self::JdPin => "jd_pin",
            Self::DouyinOpenid => "douyin_openid",
            Self::PosCard => "pos_card",
            Self::External => "external",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == name)
    }
}

/// A normalised identity: `(tenant, kind, namespace, value)` is unique.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Identity {
    pub kind: IdentityKind,
    pub namespace: String,
    pub value: String,
}

/// Normalises identities; phones without a country code are read in the default region.
#[derive(Debug, Clone)]
pub struct Normaliser {
    default_region: country::Id,
}

impl Normaliser {
    /// `region` is an ISO 3166-1 alpha-2 code such as `CN`.
    pub fn new(region: &str) -> Result<Self, String> {
        region
            .parse::<country::Id>()
            .map(|default_region| Self { default_region })
            .map_err(|_| format!("unknown phone region {region:?}; expected an ISO 3166-1 code such as CN"))
    }

    /// Validates and normalises one identity; the violation names `value` or `namespace`.
    pub fn normalise(&self, kind: IdentityKind, namespace: &str, value: &str) -> Result<Identity, FieldViolation> {
        let value = value.trim();
        let namespace = namespace.trim();
        if value.is_empty() {
            return Err(FieldViolation::new("value", "is required"));
        }
        let namespace_rule = match kind {
            IdentityKind::WechatOpenid => NamespaceRule::Required("the WeChat app id"),
            IdentityKind::External => NamespaceRule::Required("the name of the system the id belongs to"),
            IdentityKind::PosCard => NamespaceRule::Optional,
            _ => NamespaceRule::Forbidden,
        };
        let namespace = check_namespace(namespace, namespace_rule, kind)?;
        let value = match kind {
            IdentityKind::Phone => self.normalise_phone(value)?,
            IdentityKind::Email => normalise_email(value)?,
            IdentityKind::PhoneHash => normalise_phone_hash(value)?,
            IdentityKind::WechatUnionid | IdentityKind::WechatOpenid => {
                check_token(value, 16, 64, "letters, digits, '-' and '_'", |c| {
                    c.is_ascii_alphanumeric() || c == '-' || c == '_'
                })?
            }
            IdentityKind::TmallOuid | IdentityKind::DouyinOpenid => {
                check_token(value, 1, 128, "printable ASCII without spaces", |c| {
                    c.is_ascii_graphic()
                })?
            }
            IdentityKind::PosCard => check_token(value, 1, 64, "letters, digits and '-'", |c| {
                c.is_ascii_alphanumeric() || c == '-'
            })?,
            IdentityKind::JdPin | IdentityKind::External => check_text(value, 256)?,
        };
        Ok(Identity { kind, namespace, value })
    }

    fn normalise_phone(&self, value: &str) -> Result<String, FieldViolation> {
        let invalid = || {
            FieldViolation::new(
                "value",
                format!(
                    "{} is not a valid phone number (in international form +<country><number>, or a national number of {})",
                    quote(value),
                    self.default_region.as_ref()
                ),
            )
        };
        if self.default_region == country::Id::CN
            && let Some(e164) = mainland_mobile(value)
        {
            return Ok(e164);
        }
        // A number in international form is read without the default region: phonenumber 0.3.10
        // strips that region's national prefix from it (with US, `+8613800138000` became
        // `+86 3800138000`, and no Chinese mobile could be given).
        let region = (!value.starts_with('+')).then_some(self.default_region);
        let number = phonenumber::parse(region, value).map_err(|_| invalid())?;
        if !phonenumber::is_valid(&number) {
            return Err(invalid());
        }
        Ok(number.format().mode(Mode::E164).to_string())
    }
}

/// With CN the default region, the E.164 form of a mainland mobile number written as its 11
/// digits or after `+86`, ungrouped or grouped 3-4-4 by spaces or hyphens; `None` for anything
/// else, which phonenumber then reads. phonenumber's regexes cost 15-40 µs a number, most of a
/// 1,000-phone resolve, and a till's phone is nearly always one of these. The answer is
/// phonenumber's own (a property test holds the two together).
fn mainland_mobile(value: &str) -> Option<String> {
    // phonenumber cannot read `+86130-0000-0000` (it takes the digits up to the hyphen for the
    // country code): after a bare `+86`, the 11 digits must follow ungrouped.
    let (rest, may_group) = match value.strip_prefix("+86") {
        Some(rest) => match rest.strip_prefix([' ', '-']) {
            Some(rest) => (rest, true),
            None => (rest, false),
        },
        None => (value, true),
    };
    let mut digits = [0u8; 11];
    let mut count = 0;
    let mut after_separator = false;
    for byte in rest.bytes() {
        match byte {
            b'0'..=b'9' if count < digits.len() => {
                digits[count] = byte;
                count += 1;
                after_separator = false;
            }
            // Only where people group a mobile (138 0013 8000): phonenumber reads some other
            // places differently (`+861-5000000000` is no number to it).
            b' ' | b'-' if may_group && (count == 3 || count == 7) && !after_separator => after_separator = true,
            _ => return None,
        }
    }
    if count < digits.len() || after_separator || !is_mainland_mobile(&digits) {
        return None;
    }
    let mut e164 = String::with_capacity(14);
    e164.push_str("+86");
    e164.extend(digits.iter().map(|digit| char::from(*digit)));
    Some(e164)
}

/// libphonenumber's pattern of CN mobile numbers (metadata 9.0.33):
/// `1740[0-5]\d{6}|1(?:[38]\d|4[57]|[59][0-35-9]|6[25-7]|7[0-35-8])\d{8}`.
fn is_mainland_mobile(digits: &[u8; 11]) -> bool {
    match (digits[0], digits[1], digits[2]) {
        (b'1', b'3' | b'8', _) | (b'1', b'4', b'5' | b'7') | (b'1', b'6', b'2' | b'5'..=b'7') => true,
        (b'1', b'5' | b'9', third) => third != b'4',
        (b'1', b'7', b'4') => digits[3] == b'0' && digits[4] <= b'5',
        (b'1', b'7', third) => third != b'9',
        _ => false,
    }
}

enum NamespaceRule {
    Required(&'static str),
    Optional,
    Forbidden,
}

fn check_namespace(namespace: &str, rule: NamespaceRule, kind: IdentityKind) -> Result<String, FieldViolation> {
    let violation = |why: String| FieldViolation::new("namespace", why);
    match rule {
        NamespaceRule::Required(what) if namespace.is_empty() => {
            return Err(violation(format!("is required for {}: {what}", kind.as_str())));
        }
        NamespaceRule::Forbidden if !namespace.is_empty() => {
            return Err(violation(format!("must be empty for {}", kind.as_str())));
        }
        _ => {}
    }
    let well_formed = namespace.len() <= 64
        && namespace
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if well_formed {
        Ok(namespace.to_owned())
    } else {
        Err(violation("must be at most 64 letters, digits, '-', '_' or '.'".into()))
    }
}

fn normalise_email(value: &str) -> Result<String, FieldViolation> {
    let email = value.to_lowercase();
    let well_formed = email.len() <= 254
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && !domain.contains('@')
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
        });
    if well_formed {
        Ok(email)
    } else {
        Err(FieldViolation::new(
            "value",
            format!("{} is not an email address", quote(value)),
        ))
    }
}

fn normalise_phone_hash(value: &str) -> Result<String, FieldViolation> {
    let hash = value.to_ascii_lowercase();
    if matches!(hash.len(), 32 | 64) && hash.chars().all(|c| c.is_ascii_hexdigit()) {
        Ok(hash)
    } else {
        Err(FieldViolation::new(
            "value",
            "must be the hex MD5 (32 digits) or SHA-256 (64 digits) of an E.164 phone number",
        ))
    }
}

fn check_token(
    value: &str,
    min: usize,
    max: usize,
    allowed: &str,
    is_allowed: impl Fn(char) -> bool,
) -> Result<String, FieldViolation> {
    if (min..=max).contains(&value.len()) && value.chars().all(is_allowed) {
        Ok(value.to_owned())
    } else {
        Err(FieldViolation::new(
            "value",
            format!("must be {min}-{max} characters: {allowed}"),
        ))
    }
}

fn check_text(value: &str, max: usize) -> Result<String, FieldViolation> {
    if value.chars().count() <= max && !value.chars().any(char::is_control) {
        Ok(value.to_owned())
    } else {
        Err(FieldViolation::new(
            "value",
            format!("must be at most {max} characters without control characters"),
        ))
    }
}

/// The MD5 and SHA-256 digests of an E.164 phone, as the PHONE_HASH identities that platforms
/// which never see the number use to find the member.
pub fn phone_digests(e164: &str) -> [Identity; 2] {
    let hash = |value: String| Identity {
        kind: IdentityKind::PhoneHash,
        namespace: String::new(),
        value,
    };
    [
        hash(hex::encode(Md5::digest(e164.as_bytes()))),
        hash(hex::encode(Sha256::digest(e164.as_bytes()))),
    ]
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn cn() -> Normaliser {
        Normaliser::new("CN").unwrap()
    }

    #[test]
    fn usual_mainland_mobiles_take_the_fast_path() {
        let usual = [
            "13800138000",
            "+8613800138000",
            "+86 138 0013 8000",
            "138-0013-8000",
            "17401234567",
        ];
        for written in usual {
            let expected = if written.starts_with("174") {
                "+8617401234567"
            } else {
                "+8613800138000"
            };
            assert_eq!(mainland_mobile(written).as_deref(), Some(expected));
        }
        let unusual = [
            "17461234567",
            "19412345678",
            "12012345678",
            "1380013800",
            "138001380001",
            "138  0013 8000",
            "+86138-0013-8000",
        ];
        for unusual in unusual {
            assert_eq!(mainland_mobile(unusual), None, "{unusual}");
        }
    }

    #[test]
    fn phones_become_e164() {
        let n = cn();
        for input in ["13800138000", "+86 138 0013 8000", "+8613800138000", "138-0013-8000"] {
            assert_eq!(
                n.normalise(IdentityKind::Phone, "", input).unwrap().value,
                "+8613800138000"
            );
        }
        assert_eq!(
            n.normalise(IdentityKind::Phone, "", "+1 650-253-0000").unwrap().value,
            "+16502530000"
        );
        let us = Normaliser::new("US").unwrap();
        for (input, e164) in [
            ("+86 138 0013 8000", "+8613800138000"),
            ("650-253-0000", "+16502530000"),
        ] {
            assert_eq!(us.normalise(IdentityKind::Phone, "", input).unwrap().value, e164);
        }
        let error = n.normalise(IdentityKind::Phone, "", "12345").unwrap_err();
        assert_eq!(error.field, "value");
        assert!(n.normalise(IdentityKind::Phone, "", "not a phone").is_err());
        assert!(Normaliser::new("XX").is_err());
    }

    #[test]
    fn every_kind_is_checked() {
        let n = cn();
        let ok = |kind, ns: &str, value: &str| n.normalise(kind, ns, value).map(|i| i.value);
        assert_eq!(
            ok(IdentityKind::Email, "", " Li.Na@Example.COM ").unwrap(),
            "li.na@example.com"
        );
        assert!(ok(IdentityKind::Email, "", "li.na@example").is_err());
        assert!(ok(IdentityKind::Email, "", "a b@example.com").is_err());
        assert!(ok(IdentityKind::WechatUnionid, "", "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o").is_ok());
        assert!(ok(IdentityKind::WechatUnionid, "", "short").is_err());
        assert_eq!(
            n.normalise(IdentityKind::WechatOpenid, "", "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o")
                .unwrap_err()
                .field,
            "namespace"
        );
        assert!(
            ok(
                IdentityKind::WechatOpenid,
                "wx1234567890abcdef",
                "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"
            )
            .is_ok()
        );
        assert_eq!(
            ok(IdentityKind::PhoneHash, "", &"AB".repeat(16)).unwrap(),
            "ab".repeat(16)
        );
        assert!(ok(IdentityKind::PhoneHash, "", "abc").is_err());
        assert!(ok(IdentityKind::JdPin, "", "jd_张三").is_ok());
        assert!(ok(IdentityKind::JdPin, "", "bad\u{7}").is_err());
        assert!(ok(IdentityKind::PosCard, "", "CARD 1").is_err());
        assert_eq!(
            n.normalise(IdentityKind::External, "", "x").unwrap_err().field,
            "namespace"
        );
        assert_eq!(
            n.normalise(IdentityKind::TmallOuid, "ns", "x").unwrap_err().field,
            "namespace"
        );
        assert_eq!(
            n.normalise(IdentityKind::DouyinOpenid, "", "  ").unwrap_err().field,
            "value"
        );
    }

    #[test]
    fn phone_digests_match_what_platforms_send() {
        let [md5, sha256] = phone_digests("+8613800138000");
        assert_eq!(md5.value.len(), 32);
        assert_eq!(sha256.value.len(), 64);
        assert_eq!(
            cn().normalise(IdentityKind::PhoneHash, "", &md5.value.to_uppercase())
                .unwrap(),
            md5
        );
    }

    proptest! {
        #[test]
        fn normalisation_is_idempotent(
            kind in proptest::sample::select(IdentityKind::ALL.to_vec()),
            namespace in "[a-zA-Z0-9._-]{0,8}",
            value in "[ +()0-9a-zA-Z@._-]{1,40}",
        ) {
            let n = cn();
            if let Ok(once) = n.normalise(kind, &namespace, &value) {
                let twice = n.normalise(once.kind, &once.namespace, &once.value).unwrap();
                prop_assert_eq!(once, twice);
            }
        }

        /// Wherever the fast path answers, phonenumber answers the same.
        #[test]
        fn the_mainland_mobile_fast_path_agrees_with_phonenumber(
            prefix in proptest::sample::select(vec!["", "+86", "+86 ", "+86-", "86", "0", " "]),
            digits in "1[0-9]{10}|1[3-9][0-9]{9}|17[0-9]{9}|[0-9]{9,12}",
            separators in proptest::collection::vec((0usize..12, proptest::sample::select(vec![" ", "-", "  ", "--", "."])), 0..3),
        ) {
            let mut written = digits;
            for (at, separator) in separators {
                written.insert_str(at.min(written.len()), separator);
            }
            let value = format!("{prefix}{written}");
            let slow = || {
                let number = phonenumber::parse(Some(country::Id::CN), &value).ok()?;
                phonenumber::is_valid(&number).then(|| number.format().mode(Mode::E164).to_string())
            };
            if let Some(fast) = mainland_mobile(&value) {
                prop_assert_eq!(Some(fast), slow());
            }
        }

        #[test]
        fn chinese_mobiles_in_any_format_agree(number in 0u32..100_000_000) {
            let n = cn();
            let national = format!("139{number:08}");
            let plain = n.normalise(IdentityKind::Phone, "", &national).unwrap();
            let international = n.normalise(IdentityKind::Phone, "", &format!("+86 {national}")).unwrap();
            prop_assert_eq!(plain.value, international.value);
        }
    }
}
