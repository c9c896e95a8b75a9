//! Checks of `spec.nats.config` (the nats.conf escape hatch), the typed
//! NATS tuning fields (`serverTags`, `jetstream.max*`), and the rules both
//! the validation and the merge (fleet-scores `nats::user_config`) share:
//! which keys the reconciler owns and what a value may contain
//! (docs/adr/0073-nats-config-escape-hatch.md).
//!
//! nats.conf keys are case-insensitive (nats-server lowercases them), so
//! every comparison here is on the lowercased key.
//!
//! A value is written verbatim after its key, so it must be exactly one
//! nats.conf value and nothing more: at its top level no newline, `,` or
//! `;` (which would end it and start another key, e.g. a second
//! `accounts`), brackets balanced, quotes closed; anywhere, no `$`
//! outside quotes (a variable reference would read the server's
//! environment, where our passwords are), no `include` (which would read a
//! file), no comments (which could hide a bracket from this scan but not
//! from nats-server). nats-server itself checks the rest (`nats-server -t`).

use super::{SpecError, err, key_path};
use crate::stack::NatsSpec;

/// Top-level keys the reconciler writes or that would change what it
/// relies on (listeners, identity, accounts, auth, TLS, storage), with
/// nats-server's aliases. `serverTags` and `jetstream.*` limits have
/// typed fields instead.
pub const OWNED_TOP_LEVEL: &[&str] = &[
    "accounts",
    "authorization",
    "cluster",
    "host",
    "http",
    "http_port",
    "https",
    "https_port",
    "include",
    "jetstream",
    "lame_duck_duration",
    "lame_duck_grace_period",
    "leafnodes",
    "listen",
    // The reconciler's reload marker (ConfigMarker in fleet-scores).
    "metadata",
    "monitor_port",
    "net",
    "no_auth_user",
    "no_system_account",
    "nkeys",
    "operator",
    "operators",
    "pid_file",
    "port",
    "ports_file_dir",
    "resolver",
    "resolver_preload",
    "server_metadata",
    "server_name",
    "server_tags",
    "store_dir",
    "system_account",
    "tls",
    "trusted",
    "trusted_keys",
    "users",
];

/// Blocks of ours a dotted key may set a key inside, with the keys of
/// each block the reconciler owns.
pub const OPEN_BLOCKS: &[(&str, &[&str])] = &[
    (
        "jetstream",
        &[
            "enabled",
            "max_file",
            "max_file_store",
            "max_mem",
            "max_mem_store",
            "max_memory_store",
            "store_dir",
            "storedir",
        ],
    ),
    (
        "cluster",
        &[
            "authorization",
            "connect_retries",
            "host",
            "listen",
            "name",
            "no_advertise",
            "port",
            "routes",
            "tls",
        ],
    ),
];

/// Longest value accepted.
pub const MAX_VALUE: usize = 4096;
/// Longest server tag (nats-server has no limit; /varz lists them all).
pub const MAX_TAG: usize = 128;

/// Where a user key goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement<'a> {
    /// A top-level key.
    TopLevel(&'a str),
    /// `key` inside our `block`.
    InBlock { block: &'a str, key: &'a str },
}

/// Why a key cannot be merged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyRefusal {
    Syntax,
    Owned,
    NotAnOpenBlock,
}

/// Where `key` goes, or why it cannot (the key as given, any case).
pub fn placement(key: &str) -> Result<Placement<'_>, KeyRefusal> {
    let word = |w: &str| {
        let b = w.as_bytes();
        !b.is_empty()
            && (b[0].is_ascii_alphabetic() || b[0] == b'_')
            && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_')
    };
    match key.split_once('.') {
        None if !word(key) => Err(KeyRefusal::Syntax),
        None if OWNED_TOP_LEVEL.contains(&key.to_ascii_lowercase().as_str()) => {
            Err(KeyRefusal::Owned)
        }
        None => Ok(Placement::TopLevel(key)),
        Some((block, inner)) if !word(block) || !word(inner) => Err(KeyRefusal::Syntax),
        Some((block, inner)) => {
            let lower = block.to_ascii_lowercase();
            let Some((_, owned)) = OPEN_BLOCKS.iter().find(|(b, _)| *b == lower) else {
                return Err(KeyRefusal::NotAnOpenBlock);
            };
            if owned.contains(&inner.to_ascii_lowercase().as_str()) {
                Err(KeyRefusal::Owned)
            } else {
                Ok(Placement::InBlock { block, key: inner })
            }
        }
    }
}

/// Whether `value` is exactly one nats.conf value (see the module doc).
pub fn check_value(value: &str) -> Result<(), String> {
    let v = value.trim();
    if v.is_empty() || v.len() > MAX_VALUE {
        return Err(format!("must be 1-{MAX_VALUE} characters"));
    }
    let mut depth: usize = 0;
    let mut quote: Option<char> = None;
    let mut escaped = false;
    let mut word = String::new();
    let mut chars = v.chars().peekable();
    while let Some(c) = chars.next() {
        if let Some(q) = quote {
            if c == '\n' {
                return Err("a quoted string must not span lines".into());
            }
            if escaped {
                escaped = false;
            } else if c == '\\' && q == '"' {
                escaped = true;
            } else if c == q {
                quote = None;
            }
            continue;
        }
        if c.is_ascii_alphanumeric() || c == '_' {
            word.push(c);
        } else {
            if word.eq_ignore_ascii_case("include") {
                return Err("must not contain include (it would read a file)".into());
            }
            word.clear();
        }
        match c {
            '"' | '\'' => quote = Some(c),
            '{' | '[' => depth += 1,
            '}' | ']' => {
                depth = depth
                    .checked_sub(1)
                    .ok_or_else(|| format!("unbalanced {c:?}"))?;
            }
            '$' => {
                return Err(
                    "must not reference variables ($...): the server's environment holds secrets"
                        .into(),
                );
            }
            '#' => return Err("must not contain comments (#)".into()),
            '/' if chars.peek() == Some(&'/') => {
                return Err("must not contain comments (//)".into());
            }
            '\n' | ',' | ';' if depth == 0 => {
                return Err(format!(
                    "{c:?} outside brackets would end the value and start another key"
                ));
            }
            c if c.is_whitespace() && depth == 0 => {
                return Err(
                    "whitespace outside brackets or quotes: quote a string (\"a b\")".into(),
                );
            }
            c if c.is_control() && c != '\n' && c != '\t' => {
                return Err("must not contain control characters".into());
            }
            _ => {}
        }
    }
    if word.eq_ignore_ascii_case("include") {
        return Err("must not contain include (it would read a file)".into());
    }
    if quote.is_some() {
        return Err("unterminated quoted string".into());
    }
    if depth != 0 {
        return Err("unbalanced brackets".into());
    }
    Ok(())
}

/// `spec.nats.config`, `spec.nats.serverTags` and the JetStream limits.
pub fn check(nats: &NatsSpec, errors: &mut Vec<SpecError>) {
    for (i, tag) in nats.server_tags.iter().enumerate() {
        let p = format!("spec.nats.serverTags[{i}]");
        if tag.is_empty() || tag.len() > MAX_TAG {
            errors.push(err(&p, format!("must be 1-{MAX_TAG} characters")));
        } else if tag.chars().any(|c| c.is_control() || c == '"' || c == '\\') {
            errors.push(err(
                &p,
                "must not contain quotes, backslashes or control characters",
            ));
        }
    }
    let mut seen = std::collections::BTreeMap::new();
    for (key, value) in &nats.config {
        let p = key_path("spec.nats.config", key);
        // Keys are case-insensitive to nats-server: `Foo` and `foo` are one.
        if let Some(first) = seen.insert(key.to_ascii_lowercase(), key) {
            errors.push(err(
                &p,
                format!("same nats.conf key as {first:?} (keys are case-insensitive)"),
            ));
        }
        match placement(key) {
            Err(KeyRefusal::Syntax) => errors.push(err(
                &p,
                "a key is letters, digits and '_' (one '.' to set a key inside jetstream or cluster)",
            )),
            Err(KeyRefusal::Owned) => errors.push(err(
                &p,
                format!(
                    "{key} is set by the reconciler and cannot be overridden{}",
                    typed_alternative(key)
                ),
            )),
            Err(KeyRefusal::NotAnOpenBlock) => errors.push(err(
                &p,
                "a dotted key sets a key inside jetstream or cluster only",
            )),
            Ok(Placement::InBlock { block, .. }) => {
                let lower = block.to_ascii_lowercase();
                if lower == "jetstream" && !nats.jetstream.enabled {
                    errors.push(err(&p, "requires spec.nats.jetstream.enabled"));
                }
                if lower == "cluster" && nats.replicas < 2 {
                    errors.push(err(
                        &p,
                        "requires spec.nats.replicas of 2 or more (a single server has no cluster block)",
                    ));
                }
            }
            Ok(Placement::TopLevel(_)) => {}
        }
        if let Err(why) = check_value(value) {
            errors.push(err(&p, format!("not one nats.conf value: {why}")));
        }
    }
}

fn typed_alternative(key: &str) -> &'static str {
    let lower = key.to_ascii_lowercase();
    if lower == "server_tags" {
        " (use spec.nats.serverTags)"
    } else if lower.starts_with("jetstream.max_") {
        " (use spec.nats.jetstream.maxMemoryStore / maxFileStore)"
    } else {
        ""
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owned_keys_are_refused_in_any_case() {
        for key in ["accounts", "Accounts", "LISTEN", "jetstream", "server_tags"] {
            assert_eq!(placement(key), Err(KeyRefusal::Owned), "{key}");
        }
        assert_eq!(placement("jetstream.Store_Dir"), Err(KeyRefusal::Owned));
        assert_eq!(placement("cluster.routes"), Err(KeyRefusal::Owned));
        assert_eq!(placement("accounts.SYS"), Err(KeyRefusal::NotAnOpenBlock));
        assert_eq!(placement("a.b.c"), Err(KeyRefusal::Syntax));
        assert_eq!(placement("max payload"), Err(KeyRefusal::Syntax));
        assert_eq!(
            placement("max_payload"),
            Ok(Placement::TopLevel("max_payload"))
        );
        assert_eq!(
            placement("jetstream.max_buffered_msgs"),
            Ok(Placement::InBlock {
                block: "jetstream",
                key: "max_buffered_msgs"
            })
        );
    }

    #[test]
    fn a_value_cannot_smuggle_in_another_key() {
        for ok in [
            "2MB",
            "10s",
            "true",
            "\"a b\"",
            "{ port: 1883\n  no_auth_user: x }",
            "[1, 2]",
            "'x; y'",
        ] {
            assert_eq!(check_value(ok), Ok(()), "{ok}");
        }
        for bad in [
            "1\naccounts: {}",
            "1; accounts: {}",
            "1, listen: 1.2.3.4:1",
            "1 accounts {}",
            "{ a: 1 }}",
            "{ a: 1",
            "\"open",
            "$SYS_PASSWORD",
            "{ x: $FLEET_PASSWORD }",
            "{ include 'x' }",
            "{ a: 1 # }",
            "{ a: 1 // }",
            "",
        ] {
            assert!(check_value(bad).is_err(), "{bad:?} accepted");
        }
    }
}
