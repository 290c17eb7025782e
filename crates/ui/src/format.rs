//! How values are shown: durations, times, JSON (masked by the same rules
//! as logs), and text escaped for HTML and SVG built outside templates.

use chrono::{DateTime, Utc};
use serde_json::Value;
use tasker_core::mask::Masker;
use tasker_store::StepRow;

/// `1.2 s`, `340 ms`, `3 m 05 s`, `2 h 01 m`.
pub fn duration(ms: i64) -> String {
    let ms = ms.max(0);
    if ms < 1000 {
        format!("{ms} ms")
    } else if ms < 60_000 {
        format!("{:.1} s", ms as f64 / 1000.0)
    } else if ms < 3_600_000 {
        format!("{} m {:02} s", ms / 60_000, (ms / 1000) % 60)
    } else {
        format!("{} h {:02} m", ms / 3_600_000, (ms / 60_000) % 60)
    }
}

/// How long a step's last attempt took (or has been running), if it started.
pub fn step_duration_ms(s: &StepRow, now: DateTime<Utc>) -> Option<i64> {
    let start = s.last_attempted_at?;
    let end = s.completed_at.unwrap_or(now);
    Some((end - start).num_milliseconds())
}

/// A time as `2026-11-28 21:03:04 UTC`.
pub fn time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// A time as `2026-11-28T21:03:04Z` (for `<time datetime>`).
pub fn iso(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Pretty JSON with values under sensitive keys masked (`logging.sensitive_keys`).
pub fn masked_json(masker: &Masker, v: &Value) -> String {
    serde_json::to_string_pretty(&masker.mask(v)).unwrap_or_else(|_| "null".into())
}

/// Escapes text for HTML and SVG (element content and quoted attributes).
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    esc_into(&mut out, s);
    out
}

/// [`esc`], appending to `out`.
pub fn esc_into(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
}

/// At most `n` characters, with an ellipsis when cut.
pub fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(n.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

/// A JSON value as nested definition lists (for the system page), escaped.
pub fn json_dl(v: &Value) -> String {
    let mut out = String::new();
    json_dl_into(&mut out, v);
    out
}

fn json_dl_into(out: &mut String, v: &Value) {
    match v {
        Value::Object(map) if !map.is_empty() => {
            out.push_str("<dl class=\"kv\">");
            for (k, v) in map {
                out.push_str("<dt>");
                esc_into(out, &k.replace('_', " "));
                out.push_str("</dt><dd>");
                json_dl_into(out, v);
                out.push_str("</dd>");
            }
            out.push_str("</dl>");
        }
        Value::Array(items) if !items.is_empty() => {
            out.push_str("<ul>");
            for i in items {
                out.push_str("<li>");
                json_dl_into(out, i);
                out.push_str("</li>");
            }
            out.push_str("</ul>");
        }
        Value::String(s) => esc_into(out, s),
        Value::Null => out.push('—'),
        other => esc_into(out, &other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_well() {
        assert_eq!(duration(340), "340 ms");
        assert_eq!(duration(1234), "1.2 s");
        assert_eq!(duration(185_000), "3 m 05 s");
        assert_eq!(duration(7_260_000), "2 h 01 m");
        assert_eq!(duration(-5), "0 ms");
    }

    #[test]
    fn escaping_covers_markup_and_quotes() {
        assert_eq!(
            esc(r#"<script>alert("x")</script>&'"#),
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;&#39;"
        );
        assert_eq!(truncate("abcdef", 4), "abc…");
        let dl = json_dl(&serde_json::json!({"a_b": ["<i>", null]}));
        assert_eq!(
            dl,
            "<dl class=\"kv\"><dt>a b</dt><dd><ul><li>&lt;i&gt;</li><li>—</li></ul></dd></dl>"
        );
    }
}
