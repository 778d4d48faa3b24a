//! [`lock_name`]: the `GET_LOCK` name of a kaal key.

use sha2::{Digest, Sha256};

/// The longest name `GET_LOCK` accepts (MySQL 5.7+), in characters.
pub const MAX_LOCK_NAME_CHARS: usize = 64;

/// Characters of the key kept in front of a shortened name.
const KEPT_CHARS: usize = 47;

/// Hex digits of the SHA-256 digest at the end of a shortened name.
const DIGEST_HEX: usize = 16;

/// The `GET_LOCK` name of `key`: the key itself when it has at most 64 characters, otherwise
/// its first 47 characters, `:`, and the first 16 hex digits of the SHA-256 of the whole key
/// (its UTF-8 bytes) — 64 characters, the rule the Ruby gem uses, so Ruby and Rust nodes
/// taking the same key take the same lock.
///
/// Lengths count characters (Unicode scalar values, as MySQL counts them in a `utf8mb4`
/// name), never bytes, so a multibyte character is never split.
///
/// ```
/// use kaal_diesel_mysql::lock_name;
///
/// assert_eq!(lock_name("kaal:dispatch:report:1767225600"), "kaal:dispatch:report:1767225600");
/// let long = format!("kaal:dispatch:{}:1767225600", "é".repeat(80));
/// let name = lock_name(&long);
/// assert_eq!(name.chars().count(), 64);
/// assert!(name.starts_with("kaal:dispatch:éééé"));
/// assert_eq!(name.chars().nth(47), Some(':'));
/// ```
pub fn lock_name(key: &str) -> String {
    if key.chars().count() <= MAX_LOCK_NAME_CHARS {
        return key.to_string();
    }
    let digest = Sha256::digest(key.as_bytes());
    let mut name: String = key.chars().take(KEPT_CHARS).collect();
    name.push(':');
    for byte in digest.iter().take(DIGEST_HEX / 2) {
        name.push_str(&format!("{byte:02x}"));
    }
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names_are_kept_and_long_ones_hashed_on_characters() {
        let exactly = "k".repeat(64);
        assert_eq!(lock_name(&exactly), exactly);
        let long = "k".repeat(65);
        let name = lock_name(&long);
        assert_eq!(name.len(), 64);
        assert_eq!(&name[..48], format!("{}:", "k".repeat(47)));
        // 64 two-byte characters are 128 bytes but still 64 characters: kept.
        let wide = "é".repeat(64);
        assert_eq!(lock_name(&wide), wide);
        // Digests computed independently (Python's hashlib).
        let key = format!("kaal:{}", "x".repeat(300));
        assert_eq!(
            lock_name(&key),
            format!("kaal:{}:ee8dde7fc406550d", "x".repeat(42))
        );
        let key = format!("kaal:dispatch:{}:1767225600", "é".repeat(80));
        assert_eq!(
            lock_name(&key),
            format!("kaal:dispatch:{}:f7b7d78b57867bdc", "é".repeat(33))
        );
    }
}
