//! Layering defaults, a file and the environment, and collecting every error.
//!
//! Hand-written rather than built on figment or config-rs, on purpose: the
//! loader keeps, for every key, where its value came from (file and line,
//! environment variable, flag) and reports every problem at once with that
//! source, the bad value and a fix ("did you mean" for unknown keys). Those
//! crates merge providers well but report the first error only, and point at
//! a provider at best, never at the line of a file; the layering itself is a
//! JSON merge of a few dozen lines here.

use crate::locate::{Format, find_line};
use crate::model::TaskerConfig;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// Maps whose keys are free (not checked against the defaults).
const OPEN_MAPS: &[&str] = &[
    "logging.modules",
    "auth.roles",
    "retention.namespaces",
    "rate_limits",
];
/// Prefix of configuration environment variables.
pub const ENV_PREFIX: &str = "TASKER__";

/// Where a value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// Built-in default.
    Default,
    /// A configuration file, with the key's line when found.
    File {
        /// File path.
        path: String,
        /// 1-based line.
        line: Option<u32>,
    },
    /// An environment variable.
    Env {
        /// Variable name.
        var: String,
    },
    /// A command-line flag.
    Flag {
        /// The flag, e.g. `--database`.
        name: String,
    },
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Default => f.write_str("default"),
            Source::File {
                path,
                line: Some(l),
            } => write!(f, "{path}:{l}"),
            Source::File { path, line: None } => f.write_str(path),
            Source::Env { var } => write!(f, "environment variable {var}"),
            Source::Flag { name } => write!(f, "flag {name}"),
        }
    }
}

/// One configuration problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Dotted key, e.g. `engine.lease_seconds` (empty for a whole-file problem).
    pub key: String,
    /// Where the value came from.
    pub source: Source,
    /// The offending value as written (None when the key is missing or the file unreadable).
    pub value: Option<String>,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub fix: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            write!(f, "{}: {}", self.source, self.message)?;
        } else {
            write!(f, "{}", self.key)?;
            if let Some(v) = &self.value {
                write!(f, " = {v}")?;
            }
            write!(f, " ({}): {}", self.source, self.message)?;
        }
        if !self.fix.is_empty() {
            write!(f, ". Fix: {}", self.fix)?;
        }
        Ok(())
    }
}

/// What to load besides the defaults.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// The configuration file, if any.
    pub file: Option<PathBuf>,
    /// Environment variables to consider (only `TASKER__…` ones are used).
    pub env: Vec<(String, String)>,
    /// Command-line flags, applied last: (dotted key, value, flag name).
    pub flags: Vec<(String, Value, String)>,
}

impl LoadOptions {
    /// The file from `explicit`, else `TASKER_CONFIG`; the process environment.
    pub fn from_process(explicit: Option<PathBuf>) -> Self {
        let env: Vec<(String, String)> = std::env::vars().collect();
        let file = explicit.or_else(|| {
            env.iter()
                .find(|(k, _)| k == "TASKER_CONFIG")
                .map(|(_, v)| PathBuf::from(v))
                .filter(|p| !p.as_os_str().is_empty())
        });
        LoadOptions {
            file,
            env,
            flags: Vec::new(),
        }
    }

    /// Adds a command-line override (applied after the file and the environment).
    pub fn flag(mut self, key: &str, value: impl Into<Value>, name: &str) -> Self {
        self.flags
            .push((key.to_string(), value.into(), name.to_string()));
        self
    }
}

/// A loaded configuration and the source of every value.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The effective configuration.
    pub config: TaskerConfig,
    sources: BTreeMap<String, Source>,
}

impl Loaded {
    /// Where `key` (dotted) got its value: the most specific source recorded
    /// for the key or one of its parents; for a table, the source of a key
    /// set inside it; `Default` otherwise.
    pub fn source_of(&self, key: &str) -> Source {
        let mut k = key;
        loop {
            if let Some(s) = self.sources.get(k) {
                return s.clone();
            }
            match k.rfind('.') {
                Some(i) => k = &k[..i],
                None => break,
            }
        }
        let inside = format!("{key}.");
        self.sources
            .range(inside.clone()..)
            .take_while(|(k, _)| k.starts_with(&inside))
            .map(|(_, s)| s.clone())
            .next()
            .unwrap_or(Source::Default)
    }

    /// The effective configuration, one `key = value  # source` line per
    /// setting, with secrets redacted (passwords in URLs, sensitive keys).
    pub fn show(&self) -> String {
        let masker = tasker_core::mask::Masker::new(&self.config.logging.sensitive_keys);
        let tree = serde_json::to_value(&self.config).unwrap_or(Value::Null);
        let mut leaves = Vec::new();
        flatten("", &tree, &mut leaves);
        let mut out = String::new();
        for (key, value) in leaves {
            let last = key.rsplit('.').next().unwrap_or(&key);
            let shown = if masker.is_sensitive(last) {
                format!("\"{}\"", tasker_core::mask::MASK)
            } else if key == "database.url" {
                value
                    .as_str()
                    .map(redact_url)
                    .map(|u| format!("\"{u}\""))
                    .unwrap_or_else(|| value.to_string())
            } else {
                // Lists of tables (`[[webhooks]]`) are one leaf: mask inside.
                masker.mask(&value).to_string()
            };
            out.push_str(&format!("{key} = {shown}  # {}\n", self.source_of(&key)));
        }
        out
    }
}

/// A URL with any password replaced by `***`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (authority, tail) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}{tail}"),
            None => url.to_string(),
        },
        None => url.to_string(),
    }
}

fn flatten(prefix: &str, v: &Value, out: &mut Vec<(String, Value)>) {
    match v {
        Value::Object(map) if !map.is_empty() && !OPEN_MAPS.contains(&prefix) => {
            for (k, child) in map {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, child, out);
            }
        }
        other => out.push((prefix.to_string(), other.clone())),
    }
}

/// Every leaf key of the defaults (what the documentation must list).
pub fn known_keys() -> Vec<String> {
    let tree = serde_json::to_value(TaskerConfig::default()).unwrap_or(Value::Null);
    let mut leaves = Vec::new();
    flatten("", &tree, &mut leaves);
    leaves.into_iter().map(|(k, _)| k).collect()
}

/// Loads and validates. Returns every problem found.
pub fn load(options: &LoadOptions) -> Result<Loaded, Vec<ConfigError>> {
    match load_with_problems(options) {
        (Some(loaded), errors) if errors.is_empty() => Ok(loaded),
        (_, errors) => Err(errors),
    }
}

/// Loads as far as it can: the effective configuration (a value that is
/// unknown or of the wrong type is left at its default) together with every
/// problem, for `tasker config show` on a broken configuration. `None` only
/// when the values could not be brought into shape at all.
pub fn load_with_problems(options: &LoadOptions) -> (Option<Loaded>, Vec<ConfigError>) {
    let defaults = serde_json::to_value(TaskerConfig::default()).unwrap_or(Value::Null);
    let mut tree = defaults.clone();
    let mut sources: BTreeMap<String, Source> = BTreeMap::new();
    // Where tables of the file start: only used to place unknown sections.
    let mut containers: BTreeMap<String, Source> = BTreeMap::new();
    let mut errors = Vec::new();

    if let Some(path) = &options.file {
        match read_file(path) {
            Ok((value, text, format)) => {
                let mut leaves = Vec::new();
                flatten("", &value, &mut leaves);
                for (key, _) in &leaves {
                    let parts: Vec<&str> = key.split('.').collect();
                    // The leaf and each enclosing table, so an unknown section
                    // is located at its header.
                    for depth in 1..=parts.len() {
                        let prefix = parts[..depth].join(".");
                        let line = find_line(&text, format, &parts[..depth]);
                        let source = Source::File {
                            path: path.display().to_string(),
                            line,
                        };
                        if depth == parts.len() {
                            sources.insert(prefix, source);
                        } else {
                            containers.entry(prefix).or_insert(source);
                        }
                    }
                }
                merge(&mut tree, value);
            }
            Err(e) => errors.push(e),
        }
    }

    for (var, raw) in &options.env {
        let Some(rest) = var.strip_prefix(ENV_PREFIX) else {
            continue;
        };
        let parts: Vec<String> = rest.split("__").map(|p| p.to_ascii_lowercase()).collect();
        if parts.iter().any(String::is_empty) {
            errors.push(ConfigError {
                key: String::new(),
                source: Source::Env { var: var.clone() },
                value: Some(raw.clone()),
                message: "malformed variable name".into(),
                fix: "use TASKER__SECTION__KEY, e.g. TASKER__ENGINE__LEASE_SECONDS".into(),
            });
            continue;
        }
        let value =
            serde_json::from_str::<Value>(raw).unwrap_or_else(|_| Value::String(raw.clone()));
        let mut overlay = value;
        for p in parts.iter().rev() {
            let mut m = Map::new();
            m.insert(p.clone(), overlay);
            overlay = Value::Object(m);
        }
        sources.insert(parts.join("."), Source::Env { var: var.clone() });
        merge(&mut tree, overlay);
    }

    for (key, value, name) in &options.flags {
        let mut overlay = value.clone();
        for p in key.split('.').rev() {
            let mut m = Map::new();
            m.insert(p.to_string(), overlay);
            overlay = Value::Object(m);
        }
        sources.insert(key.clone(), Source::Flag { name: name.clone() });
        merge(&mut tree, overlay);
    }

    let loaded_sources = sources;
    let source_of = |key: &str| {
        Loaded {
            config: TaskerConfig::default(),
            sources: loaded_sources.clone(),
        }
        .source_of(key)
    };

    // Unknown keys, all of them, with a suggestion.
    let mut unknown = Vec::new();
    find_unknown("", &tree, &defaults, &mut unknown);
    for (key, value) in &unknown {
        let suggestion = closest(key, &known_keys());
        let source = match containers.get(key) {
            Some(s) if !loaded_sources.contains_key(key) => s.clone(),
            _ => source_of(key),
        };
        errors.push(ConfigError {
            key: key.clone(),
            source,
            value: Some(value.to_string()),
            message: "unknown key".into(),
            fix: match suggestion {
                Some(s) => format!("did you mean `{s}`? (see docs/CONFIGURATION.md)"),
                None => "remove it (see docs/CONFIGURATION.md for every key)".into(),
            },
        });
        remove(&mut tree, key);
    }

    // Type errors, all of them: on each failure restore that key's default and retry.
    let mut config = None;
    for _ in 0..64 {
        match serde_path_to_error::deserialize::<_, TaskerConfig>(&tree) {
            Ok(c) => {
                config = Some(c);
                break;
            }
            Err(e) => {
                let key = e.path().to_string();
                let key = if key == "." { String::new() } else { key };
                let bad = get(&tree, &key).cloned();
                errors.push(ConfigError {
                    key: key.clone(),
                    source: source_of(&key),
                    value: bad.as_ref().map(Value::to_string),
                    message: e.inner().to_string(),
                    fix: match get(&defaults, &key) {
                        Some(d) => format!("use a value like the default, {d}"),
                        None => "see docs/CONFIGURATION.md".into(),
                    },
                });
                let restored = get(&defaults, &key).cloned().unwrap_or(Value::Null);
                if !set(&mut tree, &key, restored) {
                    break;
                }
            }
        }
    }
    let Some(config) = config else {
        return (None, errors);
    };
    let loaded = Loaded {
        config,
        sources: loaded_sources,
    };
    errors.extend(crate::validate::problems(&loaded));
    (Some(loaded), errors)
}

#[allow(clippy::result_large_err)] // cold path, once per start
fn read_file(path: &Path) -> Result<(Value, String, Format), ConfigError> {
    let shown = path.display().to_string();
    let err = |line: Option<u32>, message: String, fix: &str| ConfigError {
        key: String::new(),
        source: Source::File {
            path: shown.clone(),
            line,
        },
        value: None,
        message,
        fix: fix.to_string(),
    };
    let format = match path.extension().and_then(|e| e.to_str()) {
        Some("toml") => Format::Toml,
        Some("yaml" | "yml") => Format::Yaml,
        _ => {
            return Err(err(
                None,
                "unknown configuration format".into(),
                "name the file *.toml, *.yaml or *.yml",
            ));
        }
    };
    let text = std::fs::read_to_string(path).map_err(|e| {
        err(
            None,
            format!("cannot read: {e}"),
            "check the path and permissions",
        )
    })?;
    let value = match format {
        Format::Toml => toml::from_str::<toml::Table>(&text)
            .map_err(|e| {
                let line = e
                    .span()
                    .map(|s| text[..s.start.min(text.len())].matches('\n').count() as u32 + 1);
                err(
                    line,
                    format!("invalid TOML: {}", e.message()),
                    "fix the syntax",
                )
            })
            .and_then(|t| serde_json::to_value(t).map_err(|e| err(None, e.to_string(), ""))),
        Format::Yaml => serde_saphyr::from_str::<Value>(&text).map_err(|e| {
            let line = e.location().map(|l| l.line() as u32);
            let msg = e.to_string();
            err(
                line,
                format!("invalid YAML: {}", msg.lines().next().unwrap_or("")),
                "fix the syntax",
            )
        }),
    }?;
    let value = if value.is_null() {
        Value::Object(Map::new())
    } else {
        value
    };
    if !value.is_object() {
        return Err(err(
            None,
            "the file must be a mapping of sections".into(),
            "start with e.g. `[engine]` (TOML) or `engine:` (YAML)",
        ));
    }
    Ok((value, text, format))
}

fn merge(base: &mut Value, overlay: Value) {
    match (base, overlay) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(existing) if existing.is_object() && v.is_object() => merge(existing, v),
                    _ => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (b, o) => *b = o,
    }
}

fn find_unknown(prefix: &str, v: &Value, defaults: &Value, out: &mut Vec<(String, Value)>) {
    if OPEN_MAPS.contains(&prefix) {
        return;
    }
    if let (Value::Object(map), Value::Object(known)) = (v, defaults) {
        for (k, child) in map {
            let key = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            match known.get(k) {
                None => out.push((key, child.clone())),
                Some(d) => find_unknown(&key, child, d, out),
            }
        }
    }
}

fn get<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    if key.is_empty() {
        return Some(v);
    }
    key.split('.').try_fold(v, |cur, part| match cur {
        Value::Object(m) => m.get(part),
        Value::Array(a) => part.parse::<usize>().ok().and_then(|i| a.get(i)),
        _ => None,
    })
}

fn set(v: &mut Value, key: &str, new: Value) -> bool {
    if key.is_empty() {
        *v = new;
        return true;
    }
    let mut cur = v;
    let parts: Vec<&str> = key.split('.').collect();
    for (i, part) in parts.iter().enumerate() {
        let last = i + 1 == parts.len();
        cur = match cur {
            Value::Object(m) => {
                if last {
                    m.insert(part.to_string(), new);
                    return true;
                }
                match m.get_mut(*part) {
                    Some(c) => c,
                    None => return false,
                }
            }
            Value::Array(a) => {
                let Some(idx) = part.parse::<usize>().ok().filter(|&i| i < a.len()) else {
                    return false;
                };
                if last {
                    a[idx] = new;
                    return true;
                }
                &mut a[idx]
            }
            _ => return false,
        };
    }
    false
}

fn remove(v: &mut Value, key: &str) {
    let (parent, last) = match key.rsplit_once('.') {
        Some((p, l)) => (p, l),
        None => ("", key),
    };
    if let Some(Value::Object(m)) = get_mut(v, parent) {
        m.remove(last);
    }
}

fn get_mut<'a>(v: &'a mut Value, key: &str) -> Option<&'a mut Value> {
    if key.is_empty() {
        return Some(v);
    }
    key.split('.').try_fold(v, |cur, part| match cur {
        Value::Object(m) => m.get_mut(part),
        _ => None,
    })
}

/// The known key nearest to `key` by edit distance, if close enough to be a typo.
fn closest(key: &str, known: &[String]) -> Option<String> {
    known
        .iter()
        .map(|k| (strsim::levenshtein(key, k), k))
        .filter(|(d, k)| *d <= 3.max(k.len() / 5))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k.clone())
}
