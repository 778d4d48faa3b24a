//! [`advisory_lock_id`]: the 64-bit advisory lock id of a key, as the Ruby gem computes it.

use md5::{Digest, Md5};

/// The advisory lock id of `key`: the first 8 bytes of MD5(`key`) read as a big-endian
/// signed 64-bit integer — the id the Ruby gem's PostgreSQL adapter locks, so Ruby and Rust
/// nodes sharing a database exclude each other. PostgreSQL computes the same value with
/// `('x' || substr(md5(key), 1, 16))::bit(64)::bigint`.
///
/// Two different keys share an id with probability 2⁻⁶⁴ per pair; such keys would exclude
/// each other (never both be granted), which is safe.
///
/// ```
/// use kaal_diesel_postgres::advisory_lock_id;
/// assert_eq!(advisory_lock_id("kaal:dispatch:a:60"), 6_525_927_322_657_524_571);
/// ```
pub fn advisory_lock_id(key: &str) -> i64 {
    let digest = Md5::digest(key.as_bytes());
    let mut first = [0_u8; 8];
    first.copy_from_slice(&digest[..8]);
    i64::from_be_bytes(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_the_leading_md5_bytes_big_endian_and_signed() {
        // md5("") = d41d8cd98f00b204 e9800998ecf8427e
        assert_eq!(
            advisory_lock_id(""),
            i64::from_be_bytes([0xd4, 0x1d, 0x8c, 0xd9, 0x8f, 0x00, 0xb2, 0x04])
        );
        assert!(advisory_lock_id("") < 0, "the sign bit is kept");
        assert_ne!(advisory_lock_id("a"), advisory_lock_id("b"));
    }
}
