//! Page sizes and opaque page tokens shared by the List RPCs.

use crate::error::FieldViolation;

pub const DEFAULT_PAGE_SIZE: u64 = 100;
pub const MAX_PAGE_SIZE: u64 = 1000;

/// Returns the page size asked for: 0 means the default, above the maximum is an error.
pub fn size(requested: i32) -> Result<u64, FieldViolation> {
    match u64::try_from(requested) {
        Ok(0) => Ok(DEFAULT_PAGE_SIZE),
        Ok(size) if size <= MAX_PAGE_SIZE => Ok(size),
        _ => Err(FieldViolation::new(
            "page_size",
            format!("must be between 0 and {MAX_PAGE_SIZE}, got {requested}"),
        )),
    }
}

/// Encodes the key of the last item of a page as the token of the next page.
pub fn token(last_key: &str) -> String {
    hex::encode(last_key)
}

/// Decodes a page token into the key after which the page starts; empty means the first page.
pub fn after(token: &str) -> Result<Option<String>, FieldViolation> {
    if token.is_empty() {
        return Ok(None);
    }
    hex::decode(token)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .map(Some)
        .ok_or_else(|| FieldViolation::new("page_token", "is not a token returned by a previous page"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_tokens() {
        assert_eq!(size(0), Ok(DEFAULT_PAGE_SIZE));
        assert_eq!(size(7), Ok(7));
        assert!(size(-1).is_err());
        assert!(size(1001).is_err());
        assert_eq!(after(&token("0195-abc")), Ok(Some("0195-abc".to_owned())));
        assert_eq!(after(""), Ok(None));
        assert!(after("zz").is_err());
    }
}
