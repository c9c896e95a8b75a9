//! Kubernetes `resource.Quantity` syntax and values, as the API server
//! parses them (k8s.io/apimachinery `pkg/api/resource/quantity.go`,
//! `ParseQuantity`, and `suffix.go`):
//!
//! ```text
//! <quantity>        ::= <signedNumber><suffix>
//! <number>          ::= <digits> | <digits>.<digits> | <digits>. | .<digits>
//! <signedNumber>    ::= <number> | "+"<number> | "-"<number>
//! <suffix>          ::= <binarySI> | <decimalExponent> | <decimalSI>
//! <binarySI>        ::= Ki | Mi | Gi | Ti | Pi | Ei
//! <decimalSI>       ::= n | u | m | "" | k | M | G | T | P | E
//! <decimalExponent> ::= "e" <signedNumber> | "E" <signedNumber>
//! ```
//!
//! Upstream quirks kept on purpose (so we refuse exactly what the API
//! server refuses): a sign or zeros alone (`+`, `-`, `000`), a lone `.` and
//! a suffix without digits (`Gi`) are zero; `1.` and `.5` are numbers; `1E` is 10^18 while `1E3` is 1000;
//! binary quantities are capped at 2^63-1 units; values are kept to nano
//! precision, a finer non-zero value rounding away from zero (`0.9n` is
//! `1n`). One deliberate difference: surrounding whitespace, which the API
//! server's JSON decoder trims, is refused (nobody means it).
//!
//! Values are exact (nano units in a `u128`); a decimal value beyond that
//! range (above ~1.7e29) is [`Magnitude::Huge`] and compares above every
//! exact value.

use std::cmp::Ordering;

/// Why a string is not a quantity (the API server's three errors).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    #[error("quantities must match <number><suffix>, e.g. 500m, 1.5, 1Gi, 1e3")]
    Format,
    #[error("unknown suffix: use n, u, m, k, M, G, T, P, E, Ki, Mi, Gi, Ti, Pi, Ei or e<exponent>")]
    Suffix,
}

/// Size of a parsed quantity, in nano units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Magnitude {
    Exact(u128),
    /// Too large to hold exactly; larger than every `Exact`.
    Huge,
}

/// A parsed quantity: sign and magnitude.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parsed {
    pub negative: bool,
    pub magnitude: Magnitude,
}

const NANOS_PER_UNIT: u128 = 1_000_000_000;
/// `math.MaxInt64` units, the cap of binary-SI quantities.
const BINARY_CAP_NANOS: u128 = (i64::MAX as u128) * NANOS_PER_UNIT;

impl Parsed {
    pub fn is_zero(&self) -> bool {
        self.magnitude == Magnitude::Exact(0)
    }

    pub fn is_negative(&self) -> bool {
        self.negative && !self.is_zero()
    }

    /// Whether the value is a whole number of units (extended resources
    /// must be).
    pub fn is_integer(&self) -> bool {
        match self.magnitude {
            Magnitude::Exact(n) => n % NANOS_PER_UNIT == 0,
            Magnitude::Huge => true,
        }
    }

    /// Numeric order; `None` when both are too large to compare exactly.
    pub fn compare(&self, other: &Parsed) -> Option<Ordering> {
        let signed = |p: &Parsed| if p.is_negative() { -1i8 } else { 1 };
        match (signed(self), signed(other)) {
            (-1, 1) => return Some(Ordering::Less),
            (1, -1) => return Some(Ordering::Greater),
            _ => {}
        }
        let order = match (self.magnitude, other.magnitude) {
            (Magnitude::Huge, Magnitude::Huge) => return None,
            (a, b) => a.cmp(&b),
        };
        Some(if self.is_negative() {
            order.reverse()
        } else {
            order
        })
    }
}

/// Parses `s` the way `resource.ParseQuantity` does.
pub fn parse(s: &str) -> Result<Parsed, QuantityError> {
    if s.is_empty() {
        return Err(QuantityError::Format);
    }
    let b = s.as_bytes();
    let mut pos = 0;
    let negative = match b[0] {
        b'-' => {
            pos = 1;
            true
        }
        b'+' => {
            pos = 1;
            false
        }
        _ => false,
    };
    // Leading zeros; only zeros (or nothing) after the sign is zero.
    while pos < b.len() && b[pos] == b'0' {
        pos += 1;
    }
    if pos == b.len() {
        return Ok(Parsed {
            negative,
            magnitude: Magnitude::Exact(0),
        });
    }
    let num_start = pos;
    while pos < b.len() && b[pos].is_ascii_digit() {
        pos += 1;
    }
    let num = &s[num_start..pos];
    let mut denom = "";
    if pos < b.len() && b[pos] == b'.' {
        pos += 1;
        let start = pos;
        while pos < b.len() && b[pos].is_ascii_digit() {
            pos += 1;
        }
        denom = &s[start..pos];
    }
    // The suffix: letters of "eEinumkKMGTP", an optional sign, digits, end.
    let suffix_start = pos;
    while pos < b.len() && b"eEinumkKMGTP".contains(&b[pos]) {
        pos += 1;
    }
    if pos < b.len() && matches!(b[pos], b'+' | b'-') {
        pos += 1;
    }
    while pos < b.len() && b[pos].is_ascii_digit() {
        pos += 1;
    }
    if pos != b.len() {
        return Err(QuantityError::Format);
    }
    let suffix = interpret_suffix(&s[suffix_start..])?;
    Ok(Parsed {
        negative,
        magnitude: magnitude(num, denom, suffix),
    })
}

#[derive(Debug, Clone, Copy)]
enum Suffix {
    /// `10^exponent`.
    Decimal(i64),
    /// `2^exponent`.
    Binary(u32),
}

fn interpret_suffix(suffix: &str) -> Result<Suffix, QuantityError> {
    let decimal = match suffix {
        "" => Some(0),
        "n" => Some(-9),
        "u" => Some(-6),
        "m" => Some(-3),
        "k" => Some(3),
        "M" => Some(6),
        "G" => Some(9),
        "T" => Some(12),
        "P" => Some(15),
        "E" => Some(18),
        _ => None,
    };
    if let Some(e) = decimal {
        return Ok(Suffix::Decimal(e));
    }
    let binary = match suffix {
        "Ki" => Some(10),
        "Mi" => Some(20),
        "Gi" => Some(30),
        "Ti" => Some(40),
        "Pi" => Some(50),
        "Ei" => Some(60),
        _ => None,
    };
    if let Some(e) = binary {
        return Ok(Suffix::Binary(e));
    }
    // `e<int64>` / `E<int64>` (Go's strconv.ParseInt accepts a sign).
    match suffix.strip_prefix(['e', 'E']) {
        Some(exp) if !exp.is_empty() => exp
            .parse::<i64>()
            .map(Suffix::Decimal)
            .map_err(|_| QuantityError::Suffix),
        _ => Err(QuantityError::Suffix),
    }
}

/// `num.denom × suffix` in nano units, rounded up to a whole nano.
fn magnitude(num: &str, denom: &str, suffix: Suffix) -> Magnitude {
    // All significant digits, with the decimal point `denom.len()` from the
    // right; trailing zeros dropped (they only move the point).
    let digits = format!("{num}{denom}");
    let digits = digits.trim_start_matches('0');
    let trimmed = digits.trim_end_matches('0');
    if trimmed.is_empty() {
        return Magnitude::Exact(0);
    }
    let scale = i64::try_from(digits.len() - trimmed.len()).unwrap_or(i64::MAX)
        - i64::try_from(denom.len()).unwrap_or(i64::MAX);
    match suffix {
        // value = trimmed × 10^(exponent + scale), in nanos: + 9.
        Suffix::Decimal(exponent) => {
            let shift = exponent.saturating_add(scale).saturating_add(9);
            decimal_nanos(trimmed, shift)
        }
        // value = trimmed × 10^scale × 2^exponent (scale <= 0 here when
        // there is a fraction), capped at 2^63-1 units.
        Suffix::Binary(exponent) => {
            let nanos = binary_nanos(trimmed, scale.saturating_add(9), exponent);
            match nanos {
                Magnitude::Exact(n) if n <= BINARY_CAP_NANOS => Magnitude::Exact(n),
                Magnitude::Exact(_) | Magnitude::Huge => Magnitude::Exact(BINARY_CAP_NANOS),
            }
        }
    }
}

/// `digits × 10^shift`, rounded up (digits has no leading/trailing zeros).
fn decimal_nanos(digits: &str, shift: i64) -> Magnitude {
    if shift >= 0 {
        let Ok(shift) = u32::try_from(shift) else {
            return Magnitude::Huge;
        };
        return digits
            .parse::<u128>()
            .ok()
            .and_then(|d| 10u128.checked_pow(shift).and_then(|p| d.checked_mul(p)))
            .map_or(Magnitude::Huge, Magnitude::Exact);
    }
    // Drop `-shift` digits from the right; anything dropped is non-zero
    // (no trailing zeros), so round up.
    let keep = i64::try_from(digits.len())
        .unwrap_or(i64::MAX)
        .saturating_add(shift);
    if keep <= 0 {
        return Magnitude::Exact(1);
    }
    let keep = usize::try_from(keep).unwrap_or(usize::MAX);
    digits[..keep]
        .parse::<u128>()
        .ok()
        .and_then(|d| d.checked_add(1))
        .map_or(Magnitude::Huge, Magnitude::Exact)
}

/// `digits × 10^shift × 2^exponent`, rounded up.
fn binary_nanos(digits: &str, shift: i64, exponent: u32) -> Magnitude {
    let Ok(d) = digits.parse::<u128>() else {
        return Magnitude::Huge;
    };
    let Some(d) = 1u128.checked_shl(exponent).and_then(|p| d.checked_mul(p)) else {
        return Magnitude::Huge;
    };
    if shift >= 0 {
        let Ok(shift) = u32::try_from(shift) else {
            return Magnitude::Huge;
        };
        return 10u128
            .checked_pow(shift)
            .and_then(|p| d.checked_mul(p))
            .map_or(Magnitude::Huge, Magnitude::Exact);
    }
    let Some(divisor) = u32::try_from(-shift)
        .ok()
        .and_then(|s| 10u128.checked_pow(s))
    else {
        // More than 38 fractional digits below the nano: a tiny non-zero.
        return Magnitude::Exact(1);
    };
    Magnitude::Exact(d.div_ceil(divisor))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nanos(s: &str) -> u128 {
        match parse(s).unwrap_or_else(|e| panic!("{s}: {e}")).magnitude {
            Magnitude::Exact(n) => n,
            Magnitude::Huge => panic!("{s} is huge"),
        }
    }

    const G: u128 = NANOS_PER_UNIT;

    /// The accepted forms of the upstream grammar and test table
    /// (quantity_test.go `TestQuantityParse`).
    #[test]
    fn values_match_the_upstream_parser() {
        for (s, want) in [
            ("0", 0),
            ("0n", 0),
            ("0Ki", 0),
            ("1", G),
            ("1m", G / 1000),
            ("500m", G / 2),
            ("1.5", 3 * G / 2),
            ("1.", G),
            (".5", G / 2),
            ("1k", 1000 * G),
            ("1M", 1_000_000 * G),
            ("1G", 1_000_000_000 * G),
            ("1E", 10u128.pow(18) * G),
            ("1Ki", 1024 * G),
            ("1.5Gi", 1536 * 1024 * 1024 * G),
            ("1e3", 1000 * G),
            ("1E3", 1000 * G),
            ("1e+3", 1000 * G),
            ("1e-3", G / 1000),
            ("100u", 100_000),
            ("1n", 1),
            // Sub-nano values round away from zero.
            ("0.9n", 1),
            ("1.0000000001", G + 1),
            ("0.1Ki", 1024 * G / 10),
            ("007", 7 * G),
        ] {
            assert_eq!(nanos(s), want, "{s}");
        }
    }

    #[test]
    fn upstream_quirks_are_kept() {
        // A suffix without a number is zero too ("Gi" is 0 x 2^30).
        for zero in ["+", "-", "000", "-0", ".", "0.0", "Gi", "m"] {
            let p = parse(zero).unwrap_or_else(|e| panic!("{zero}: {e}"));
            assert!(p.is_zero(), "{zero}");
            assert!(!p.is_negative(), "{zero}");
        }
        // Binary quantities are capped at 2^63-1 units.
        assert_eq!(nanos("8Ei"), BINARY_CAP_NANOS);
        assert_eq!(nanos("16Ei"), BINARY_CAP_NANOS);
        // Decimal ones are not: beyond u128 nanos they are Huge.
        assert_eq!(parse("1e40").unwrap().magnitude, Magnitude::Huge);
    }

    /// The rejected forms: `ErrFormatWrong` and `ErrSuffix` upstream.
    #[test]
    fn malformed_quantities_are_refused_like_the_api_server() {
        for (s, want) in [
            ("", QuantityError::Format),
            ("banana", QuantityError::Format),
            ("lots", QuantityError::Format),
            ("1.2.3", QuantityError::Format),
            ("1 Gi", QuantityError::Format),
            (" 1", QuantityError::Format),
            ("1Gb", QuantityError::Format),
            ("1e3Ki", QuantityError::Format),
            ("1x", QuantityError::Format),
            ("1GB", QuantityError::Format),
            ("--1", QuantityError::Suffix),
            ("1K", QuantityError::Suffix),
            ("1e", QuantityError::Suffix),
            ("1e+", QuantityError::Suffix),
            ("1ee3", QuantityError::Suffix),
            ("1m3", QuantityError::Suffix),
            ("1iK", QuantityError::Suffix),
            ("1e99999999999999999999", QuantityError::Suffix),
        ] {
            assert_eq!(parse(s), Err(want), "{s:?}");
        }
    }

    #[test]
    fn comparison_is_numeric_not_textual() {
        let cmp = |a: &str, b: &str| parse(a).unwrap().compare(&parse(b).unwrap());
        assert_eq!(cmp("1Gi", "1073741824"), Some(Ordering::Equal));
        assert_eq!(cmp("1.5Gi", "1536Mi"), Some(Ordering::Equal));
        assert_eq!(cmp("100m", "0.1"), Some(Ordering::Equal));
        assert_eq!(cmp("128Mi", "64Mi"), Some(Ordering::Greater));
        assert_eq!(cmp("1G", "1Gi"), Some(Ordering::Less));
        assert_eq!(cmp("-1", "0"), Some(Ordering::Less));
        assert_eq!(cmp("-2", "-1"), Some(Ordering::Less));
        assert_eq!(cmp("1e40", "1"), Some(Ordering::Greater));
        assert_eq!(cmp("1e40", "1e41"), None);
        assert!(parse("-1").unwrap().is_negative());
        assert!(parse("2").unwrap().is_integer());
        assert!(!parse("1500m").unwrap().is_integer());
    }
}
