//! Names the engine gives to what it injects: DNS-1123 labels of at most 63 characters,
//! deterministic, and made unique with a short hash when they would be truncated or
//! would repeat.

use sha2::{Digest, Sha256};

/// The longest name Kubernetes accepts for a container or a volume.
pub const MAX_LABEL: usize = 63;
const HASH_LEN: usize = 8;

/// Whether `name` is a DNS-1123 label: lowercase letters, digits and '-', starting and
/// ending with a letter or digit, 63 characters at most.
pub fn is_dns1123_label(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_LABEL
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

/// Whether `text` is a DNS-1123 subdomain: dot-separated DNS-1123 labels, 253
/// characters at most (annotation prefixes, host names).
pub fn is_dns1123_subdomain(text: &str) -> bool {
    !text.is_empty() && text.len() <= 253 && text.split('.').all(is_dns1123_label)
}

/// How messages name an object: its `name`, else its `generateName` followed by `*`
/// (the apiserver has not chosen the rest yet), else `None`.
pub fn object_name(name: Option<&str>, generate_name: Option<&str>) -> Option<String> {
    match (name, generate_name) {
        (Some(name), _) if !name.is_empty() => Some(name.to_owned()),
        (_, Some(generate)) => Some(format!("{generate}*")),
        _ => None,
    }
}

/// Hex digest prefix of `text`, stable across runs and platforms.
pub fn short_hash(text: &str, len: usize) -> String {
    hex_prefix(&Sha256::digest(text.as_bytes()), len)
}

/// The first `len` hex digits of `bytes`.
pub fn hex_prefix(bytes: &[u8], len: usize) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    bytes
        .iter()
        .flat_map(|b| [DIGITS[usize::from(b >> 4)], DIGITS[usize::from(b & 0xf)]])
        .take(len)
        .map(char::from)
        .collect()
}

/// What `text` writes, lowercased, with every run of other characters turned into one
/// '-' (none at either end); written straight into the result.
fn sanitized(text: std::fmt::Arguments<'_>) -> String {
    /// Keeps lowercase letters and digits, and one '-' for each run of anything else
    /// after the first of them.
    struct Sanitizer(String);
    impl std::fmt::Write for Sanitizer {
        fn write_str(&mut self, text: &str) -> std::fmt::Result {
            let out = &mut self.0;
            for ch in text.chars() {
                let ch = ch.to_ascii_lowercase();
                if ch.is_ascii_lowercase() || ch.is_ascii_digit() {
                    out.push(ch);
                } else if !out.ends_with('-') && !out.is_empty() {
                    out.push('-');
                }
            }
            Ok(())
        }
    }
    let mut out = Sanitizer(String::with_capacity(MAX_LABEL + 1));
    std::fmt::Write::write_fmt(&mut out, text).expect("writing to a String never fails");
    let mut out = out.0;
    while out.ends_with('-') {
        out.pop();
    }
    out
}

/// A valid, unique label `prefix-<hint>`; `seed` (the full identity of the thing named)
/// feeds the hash that is appended when the label must be truncated or is already taken.
///
/// A truncated name carries a hash because two long targets that share their first 54
/// characters would otherwise get the same name, and Kubernetes refuses duplicate names.
pub fn unique_label(
    prefix: &str,
    hint: &str,
    seed: &str,
    is_taken: impl Fn(&str) -> bool,
) -> String {
    let full = sanitized(format_args!("{prefix}-{hint}"));
    if full.len() <= MAX_LABEL && !is_taken(&full) {
        return full;
    }
    let hash = short_hash(seed, HASH_LEN);
    let keep = (MAX_LABEL - HASH_LEN - 1).min(full.len());
    let mut head = full[..keep].to_owned();
    while head.ends_with('-') {
        head.pop();
    }
    let mut candidate = format!("{head}-{hash}");
    // Two seeds with the same 8-character hash prefix are astronomically unlikely, but a
    // taken name must never be returned, so fall back to counting.
    let mut n = 2;
    while is_taken(&candidate) {
        let suffix = format!("{hash}-{n}");
        let keep = (MAX_LABEL - suffix.len() - 1).min(head.len());
        candidate = format!("{}-{suffix}", head[..keep].trim_end_matches('-'));
        n += 1;
    }
    candidate
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn labels() {
        for ok in ["a", "01-migrate", "wait-for-postgres-5432", &"a".repeat(63)] {
            assert!(is_dns1123_label(ok), "{ok}");
        }
        for bad in ["", "-a", "a-", "A", "a_b", "a.b", &"a".repeat(64)] {
            assert!(!is_dns1123_label(bad), "{bad}");
        }
    }

    #[test]
    fn short_names_are_plain() {
        let none = |_: &str| false;
        assert_eq!(
            unique_label("wait-for", "postgres-5432", "postgres:5432", none),
            "wait-for-postgres-5432"
        );
        assert_eq!(
            unique_label("wait-for", "[::1]-5432", "[::1]:5432", none),
            "wait-for-1-5432"
        );
        assert_eq!(
            unique_label("wait-for", "https-Vault.svc:8200/v1/sys/health", "x", none),
            "wait-for-https-vault-svc-8200-v1-sys-health"
        );
    }

    #[test]
    fn long_names_are_truncated_with_a_hash() {
        let none = |_: &str| false;
        let hint = "a-very-long-service-name.with-a-namespace.svc.cluster.local-5432";
        let one = unique_label("wait-for", hint, "seed-one", none);
        let two = unique_label("wait-for", hint, "seed-two", none);
        assert!(
            is_dns1123_label(&one) && is_dns1123_label(&two),
            "{one} {two}"
        );
        assert_eq!(one.len(), MAX_LABEL);
        assert_ne!(one, two);
        assert!(one.ends_with(&short_hash("seed-one", 8)));
        // Deterministic.
        assert_eq!(one, unique_label("wait-for", hint, "seed-one", none));
    }

    #[test]
    fn taken_names_get_a_hash() {
        let mut taken = BTreeSet::<String>::new();
        let first = unique_label("wait-for", "api-80", "http://api:80/", |n| {
            taken.contains(n)
        });
        taken.insert(first.clone());
        let second = unique_label("wait-for", "api-80", "tcp api:80", |n| taken.contains(n));
        assert_ne!(first, second);
        assert!(is_dns1123_label(&second));
        taken.insert(second.clone());
        let forced = format!("wait-for-api-80-{}", short_hash("tcp api:80", 8));
        assert_eq!(second, forced);
        // Even a taken hashed name yields a fresh label.
        let third = unique_label("wait-for", "api-80", "tcp api:80", |n| taken.contains(n));
        assert!(
            !taken.contains(&third) && is_dns1123_label(&third),
            "{third}"
        );
    }
}
