//! kubectl's label selector syntax (`site=lab,tier!=edge,zone in (a,b),gpu,!old`)
//! parsed into a [`kube::core::Selector`]: `agents -l` matches it against
//! the labels agents report, and `ping` sends it as the FleetCommand's
//! `LabelSelector`, which the operator matches the same way.
//!
//! `all` (or an empty string) selects every agent.

use std::collections::BTreeSet;

use kube::core::{Expression, Selector};

use crate::error::PluginError;

pub fn parse(input: &str) -> Result<Selector, PluginError> {
    let input = input.trim();
    if input.is_empty() || input == "all" {
        return Ok(Selector::default());
    }
    let bad = |what: &str| PluginError::Usage(format!("label selector {input:?}: {what}"));
    let mut expressions = Vec::new();
    for term in split_terms(input).map_err(|e| bad(&e))? {
        let term = term.trim();
        let expr = if let Some((key, rest)) = split_word(term, " notin ") {
            Expression::NotIn(
                key_of(key).map_err(|e| bad(&e))?,
                set(rest).map_err(|e| bad(&e))?,
            )
        } else if let Some((key, rest)) = split_word(term, " in ") {
            Expression::In(
                key_of(key).map_err(|e| bad(&e))?,
                set(rest).map_err(|e| bad(&e))?,
            )
        } else if let Some((key, value)) = term.split_once("!=") {
            Expression::NotEqual(key_of(key).map_err(|e| bad(&e))?, value.trim().to_string())
        } else if let Some((key, value)) = term.split_once("==").or_else(|| term.split_once('=')) {
            Expression::Equal(key_of(key).map_err(|e| bad(&e))?, value.trim().to_string())
        } else if let Some(key) = term.strip_prefix('!') {
            Expression::DoesNotExist(key_of(key).map_err(|e| bad(&e))?)
        } else {
            Expression::Exists(key_of(term).map_err(|e| bad(&e))?)
        };
        expressions.push(expr);
    }
    Ok(expressions.into_iter().collect())
}

/// Splits on commas outside parentheses.
fn split_terms(input: &str) -> Result<Vec<&str>, String> {
    let mut terms = Vec::new();
    let (mut depth, mut start) = (0usize, 0usize);
    for (i, c) in input.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.checked_sub(1).ok_or("unbalanced ')'")?,
            ',' if depth == 0 => {
                terms.push(&input[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err("unbalanced '('".into());
    }
    terms.push(&input[start..]);
    if terms.iter().any(|t| t.trim().is_empty()) {
        return Err("empty term".into());
    }
    Ok(terms)
}

fn split_word<'a>(term: &'a str, word: &str) -> Option<(&'a str, &'a str)> {
    term.find(word)
        .map(|i| (&term[..i], term[i + word.len()..].trim()))
}

fn key_of(key: &str) -> Result<String, String> {
    let key = key.trim();
    let valid = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'));
    if valid {
        Ok(key.to_string())
    } else {
        Err(format!("invalid label key {key:?}"))
    }
}

fn set(rest: &str) -> Result<BTreeSet<String>, String> {
    let inner = rest
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .ok_or_else(|| format!("expected (a,b) after the operator, got {rest:?}"))?;
    Ok(inner
        .split(',')
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
    use kube::core::SelectorExt;
    use std::collections::BTreeMap;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn kubectl_syntax_matches_like_the_operator() {
        let s = parse("site=lab, tier!=edge,zone in (a, b),gpu,!old").unwrap();
        assert!(s.matches(&labels(&[("site", "lab"), ("zone", "a"), ("gpu", "1")])));
        assert!(!s.matches(&labels(&[("site", "lab"), ("zone", "c"), ("gpu", "1")])));
        assert!(!s.matches(&labels(&[
            ("site", "lab"),
            ("zone", "a"),
            ("gpu", "1"),
            ("old", "y")
        ])));
        assert!(!s.matches(&labels(&[("site", "lab"), ("zone", "a")])));
    }

    #[test]
    fn becomes_a_label_selector() {
        let ls: LabelSelector = parse("site==lab,zone notin (x)").unwrap().into();
        assert_eq!(
            ls.match_labels,
            Some(BTreeMap::from([("site".into(), "lab".into())]))
        );
        let exprs = ls.match_expressions.expect("expressions");
        assert_eq!(exprs[0].operator, "NotIn");
        assert_eq!(exprs[0].values, Some(vec!["x".to_string()]));
    }

    #[test]
    fn all_selects_everything() {
        assert!(parse("all").unwrap().selects_all());
        assert!(parse("").unwrap().selects_all());
    }

    #[test]
    fn malformed_selectors_are_usage_errors() {
        for bad in ["a=b,", "zone in a,b", "zone in (a", "bad key=x", "=x"] {
            let err = parse(bad).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{bad}");
            assert!(err.to_string().contains(bad), "{bad}: {err}");
        }
    }
}
