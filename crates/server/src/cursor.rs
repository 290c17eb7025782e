//! The opaque `after` cursor of task lists: `<sort>.<key>.<id>`, URL-safe
//! without escaping. `<key>` is the sort column's value of the last row of
//! the previous page (microseconds for times, hex of the UTF-8 for text) and
//! `<id>` its id, so the next page is an index range scan from there.

use tasker_store::{CursorKey, TaskCursor, TaskRow, TaskSort};
use uuid::Uuid;

fn sort_code(sort: TaskSort) -> &'static str {
    match sort {
        TaskSort::CreatedAt => "created_at",
        TaskSort::UpdatedAt => "updated_at",
        TaskSort::Status => "status",
        TaskSort::Name => "name",
        TaskSort::Namespace => "namespace",
    }
}

/// The cursor that continues a list sorted by `sort` after `row`.
pub fn encode(sort: TaskSort, row: &TaskRow) -> String {
    let c = TaskCursor::of(sort, row);
    let key = match &c.key {
        CursorKey::Time(t) => t.timestamp_micros().to_string(),
        CursorKey::Text(s) => s.bytes().map(|b| format!("{b:02x}")).collect(),
    };
    format!("{}.{key}.{}", sort_code(sort), c.id.simple())
}

/// The cursor back, checked against the list's sort key; the message says
/// what is wrong.
pub fn decode(s: &str, sort: TaskSort) -> Result<TaskCursor, String> {
    let mut parts = s.split('.');
    let (Some(code), Some(key), Some(id), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("not a cursor from a previous page".into());
    };
    if code != sort_code(sort) {
        return Err(format!(
            "the cursor continues a list sorted by `{code}`, not `{}`",
            sort_code(sort)
        ));
    }
    let id = Uuid::try_parse(id).map_err(|_| "not a cursor from a previous page".to_string())?;
    let key = match sort {
        TaskSort::CreatedAt | TaskSort::UpdatedAt => key
            .parse::<i64>()
            .ok()
            .and_then(chrono::DateTime::from_timestamp_micros)
            .map(CursorKey::Time),
        _ => text(key).map(CursorKey::Text),
    }
    .ok_or_else(|| "not a cursor from a previous page".to_string())?;
    Ok(TaskCursor { key, id })
}

fn text(hex: &str) -> Option<String> {
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    let bytes = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect::<Option<Vec<u8>>>()?;
    String::from_utf8(bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_cursors_are_errors_not_panics() {
        for bad in [
            "",
            "x",
            "name.zz.0",
            "name.6.1",
            "created_at.abc.1",
            "a.b.c.d",
            "name.e282.",
            "name.ffff.00000000000000000000000000000000",
        ] {
            assert!(decode(bad, TaskSort::Name).is_err(), "{bad}");
        }
        assert!(
            decode(
                "created_at.1.00000000000000000000000000000000",
                TaskSort::Name
            )
            .is_err()
        );
        let ok = decode(
            "name.616263.00000000000000000000000000000001",
            TaskSort::Name,
        )
        .unwrap();
        assert_eq!(ok.key, CursorKey::Text("abc".into()));
    }
}
