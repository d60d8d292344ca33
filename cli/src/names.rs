//! Proto enum values as the command line writes them: the value's name without its type's prefix,
//! in lower case (`CHANNEL_WECHAT_MALL` is `wechat_mall`).

/// The short name of `name`, a value of the enum whose value names start with `prefix`.
pub fn short(name: &str, prefix: &str) -> String {
    name.strip_prefix(prefix).unwrap_or(name).to_ascii_lowercase()
}

/// The value a short name stands for, read by the enum's `from_str_name`; its UNSPECIFIED value
/// is never one.
pub fn parse<E>(text: &str, prefix: &str, from_name: fn(&str) -> Option<E>) -> Option<E> {
    let upper = text.to_ascii_uppercase();
    if upper == "UNSPECIFIED" {
        return None;
    }
    from_name(&format!("{prefix}{upper}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use quanyu_proto::common::v1::Channel;

    #[test]
    fn a_short_name_reads_back_and_unspecified_is_none() {
        assert_eq!(short(Channel::WechatMall.as_str_name(), "CHANNEL_"), "wechat_mall");
        assert_eq!(
            parse("wechat_mall", "CHANNEL_", Channel::from_str_name),
            Some(Channel::WechatMall)
        );
        assert_eq!(parse("unspecified", "CHANNEL_", Channel::from_str_name), None);
        assert_eq!(parse("mall", "CHANNEL_", Channel::from_str_name), None);
    }
}
