//! Coupon codes: what a member reads out at a till or types at a checkout, so short, unguessable
//! and hard to mistype.
//!
//! A generated code is 64 random bits written in 13 characters of a 31-character alphabet with
//! no 0/O or 1/I/L, then a check character: the sum of each character's value weighted by its
//! position (1 to 13), modulo 31. As 31 is prime and the weights are distinct and below it, every
//! single wrong character and every swap of two characters changes the sum, so a mistyped code
//! is told apart from an unknown one without a lookup.

/// The characters of generated codes: digits and capitals without 0, 1, I, L and O.
const ALPHABET: &[u8; 31] = b"23456789ABCDEFGHJKMNPQRSTUVWXYZ";
const BASE: u64 = 31;
/// Characters that carry the random bits: 31^13 > 2^64.
const BODY: usize = 13;
pub const GENERATED_LENGTH: usize = BODY + 1;

/// The shortest and longest code a partner's pool may hold.
pub const IMPORTED_LENGTHS: std::ops::RangeInclusive<usize> = 6..=32;

/// A code made from 64 random bits (from the operating system's CSPRNG in use).
pub fn from_bits(mut bits: u64) -> String {
    let mut digits = [0u8; BODY];
    for digit in digits.iter_mut().rev() {
        *digit = u8::try_from(bits % BASE).unwrap_or(0);
        bits /= BASE;
    }
    let mut code: String = digits
        .iter()
        .map(|digit| char::from(ALPHABET[usize::from(*digit)]))
        .collect();
    code.push(char::from(ALPHABET[usize::from(check_digit(&digits))]));
    code
}

/// A new code, from the operating system's random source.
pub fn generate() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes)?;
    Ok(from_bits(u64::from_le_bytes(bytes)))
}

fn check_digit(digits: &[u8]) -> u8 {
    let sum: u64 = digits
        .iter()
        .zip(1u64..)
        .map(|(digit, weight)| u64::from(*digit) * weight)
        .sum();
    u8::try_from(sum % BASE).unwrap_or(0)
}

fn value(character: char) -> Option<u8> {
    let byte = u8::try_from(character).ok()?;
    ALPHABET
        .iter()
        .position(|known| *known == byte)
        .and_then(|at| u8::try_from(at).ok())
}

/// A code as typed, as it is kept: capitals, without spaces or dashes.
pub fn normalize(typed: &str) -> String {
    typed
        .chars()
        .filter(|character| !matches!(character, ' ' | '-'))
        .map(|character| character.to_ascii_uppercase())
        .collect()
}

/// Whether a normalized code has the shape of a generated one but a wrong check character: a
/// mistyped code, not an unknown one.
pub fn is_mistyped(code: &str) -> bool {
    let digits: Option<Vec<u8>> = code.chars().map(value).collect();
    match digits {
        Some(digits) if digits.len() == GENERATED_LENGTH => check_digit(&digits[..BODY]) != digits[BODY],
        _ => false,
    }
}

/// Checks a partner's code (normalized): 6-32 letters and digits.
pub fn check_imported(code: &str) -> Result<(), String> {
    let length = code.chars().count();
    if !IMPORTED_LENGTHS.contains(&length) {
        return Err(format!(
            "must be {}-{} letters or digits, got {length}",
            IMPORTED_LENGTHS.start(),
            IMPORTED_LENGTHS.end()
        ));
    }
    if !code.chars().all(|character| character.is_ascii_alphanumeric()) {
        return Err("must hold only letters, digits, spaces and dashes".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn codes_are_fourteen_unambiguous_characters() {
        for bits in [0, 1, u64::MAX, 0x0123_4567_89ab_cdef] {
            let code = from_bits(bits);
            assert_eq!(code.len(), GENERATED_LENGTH);
            assert!(code.chars().all(|c| value(c).is_some()), "{code}");
            assert!(!code.contains(['0', '1', 'I', 'L', 'O']));
            assert!(!is_mistyped(&code));
        }
        assert_ne!(from_bits(1), from_bits(2));
        assert_ne!(generate().unwrap(), generate().unwrap());
    }

    #[test]
    fn typed_codes_are_read_without_case_spaces_or_dashes() {
        let code = from_bits(42);
        let typed = format!("{}-{} {}", &code[..4], &code[4..9], &code[9..]).to_lowercase();
        assert_eq!(normalize(&typed), code);
        assert!(
            check_imported("ab12-cd34").is_err(),
            "dashes are removed before the check"
        );
        assert!(check_imported(&normalize("ab12-cd34")).is_ok());
        assert!(check_imported("ABC").is_err());
        assert!(check_imported("ABC_DEF").is_err());
    }

    proptest! {
        /// Any one character changed is caught by the check character.
        #[test]
        fn one_wrong_character_is_a_mistyped_code(bits: u64, at in 0..GENERATED_LENGTH, shift in 1u8..31) {
            let code = from_bits(bits);
            let mut digits: Vec<u8> = code.chars().map(|c| value(c).unwrap()).collect();
            digits[at] = (digits[at] + shift) % 31;
            let wrong: String = digits.iter().map(|d| char::from(ALPHABET[usize::from(*d)])).collect();
            prop_assert!(is_mistyped(&wrong));
        }

        /// Two different characters of the random part swapped are caught too.
        #[test]
        fn swapped_characters_are_a_mistyped_code(bits: u64, first in 0..BODY, second in 0..BODY) {
            let code = from_bits(bits);
            let mut characters: Vec<char> = code.chars().collect();
            prop_assume!(characters[first] != characters[second]);
            characters.swap(first, second);
            let swapped: String = characters.into_iter().collect();
            prop_assert!(is_mistyped(&swapped));
        }
    }
}
