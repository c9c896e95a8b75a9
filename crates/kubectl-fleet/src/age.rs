//! Durations shown the way kubectl shows ages (`45s`, `3m12s`, `5h`, `2d`).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

/// kubectl's `HumanDuration`, in whole seconds. Negative values (clock
/// skew) read as `0s`.
pub fn human(seconds: i64) -> String {
    let s = seconds.max(0);
    let (m, h, d) = (s / 60, s / 3600, s / 86_400);
    if s < 120 {
        format!("{s}s")
    } else if m < 10 {
        match s % 60 {
            0 => format!("{m}m"),
            r => format!("{m}m{r}s"),
        }
    } else if h < 3 {
        format!("{m}m")
    } else if h < 8 {
        match m % 60 {
            0 => format!("{h}h"),
            r => format!("{h}h{r}m"),
        }
    } else if h < 48 {
        format!("{h}h")
    } else if d < 8 {
        match h % 24 {
            0 => format!("{d}d"),
            r => format!("{d}d{r}h"),
        }
    } else if d < 365 * 2 {
        format!("{d}d")
    } else {
        format!("{}y", d / 365)
    }
}

/// Time from `t` to `now`.
pub fn since(t: &Time, now: Timestamp) -> String {
    human(now.as_second() - t.0.as_second())
}

/// Time from `now` to an RFC 3339 instant: `in 30d`, `expired 2h ago`, or
/// `None` when `rfc3339` does not parse.
pub fn until(rfc3339: &str, now: Timestamp) -> Option<(String, i64)> {
    let at: Timestamp = rfc3339.parse().ok()?;
    let left = at.as_second() - now.as_second();
    let text = if left >= 0 {
        format!("in {}", human(left))
    } else {
        format!("expired {} ago", human(-left))
    };
    Some((text, left))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_kubectl() {
        for (s, want) in [
            (-3, "0s"),
            (45, "45s"),
            (119, "119s"),
            (192, "3m12s"),
            (600, "10m"),
            (3 * 3600 + 120, "3h2m"),
            (20 * 3600, "20h"),
            (3 * 86_400 + 3600, "3d1h"),
            (40 * 86_400, "40d"),
            (800 * 86_400, "2y"),
        ] {
            assert_eq!(human(s), want, "{s}");
        }
    }

    #[test]
    fn until_reads_future_and_past() {
        let now: Timestamp = "2026-12-01T00:00:00Z".parse().unwrap();
        assert_eq!(
            until("2026-12-31T00:00:00Z", now),
            Some(("in 30d".to_string(), 30 * 86_400))
        );
        assert_eq!(
            until("2026-11-30T22:00:00Z", now).map(|(t, _)| t),
            Some("expired 120m ago".to_string())
        );
        assert_eq!(until("soon", now), None);
    }
}
