//! The one format of every timestamp Tasker shows: RFC 3339 in UTC with
//! exactly six fractional digits (`2026-01-02T03:04:05.123456Z`), the
//! precision the stores keep. API views serialise their times through
//! [`micros`] / [`micros_opt`], so a time read back from the database and one
//! taken from the clock look alike.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serializer;

/// `t` as RFC 3339, UTC, microseconds.
pub fn format(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// `#[serde(serialize_with = "tasker_core::time::micros")]`
pub fn micros<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format(t))
}

/// [`micros`] for optional times (`null` when absent).
pub fn micros_opt<S: Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => s.serialize_str(&format(t)),
        None => s.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    #[test]
    fn always_six_digits() {
        let t = chrono::Utc
            .timestamp_opt(1_700_000_000, 123_456_789)
            .single()
            .unwrap_or_default();
        assert_eq!(super::format(&t), "2023-11-14T22:13:20.123456Z");
        let whole = chrono::Utc
            .timestamp_opt(1_700_000_000, 0)
            .single()
            .unwrap_or_default();
        assert_eq!(super::format(&whole), "2023-11-14T22:13:20.000000Z");
    }
}
