//! The API key format: `frk_`, 32 random bytes in base62 (43 characters, zero-padded) and a
//! 6-character base62 CRC32 of those 43 characters.
//!
//! The checksum lets a secret scanner, a log filter or the server itself tell a real key from a
//! typo or a random string offline: [`is_well_formed`] checks prefix, alphabet, length and
//! checksum without touching the database, so malformed keys cost nothing to reject.
//!
//! ```
//! use app::auth::keys;
//!
//! let key = keys::generate();
//! assert!(key.starts_with("frk_") && key.len() == keys::KEY_LEN);
//! assert!(keys::is_well_formed(&key));
//! let mut typo = key.clone();
//! typo.replace_range(10..11, if &key[10..11] == "a" { "b" } else { "a" });
//! assert!(!keys::is_well_formed(&typo));
//! ```

use rand::RngCore;

/// Every key starts with this.
pub const PREFIX: &str = "frk_";
/// Characters of the random body: 32 bytes in base62.
pub const BODY_LEN: usize = 43;
/// Characters of the checksum: a CRC32 in base62.
pub const CHECKSUM_LEN: usize = 6;
/// Characters of a whole key (53).
pub const KEY_LEN: usize = PREFIX.len() + BODY_LEN + CHECKSUM_LEN;
/// Characters kept for display at the start of a key (`frk_` and four more).
pub const DISPLAY_PREFIX_LEN: usize = 8;

const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// A new key from 32 bytes of the thread's cryptographically secure generator.
pub fn generate() -> String {
    let mut bytes = [0_u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    from_bytes(&bytes)
}

/// The key whose body encodes `bytes`.
fn from_bytes(bytes: &[u8; 32]) -> String {
    let body = encode(bytes, BODY_LEN);
    let checksum = encode(&crc32(body.as_bytes()).to_be_bytes(), CHECKSUM_LEN);
    format!("{PREFIX}{body}{checksum}")
}

/// Whether `key` has the shape of a key this service issued: prefix, length, alphabet, a body
/// that fits in 32 bytes and a matching checksum. Says nothing about whether the key exists.
pub fn is_well_formed(key: &str) -> bool {
    let Some(rest) = key.strip_prefix(PREFIX) else {
        return false;
    };
    let rest = rest.as_bytes();
    if rest.len() != BODY_LEN + CHECKSUM_LEN {
        return false;
    }
    let (body, checksum) = rest.split_at(BODY_LEN);
    let (Some(_), Some(sum)) = (decode::<32>(body), decode::<4>(checksum)) else {
        return false;
    };
    u32::from_be_bytes(sum) == crc32(body)
}

/// The first characters of a key, kept for display.
pub fn display_prefix(key: &str) -> &str {
    key.get(..DISPLAY_PREFIX_LEN).unwrap_or(key)
}

/// The last four characters of a key, kept for display.
pub fn last_four(key: &str) -> &str {
    key.get(key.len().saturating_sub(4)..).unwrap_or(key)
}

/// `bytes` (a big-endian number) in base62, left-padded with `0` to `width` characters.
/// `width` must hold the number (43 for 32 bytes, 6 for 4).
fn encode(bytes: &[u8], width: usize) -> String {
    let mut number = bytes.to_vec();
    let mut digits = vec![ALPHABET[0]; width];
    for slot in digits.iter_mut().rev() {
        // One long division of `number` by 62; the remainder is the next digit.
        let mut remainder = 0_u32;
        for byte in &mut number {
            let value = (remainder << 8) | u32::from(*byte);
            *byte = (value / 62) as u8;
            remainder = value % 62;
        }
        *slot = ALPHABET[remainder as usize];
    }
    debug_assert!(number.iter().all(|b| *b == 0), "width too small");
    String::from_utf8(digits).unwrap_or_default()
}

/// The base62 text as an `N`-byte big-endian number; `None` for a character outside the
/// alphabet or a value that does not fit.
fn decode<const N: usize>(text: &[u8]) -> Option<[u8; N]> {
    let mut number = [0_u8; N];
    for &c in text {
        let digit = match c {
            b'0'..=b'9' => c - b'0',
            b'A'..=b'Z' => c - b'A' + 10,
            b'a'..=b'z' => c - b'a' + 36,
            _ => return None,
        };
        // number = number * 62 + digit
        let mut carry = u32::from(digit);
        for byte in number.iter_mut().rev() {
            let value = u32::from(*byte) * 62 + carry;
            *byte = (value & 0xff) as u8;
            carry = value >> 8;
        }
        if carry != 0 {
            return None;
        }
    }
    Some(number)
}

/// CRC-32 (IEEE 802.3, the one of zlib and PNG).
fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0_u32;
    for byte in data {
        crc ^= u32::from(*byte);
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0xEDB8_8320 & mask);
        }
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_matches_the_standard_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
    }

    #[test]
    fn base62_is_fixed_width_and_round_trips() {
        assert_eq!(encode(&[0; 32], BODY_LEN), "0".repeat(BODY_LEN));
        assert_eq!(encode(&[0, 0, 0, 61], CHECKSUM_LEN), "00000z");
        assert_eq!(encode(&[0, 0, 0, 62], CHECKSUM_LEN), "000010");
        let max = encode(&[0xff; 32], BODY_LEN);
        assert_eq!(max.len(), BODY_LEN);
        assert_eq!(decode::<32>(max.as_bytes()), Some([0xff; 32]));
        assert_eq!(encode(&u32::MAX.to_be_bytes(), CHECKSUM_LEN), "4gfFC3");
        for _ in 0..100 {
            let mut bytes = [0_u8; 32];
            rand::rng().fill_bytes(&mut bytes);
            assert_eq!(
                decode::<32>(encode(&bytes, BODY_LEN).as_bytes()),
                Some(bytes)
            );
        }
        // One past 2^256 - 1 does not fit in 32 bytes.
        assert_eq!(decode::<32>("z".repeat(BODY_LEN).as_bytes()), None);
        assert_eq!(decode::<4>(b"4gfFC4"), None);
        assert_eq!(decode::<4>(b"00_000"), None);
    }

    #[test]
    fn generated_keys_are_well_formed_and_distinct() {
        let a = generate();
        let b = generate();
        assert_ne!(a, b);
        for key in [&a, &b, &from_bytes(&[0; 32]), &from_bytes(&[0xff; 32])] {
            assert_eq!(key.len(), KEY_LEN, "{key}");
            assert!(key.starts_with(PREFIX));
            assert!(is_well_formed(key), "{key}");
        }
        assert_eq!(display_prefix(&a), &a[..8]);
        assert_eq!(last_four(&a), &a[a.len() - 4..]);
    }

    #[test]
    fn every_one_character_change_is_rejected() {
        let key = generate();
        for position in 0..key.len() {
            for replacement in ALPHABET.iter().chain(b"_-+/= ") {
                let mut bytes = key.clone().into_bytes();
                if bytes[position] == *replacement {
                    continue;
                }
                bytes[position] = *replacement;
                let changed = String::from_utf8(bytes).unwrap();
                assert!(!is_well_formed(&changed), "{changed} accepted");
            }
        }
    }

    #[test]
    fn wrong_shapes_are_rejected() {
        let key = generate();
        assert!(!is_well_formed(""));
        assert!(!is_well_formed(PREFIX));
        assert!(!is_well_formed(&key[..KEY_LEN - 1]));
        assert!(!is_well_formed(&format!("{key}0")));
        assert!(!is_well_formed(&key.replacen("frk_", "FRK_", 1)));
        assert!(!is_well_formed(&format!(" {}", &key[1..])));
        assert!(!is_well_formed(&key.replacen("frk_", "frk-", 1)));
        // Multi-byte characters of the same byte length never pass.
        let body = "é".repeat((BODY_LEN + CHECKSUM_LEN) / 2);
        assert!(!is_well_formed(&format!("{PREFIX}{body}0")));
    }
}
