//! Schedules: a template that runs by itself, on a cron expression or a
//! fixed interval (docs/FLOW_CONTROL.md, "Schedules").
//!
//! Pure: parsing and checking a [`ScheduleSpec`], the fire times ("ticks")
//! it has between two instants, which of them are due under its
//! [`CatchUp`] mode, and the context a tick's task gets. Storing ticks (one
//! task per tick, across processes) is the store's job, running the loop
//! the engine's.

use chrono::{DateTime, Duration, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::str::FromStr;

/// Longest interval of an `every_seconds` schedule: one year.
pub const MAX_EVERY_SECONDS: u64 = 366 * 86_400;
/// Widest catch-up window: 30 days.
pub const MAX_CATCH_UP_WINDOW_SECONDS: u64 = 30 * 86_400;
/// Most ticks one pass fires for one schedule under `catch_up = all` (the
/// next pass continues where it stopped).
pub const MAX_TICKS_PER_PASS: usize = 100;

/// What happens to ticks missed while no process was running.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CatchUp {
    /// A tick more than `late_after` old is skipped.
    None,
    /// Only the newest missed tick within the catch-up window fires.
    #[default]
    Latest,
    /// Every missed tick within the catch-up window fires, oldest first.
    All,
}

impl CatchUp {
    /// The name used in files, the API and the database.
    pub fn as_str(self) -> &'static str {
        match self {
            CatchUp::None => "none",
            CatchUp::Latest => "latest",
            CatchUp::All => "all",
        }
    }

    /// Parses [`CatchUp::as_str`].
    pub fn parse(s: &str) -> Option<CatchUp> {
        match s {
            "none" => Some(CatchUp::None),
            "latest" => Some(CatchUp::Latest),
            "all" => Some(CatchUp::All),
            _ => None,
        }
    }
}

/// A schedule as written in a template file (`schedules:`) or sent to
/// `POST /tasker/schedules`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleSpec {
    /// Unique name (letters, digits, `_`, `-`, `.`).
    pub name: String,
    /// Namespace of the template to run (default `default`).
    #[serde(default = "default_namespace")]
    pub namespace: String,
    /// Name of the template to run.
    pub template: String,
    /// Exact template version; the latest registered when absent.
    #[serde(default)]
    pub version: Option<String>,
    /// Cron expression: 5 fields, or 6 with seconds first.
    #[serde(default)]
    pub cron: Option<String>,
    /// IANA time zone the cron expression is read in (default `UTC`).
    #[serde(default)]
    pub timezone: Option<String>,
    /// Fixed interval instead of a cron expression.
    #[serde(default)]
    pub every_seconds: Option<u64>,
    /// Missed ticks: `none`, `latest` (default) or `all`.
    #[serde(default)]
    pub catch_up: CatchUp,
    /// How far back missed ticks are looked for (default: the engine's
    /// `scheduler.catch_up_window_seconds`).
    #[serde(default)]
    pub catch_up_window_seconds: Option<u64>,
    /// The context of each task; string values may hold the placeholders
    /// of [`render_context`].
    #[serde(default = "empty_object")]
    pub context: Value,
}

fn default_namespace() -> String {
    crate::template::DEFAULT_NAMESPACE.to_string()
}

fn empty_object() -> Value {
    Value::Object(Default::default())
}

/// A problem with a schedule: the field and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleError {
    /// The field, e.g. `cron`.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

impl std::fmt::Display for ScheduleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

fn bad(field: &str, message: impl Into<String>) -> ScheduleError {
    ScheduleError {
        field: field.into(),
        message: message.into(),
    }
}

/// When a schedule fires, compiled from its spec.
#[derive(Debug, Clone)]
pub enum Timer {
    /// A cron expression read in a time zone.
    Cron(Box<croner::Cron>, chrono_tz::Tz),
    /// Every `n` seconds from the schedule's anchor.
    Every(i64),
}

impl ScheduleSpec {
    /// Checks every field and compiles the timer.
    pub fn compile(&self) -> Result<Timer, ScheduleError> {
        crate::template::check_name(&self.name).map_err(|m| bad("name", m))?;
        crate::template::check_name(&self.namespace).map_err(|m| bad("namespace", m))?;
        crate::template::check_name(&self.template).map_err(|m| bad("template", m))?;
        if let Some(v) = &self.version {
            semver::Version::parse(v)
                .map_err(|e| bad("version", format!("`{v}` is not a semantic version: {e}")))?;
        }
        if !self.context.is_object() {
            return Err(bad("context", "must be a JSON object"));
        }
        check_placeholders(&self.context).map_err(|m| bad("context", m))?;
        if let Some(w) = self.catch_up_window_seconds
            && (w == 0 || w > MAX_CATCH_UP_WINDOW_SECONDS)
        {
            return Err(bad(
                "catch_up_window_seconds",
                format!("must be between 1 and {MAX_CATCH_UP_WINDOW_SECONDS} (30 days)"),
            ));
        }
        match (&self.cron, self.every_seconds) {
            (Some(_), Some(_)) => Err(bad(
                "every_seconds",
                "give either `cron` or `every_seconds`, not both",
            )),
            (None, None) => Err(bad("cron", "give `cron` or `every_seconds`")),
            (None, Some(n)) => {
                if self.timezone.is_some() {
                    return Err(bad(
                        "timezone",
                        "only a `cron` schedule has a time zone (an interval is the same everywhere)",
                    ));
                }
                if n == 0 || n > MAX_EVERY_SECONDS {
                    return Err(bad(
                        "every_seconds",
                        format!("must be between 1 and {MAX_EVERY_SECONDS} (one year)"),
                    ));
                }
                Ok(Timer::Every(n as i64))
            }
            (Some(expr), None) => {
                let cron = croner::parser::CronParser::builder()
                    .seconds(croner::parser::Seconds::Optional)
                    .build()
                    .parse(expr)
                    .map_err(|e| bad("cron", format!("`{expr}` is not a cron expression: {e}")))?;
                let tz_name = self.timezone.as_deref().unwrap_or("UTC");
                let tz = chrono_tz::Tz::from_str(tz_name).map_err(|_| {
                    bad(
                        "timezone",
                        format!("`{tz_name}` is not an IANA time zone (e.g. `Europe/Paris`)"),
                    )
                })?;
                let timer = Timer::Cron(Box::new(cron), tz);
                // A pattern that never matches (`0 0 30 2 *`) is refused now
                // rather than silently never firing.
                if timer.next_after(Utc::now(), Utc::now()).is_none() {
                    return Err(bad("cron", format!("`{expr}` never fires")));
                }
                Ok(timer)
            }
        }
    }
}

impl Timer {
    /// The first tick strictly after `after` (`anchor` is where an interval
    /// counts from), or None when the pattern has no further match.
    pub fn next_after(&self, after: DateTime<Utc>, anchor: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Timer::Every(n) => {
                let step = Duration::seconds(*n);
                if after < anchor {
                    return Some(anchor + step);
                }
                let elapsed = (after - anchor).num_seconds();
                let k = elapsed.div_euclid(*n) + 1;
                let t = anchor + Duration::seconds(k.checked_mul(*n)?);
                // `after` may carry sub-second precision past tick k-1.
                Some(if t <= after { t + step } else { t })
            }
            Timer::Cron(cron, tz) => {
                let local = tz.from_utc_datetime(&after.naive_utc());
                cron.find_next_occurrence(&local, false)
                    .ok()
                    .map(|t| t.with_timezone(&Utc))
            }
        }
    }

    /// Ticks `t` with `after < t <= until`, oldest first, at most `max`.
    pub fn ticks_between(
        &self,
        after: DateTime<Utc>,
        until: DateTime<Utc>,
        anchor: DateTime<Utc>,
        max: usize,
    ) -> Vec<DateTime<Utc>> {
        let mut out = Vec::new();
        let mut at = after;
        while out.len() < max {
            match self.next_after(at, anchor) {
                Some(t) if t <= until => {
                    out.push(t);
                    at = t;
                }
                _ => break,
            }
        }
        out
    }

    /// The newest tick at or before `until` and after `after`, if any,
    /// found without walking every tick in between.
    pub fn latest_between(
        &self,
        after: DateTime<Utc>,
        until: DateTime<Utc>,
        anchor: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        let t = match self {
            Timer::Every(n) => {
                if until < anchor {
                    return None;
                }
                let k = (until - anchor).num_seconds().div_euclid(*n);
                anchor + Duration::seconds(k.checked_mul(*n)?)
            }
            Timer::Cron(cron, tz) => {
                let local = tz.from_utc_datetime(&until.naive_utc());
                cron.find_previous_occurrence(&local, true)
                    .ok()?
                    .with_timezone(&Utc)
            }
        };
        (t > after && t <= until && t > anchor).then_some(t)
    }
}

/// How far back the scheduler looks, per [`CatchUp`] mode.
#[derive(Debug, Clone, Copy)]
pub struct DueRules {
    /// The catch-up window of `latest` and `all`.
    pub window: Duration,
    /// Under `none`, a tick older than this is skipped.
    pub late_after: Duration,
}

/// The ticks to fire at `now`, oldest first: those after `settled` (the
/// newest tick already fired or skipped; the anchor for a new schedule) and
/// at or before `now`, narrowed by the catch-up mode.
pub fn due_ticks(
    timer: &Timer,
    catch_up: CatchUp,
    anchor: DateTime<Utc>,
    settled: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    rules: DueRules,
) -> Vec<DateTime<Utc>> {
    let floor = settled.unwrap_or(anchor).max(anchor);
    match catch_up {
        CatchUp::None => timer
            .latest_between(floor.max(now - rules.late_after), now, anchor)
            .into_iter()
            .collect(),
        CatchUp::Latest => timer
            .latest_between(floor.max(now - rules.window), now, anchor)
            .into_iter()
            .collect(),
        CatchUp::All => {
            // A tick exactly at the window's edge is inside it.
            let from = floor.max(now - rules.window - Duration::microseconds(1));
            timer.ticks_between(from, now, anchor, MAX_TICKS_PER_PASS)
        }
    }
}

/// The placeholders a schedule's context may use.
const PLACEHOLDERS: &[&str] = &[
    "schedule.name",
    "schedule.scheduled_for",
    "schedule.date",
    "schedule.manual",
];

/// Every `{{…}}` in the context's strings names a known placeholder.
fn check_placeholders(v: &Value) -> Result<(), String> {
    match v {
        Value::String(s) => {
            for p in placeholders(s)? {
                if !PLACEHOLDERS.contains(&p) {
                    return Err(format!(
                        "unknown placeholder `{{{{{p}}}}}` (known: {})",
                        PLACEHOLDERS.join(", ")
                    ));
                }
            }
            Ok(())
        }
        Value::Array(a) => a.iter().try_for_each(check_placeholders),
        Value::Object(m) => m.values().try_for_each(check_placeholders),
        _ => Ok(()),
    }
}

/// The trimmed paths of the `{{…}}` in `s`.
fn placeholders(s: &str) -> Result<Vec<&str>, String> {
    let mut out = Vec::new();
    let mut rest = s;
    while let Some(i) = rest.find("{{") {
        let after = &rest[i + 2..];
        let j = after
            .find("}}")
            .ok_or_else(|| format!("`{{{{` without `}}}}` in `{s}`"))?;
        out.push(after[..j].trim());
        rest = &after[j + 2..];
    }
    Ok(out)
}

/// The values a tick gives the placeholders.
#[derive(Debug, Clone)]
pub struct TickInfo<'a> {
    /// The schedule's name.
    pub name: &'a str,
    /// The tick's time.
    pub scheduled_for: DateTime<Utc>,
    /// True for `trigger` (fired by hand, not by the clock).
    pub manual: bool,
}

/// The context of a tick's task: the schedule's context with
/// `{{schedule.name}}`, `{{schedule.scheduled_for}}` (RFC 3339, UTC),
/// `{{schedule.date}}` (`YYYY-MM-DD`, UTC) and `{{schedule.manual}}`
/// replaced. A string that is exactly one placeholder becomes its value
/// (`manual` stays a boolean). Placeholders were checked by
/// [`ScheduleSpec::compile`], so unknown ones are left as written.
pub fn render_context(context: &Value, tick: &TickInfo<'_>) -> Value {
    let value = |p: &str| -> Option<Value> {
        Some(match p {
            "schedule.name" => Value::from(tick.name),
            "schedule.scheduled_for" => Value::from(
                tick.scheduled_for
                    .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
            ),
            "schedule.date" => Value::from(tick.scheduled_for.format("%Y-%m-%d").to_string()),
            "schedule.manual" => Value::from(tick.manual),
            _ => return None,
        })
    };
    match context {
        Value::String(s) => {
            let Ok(found) = placeholders(s) else {
                return context.clone();
            };
            let trimmed = s.trim();
            if found.len() == 1 && trimmed.starts_with("{{") && trimmed.ends_with("}}") {
                return value(found[0]).unwrap_or_else(|| context.clone());
            }
            let mut out = s.clone();
            for p in found {
                if let Some(v) = value(p) {
                    let text = match v {
                        Value::String(t) => t,
                        other => other.to_string(),
                    };
                    // Replace each spelling of this placeholder (spaces allowed).
                    let mut rebuilt = String::with_capacity(out.len());
                    let mut rest = out.as_str();
                    while let Some(i) = rest.find("{{") {
                        let after = &rest[i + 2..];
                        match after.find("}}") {
                            Some(j) if after[..j].trim() == p => {
                                rebuilt.push_str(&rest[..i]);
                                rebuilt.push_str(&text);
                                rest = &after[j + 2..];
                            }
                            _ => {
                                rebuilt.push_str(&rest[..i + 2]);
                                rest = after;
                            }
                        }
                    }
                    rebuilt.push_str(rest);
                    out = rebuilt;
                }
            }
            Value::String(out)
        }
        Value::Array(a) => Value::Array(a.iter().map(|v| render_context(v, tick)).collect()),
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| (k.clone(), render_context(v, tick)))
                .collect(),
        ),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests;
