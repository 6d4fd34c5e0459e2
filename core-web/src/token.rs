//! Secrets as text: random tokens, lower-case hex, and a comparison whose time does not tell
//! where two values differ. For session ids, CSRF tokens, API keys and their digests.
//!
//! ```
//! let session = core_web::token::random_hex(32); // 256 bits
//! assert_eq!(session.len(), 64);
//! assert!(core_web::token::constant_time_eq(session.as_bytes(), session.as_bytes()));
//! assert_eq!(core_web::token::hex(&[0x00, 0xab]), "00ab");
//! ```

use rand::RngCore as _;

/// `bytes` random bytes from the thread's cryptographically secure generator (seeded from the
/// operating system), in lower-case hex.
pub fn random_hex(bytes: usize) -> String {
    let mut buffer = vec![0_u8; bytes];
    rand::rng().fill_bytes(&mut buffer);
    hex(&buffer)
}

/// `bytes` in lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 0xf)]));
    }
    out
}

/// Whether `a` and `b` are equal, in time that depends only on their lengths: for comparing a
/// secret (a token, a digest) with what a client sent.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0_u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_and_comparison() {
        assert_eq!(hex(&[0x00, 0xab, 0x0f]), "00ab0f");
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        let (a, b) = (random_hex(32), random_hex(32));
        assert_eq!(a.len(), 64);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }
}
