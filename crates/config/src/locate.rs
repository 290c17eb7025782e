//! Finding the line of a key in a configuration file, for error messages.
//!
//! A small scan rather than a span-aware parser: it understands TOML tables
//! (`[a.b]`), `key = value` lines and dotted keys, and YAML block mappings by
//! indentation. That covers configuration files as people write them; when it
//! cannot find a key, the error still names the file.

/// The file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// TOML.
    Toml,
    /// YAML.
    Yaml,
}

/// 1-based line of the key at `path` (e.g. `["engine", "lease_seconds"]`).
pub fn find_line(text: &str, format: Format, path: &[&str]) -> Option<u32> {
    match format {
        Format::Toml => find_toml(text, path),
        Format::Yaml => find_yaml(text, path),
    }
}

fn find_toml(text: &str, path: &[&str]) -> Option<u32> {
    let mut table: Vec<String> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        if let Some(inner) = line.strip_prefix('[').and_then(|l| l.split(']').next()) {
            table = inner
                .trim_matches('[')
                .split('.')
                .map(|s| s.trim().trim_matches('"').to_string())
                .collect();
            if table.iter().map(String::as_str).eq(path.iter().copied()) {
                return Some(i as u32 + 1);
            }
            continue;
        }
        let Some((key, _)) = line.split_once('=') else {
            continue;
        };
        let mut full = table.clone();
        full.extend(
            key.trim()
                .split('.')
                .map(|s| s.trim().trim_matches('"').to_string()),
        );
        if full.len() >= path.len() && full.iter().zip(path).all(|(a, b)| a == b) {
            return Some(i as u32 + 1);
        }
    }
    None
}

fn find_yaml(text: &str, path: &[&str]) -> Option<u32> {
    let mut depth = 0usize;
    let mut parent_indent: Option<usize> = None;
    for (i, raw) in text.lines().enumerate() {
        let trimmed = raw.trim_start();
        if trimmed.starts_with('#') || trimmed.is_empty() {
            continue;
        }
        let indent = raw.len() - trimmed.len();
        if let Some(p) = parent_indent
            && indent <= p
        {
            return None; // left the parent's block without finding the key
        }
        let Some((key, _)) = trimmed.split_once(':') else {
            continue;
        };
        if key.trim().trim_matches('"').trim_matches('\'') == path[depth] {
            if depth + 1 == path.len() {
                return Some(i as u32 + 1);
            }
            depth += 1;
            parent_indent = Some(indent);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_tables_keys_and_dotted_keys() {
        let t = "environment = \"x\"\n\n[engine]\n# c\nlease_seconds = 3\n\n[backoff]\nmax_backoff_seconds = 1\nlogging.level = \"debug\"\n";
        assert_eq!(find_line(t, Format::Toml, &["environment"]), Some(1));
        assert_eq!(find_line(t, Format::Toml, &["engine"]), Some(3));
        assert_eq!(
            find_line(t, Format::Toml, &["engine", "lease_seconds"]),
            Some(5)
        );
        assert_eq!(
            find_line(t, Format::Toml, &["backoff", "max_backoff_seconds"]),
            Some(8)
        );
        assert_eq!(find_line(t, Format::Toml, &["engine", "nope"]), None);
    }

    #[test]
    fn yaml_blocks() {
        let y = "engine:\n  max_concurrent_steps: 4\n  lease_seconds: 2\nbackoff:\n  lease_seconds: 9\n";
        assert_eq!(
            find_line(y, Format::Yaml, &["engine", "lease_seconds"]),
            Some(3)
        );
        assert_eq!(
            find_line(y, Format::Yaml, &["backoff", "lease_seconds"]),
            Some(5)
        );
        assert_eq!(find_line(y, Format::Yaml, &["engine", "missing"]), None);
    }
}
