//! The rules of operator requests, shared by every interface (REST, GraphQL,
//! CLI): text lengths, tags, correlation ids, the task list's paging and
//! filters, step edits, and the "did you mean" of an unknown template.
//!
//! Each rule fails with an [`EngineError`] whose [`EngineError::code`] and
//! [`EngineError::field`] are what every interface reports, so the same bad
//! request gets the same answer over REST and GraphQL.

use crate::error::EngineError;
use crate::service::{TaskRequest, Tasker};
use chrono::{DateTime, Utc};
use tasker_core::TaskState;
use tasker_core::registry::RegistryError;
use tasker_core::template::check_name;
use tasker_store::{
    AnnotationFilter, AnnotationRow, CountMode, NewAnnotation, Page, StepRow, StepUpdate,
    TaskCursor, TaskQuery, TaskRow, TaskSort, TaskUpdate,
};
use uuid::Uuid;

/// Most tags a task may carry.
pub const MAX_TAGS: usize = 64;
/// Longest tag, in characters.
pub const MAX_TAG: usize = 128;
/// Longest reason, initiator or source system, in characters.
pub const MAX_TEXT: usize = 1024;
/// Highest retry limit a step may be given.
pub const MAX_RETRY_LIMIT: i32 = 1000;
/// Largest annotation content, in bytes of compact JSON.
pub const MAX_ANNOTATION_BYTES: usize = 16 * 1024;
/// Most keys an annotation filter's `contains` may give.
pub const MAX_CONTAINS_KEYS: usize = 16;

/// Default page size of event lists.
pub const DEFAULT_EVENT_LIMIT: u32 = 100;
/// Largest page of event lists.
pub const MAX_EVENT_LIMIT: u32 = 1000;

/// A page of events as an interface received it (REST's `after`, `limit`
/// and `type` parameters; GraphQL's `Task.events` arguments).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct EventPageRequest {
    /// Only events with a higher id (default 0).
    pub after: Option<i64>,
    /// Page size, 1 to [`MAX_EVENT_LIMIT`] (default [`DEFAULT_EVENT_LIMIT`]).
    pub limit: Option<u32>,
    /// Types or patterns: `task.completed`, `step.*`, `*` (none: every type).
    pub types: Vec<String>,
}

impl EventPageRequest {
    /// Applies the rules: the store query (no task or namespace filter
    /// yet), or the error naming `after`, `limit` or `type`.
    pub fn to_query(&self) -> Result<tasker_store::EventQuery, EngineError> {
        let bad = |field: &str, message: String| EngineError::InvalidParameter {
            field: field.into(),
            message,
        };
        let after = self.after.unwrap_or(0);
        if after < 0 {
            return Err(bad("after", "must be 0 or more".into()));
        }
        let limit = self.limit.unwrap_or(DEFAULT_EVENT_LIMIT);
        if !(1..=MAX_EVENT_LIMIT).contains(&limit) {
            return Err(bad(
                "limit",
                format!("must be between 1 and {MAX_EVENT_LIMIT}"),
            ));
        }
        for t in &self.types {
            if !valid_event_pattern(t) {
                return Err(bad(
                    "type",
                    format!(
                        "`{t}` is not an event type or pattern (use e.g. `task.completed`, `step.*` or `*`)"
                    ),
                ));
            }
        }
        Ok(tasker_store::EventQuery {
            after,
            limit,
            types: self.types.clone(),
            task_id: None,
            namespace: None,
        })
    }
}

/// `*`, a dotted name (`task.completed`, `custom.order-shipped`) or a
/// dotted name followed by `.*`.
fn valid_event_pattern(t: &str) -> bool {
    let name = t.strip_suffix(".*").unwrap_or(t);
    t == "*"
        || (!name.is_empty()
            && name.len() <= 128
            && name.split('.').all(|seg| {
                !seg.is_empty()
                    && seg
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            }))
}

/// A free-text field is at most [`MAX_TEXT`] characters.
pub fn check_text(field: &str, v: Option<&str>) -> Result<(), EngineError> {
    match v {
        Some(s) if s.chars().count() > MAX_TEXT => Err(EngineError::InvalidField {
            field: field.into(),
            message: format!("must be at most {MAX_TEXT} characters"),
        }),
        _ => Ok(()),
    }
}

/// At most [`MAX_TAGS`] tags of 1 to [`MAX_TAG`] characters.
pub fn check_tags(tags: &[String]) -> Result<(), EngineError> {
    if tags.len() > MAX_TAGS {
        return Err(EngineError::InvalidField {
            field: "tags".into(),
            message: format!("at most {MAX_TAGS} tags"),
        });
    }
    for (i, t) in tags.iter().enumerate() {
        if t.is_empty() || t.chars().count() > MAX_TAG {
            return Err(EngineError::InvalidField {
                field: format!("tags[{i}]"),
                message: format!("a tag must be 1 to {MAX_TAG} characters"),
            });
        }
    }
    Ok(())
}

/// A correlation (or request) id: 1-128 letters, digits, `.`, `_`, `:` or `-`,
/// so it is safe in a header, a log line and a URL.
pub fn valid_correlation_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-'))
}

/// Checks a task request's free text, tags and correlation id.
pub fn check_task_request(r: &TaskRequest) -> Result<(), EngineError> {
    check_text("initiator", r.initiator.as_deref())?;
    check_text("source_system", r.source_system.as_deref())?;
    check_text("reason", r.reason.as_deref())?;
    check_tags(&r.tags)?;
    if let Some(c) = &r.correlation_id
        && !valid_correlation_id(c)
    {
        return Err(EngineError::InvalidField {
            field: "correlation_id".into(),
            message: "must be 1-128 characters of letters, digits, `.`, `_`, `:` or `-`".into(),
        });
    }
    Ok(())
}

/// Page sizes an interface allows (its configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageLimits {
    /// Page size when none is asked for.
    pub default: u32,
    /// Largest page size.
    pub max: u32,
}

/// A task-list request as an interface received it, before the rules.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TaskListRequest {
    /// Page size (default [`PageLimits::default`]).
    pub limit: Option<u32>,
    /// Rows to skip.
    pub offset: Option<u32>,
    /// Only this state.
    pub status: Option<TaskState>,
    /// Only this namespace.
    pub namespace: Option<String>,
    /// Only this template name.
    pub name: Option<String>,
    /// Only this version (semver).
    pub version: Option<String>,
    /// Created at or after.
    pub created_since: Option<DateTime<Utc>>,
    /// Created before.
    pub created_until: Option<DateTime<Utc>>,
    /// Sort key (default creation time).
    pub sort: Option<TaskSort>,
    /// Ascending instead of the default descending order.
    pub ascending: bool,
    /// Keyset cursor: only rows after this one (not together with `offset`).
    pub after: Option<TaskCursor>,
    /// How exactly to count the matching rows.
    pub count: CountMode,
    /// Only tasks carrying every one of these tags.
    pub tags: Vec<String>,
    /// Only tasks with exactly this correlation id (the rules of
    /// [`valid_correlation_id`]).
    pub correlation_id: Option<String>,
    /// Only tasks with an annotation of this type.
    pub annotation_type: Option<String>,
    /// ... whose content holds these top-level keys with these scalar values
    /// (needs `annotation_type`).
    pub annotation_contains: Option<serde_json::Map<String, serde_json::Value>>,
}

impl TaskListRequest {
    /// Applies the paging and filter rules: the store query, or the error.
    pub fn to_query(&self, limits: PageLimits) -> Result<TaskQuery, EngineError> {
        let limit = self.limit.unwrap_or(limits.default);
        if limit == 0 || limit > limits.max {
            return Err(EngineError::InvalidParameter {
                field: "limit".into(),
                message: format!("must be between 1 and {}", limits.max),
            });
        }
        if self.after.is_some() && self.offset.is_some() {
            return Err(EngineError::InvalidParameter {
                field: "after".into(),
                message: "cannot be combined with `offset`".into(),
            });
        }
        if let Some(v) = &self.version
            && let Err(e) = semver::Version::parse(v)
        {
            return Err(EngineError::InvalidParameter {
                field: "version".into(),
                message: format!("`{v}` is not a semantic version: {e}"),
            });
        }
        if let (Some(a), Some(b)) = (self.created_since, self.created_until)
            && a >= b
        {
            return Err(EngineError::InvalidParameter {
                field: "created_until".into(),
                message: "must be after `created_since`".into(),
            });
        }
        if self.tags.len() > MAX_TAGS {
            return Err(EngineError::InvalidParameter {
                field: "tag".into(),
                message: format!("at most {MAX_TAGS} tags"),
            });
        }
        if self
            .tags
            .iter()
            .any(|t| t.is_empty() || t.chars().count() > MAX_TAG)
        {
            return Err(EngineError::InvalidParameter {
                field: "tag".into(),
                message: format!("a tag must be 1 to {MAX_TAG} characters"),
            });
        }
        if let Some(c) = &self.correlation_id
            && !valid_correlation_id(c)
        {
            return Err(EngineError::InvalidParameter {
                field: "correlation_id".into(),
                message: "must be 1-128 characters of letters, digits, `.`, `_`, `:` or `-`".into(),
            });
        }
        let annotation = self.annotation_filter()?;
        Ok(TaskQuery {
            tags: self.tags.clone(),
            correlation_id: self.correlation_id.clone(),
            annotation,
            status: self.status,
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            version: self.version.clone(),
            created_since: self.created_since,
            created_until: self.created_until,
            sort: self.sort.unwrap_or(TaskSort::CreatedAt),
            descending: !self.ascending,
            limit,
            offset: self.offset.unwrap_or(0),
            after: self.after.clone(),
            count: self.count,
        })
    }
}

impl TaskListRequest {
    /// The annotation filter: a type that is a name, and `contains` keys
    /// that are names with string, number or boolean values.
    fn annotation_filter(&self) -> Result<Option<AnnotationFilter>, EngineError> {
        let bad = |field: &str, message: String| EngineError::InvalidParameter {
            field: field.into(),
            message,
        };
        let Some(kind) = &self.annotation_type else {
            return match self.annotation_contains {
                Some(_) => Err(bad("annotation_contains", "needs `annotation_type`".into())),
                None => Ok(None),
            };
        };
        check_name(kind).map_err(|m| bad("annotation_type", m))?;
        let contains = self.annotation_contains.clone().unwrap_or_default();
        if contains.len() > MAX_CONTAINS_KEYS {
            return Err(bad(
                "annotation_contains",
                format!("at most {MAX_CONTAINS_KEYS} keys"),
            ));
        }
        for (key, value) in &contains {
            check_name(key).map_err(|m| bad("annotation_contains", format!("key {m}")))?;
            if !(value.is_string() || value.is_number() || value.is_boolean()) {
                return Err(bad(
                    "annotation_contains",
                    format!("`{key}` must be a string, number or boolean"),
                ));
            }
        }
        Ok(Some(AnnotationFilter {
            annotation_type: kind.clone(),
            contains,
        }))
    }
}

/// Checks an annotation: its type is a name, its content a JSON object of at
/// most [`MAX_ANNOTATION_BYTES`].
pub fn check_annotation(kind: &str, content: &serde_json::Value) -> Result<(), EngineError> {
    check_name(kind).map_err(|message| EngineError::InvalidField {
        field: "type".into(),
        message,
    })?;
    if !content.is_object() {
        return Err(EngineError::InvalidField {
            field: "content".into(),
            message: "must be a JSON object".into(),
        });
    }
    let size = serde_json::to_vec(content)
        .map(|v| v.len())
        .unwrap_or(usize::MAX);
    if size > MAX_ANNOTATION_BYTES {
        return Err(EngineError::InvalidField {
            field: "content".into(),
            message: format!("must be at most {MAX_ANNOTATION_BYTES} bytes of JSON"),
        });
    }
    Ok(())
}

/// Checks a task edit: something to change, text and tags in bounds.
pub fn check_task_update(u: &TaskUpdate) -> Result<(), EngineError> {
    if u.reason.is_none() && u.tags.is_none() {
        return Err(EngineError::EmptyUpdate(
            "nothing to change: give `reason` and/or `tags`",
        ));
    }
    check_text("reason", u.reason.as_deref())?;
    if let Some(tags) = &u.tags {
        check_tags(tags)?;
    }
    Ok(())
}

/// Checks a step edit: something to change, a retry limit in range, inputs an object.
pub fn check_step_update(u: &StepUpdate) -> Result<(), EngineError> {
    if u.retry_limit.is_none() && u.inputs.is_none() {
        return Err(EngineError::EmptyUpdate(
            "nothing to change: give `retry_limit` and/or `inputs`",
        ));
    }
    if let Some(limit) = u.retry_limit
        && !(1..=MAX_RETRY_LIMIT).contains(&limit)
    {
        return Err(EngineError::InvalidField {
            field: "retry_limit".into(),
            message: format!("must be between 1 and {MAX_RETRY_LIMIT}"),
        });
    }
    if let Some(inputs) = &u.inputs
        && !inputs.is_object()
    {
        return Err(EngineError::InvalidField {
            field: "inputs".into(),
            message: "must be a JSON object".into(),
        });
    }
    Ok(())
}

impl Tasker {
    /// Creates a task from an operator's request: the request rules
    /// ([`check_task_request`]), then [`Tasker::create_task`]; a template that
    /// does not exist becomes [`EngineError::UnknownTemplate`], naming the
    /// part of the reference that matched nothing (and the versions that exist).
    pub async fn submit_task(&self, request: TaskRequest) -> Result<TaskRow, EngineError> {
        check_task_request(&request)?;
        let (ns, name) = (request.namespace.clone(), request.name.clone());
        match self.create_task(request).await {
            Err(EngineError::Registry(RegistryError::NotFound { version, .. })) => {
                Err(self.unknown_template(&ns, &name, version.as_deref()))
            }
            other => other,
        }
    }

    /// Which part of `ns.name@version` matched nothing.
    fn unknown_template(&self, ns: &str, name: &str, version: Option<&str>) -> EngineError {
        let versions = self.with_registry(|r| {
            r.names(ns).map(|names| {
                names
                    .into_iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, vs)| vs.iter().map(ToString::to_string).collect::<Vec<_>>())
            })
        });
        match versions {
            None => EngineError::UnknownTemplate {
                field: "namespace",
                message: format!("no task template is registered in namespace `{ns}`"),
                available_versions: None,
            },
            Some(None) => EngineError::UnknownTemplate {
                field: "name",
                message: format!("no task template `{name}` in namespace `{ns}`"),
                available_versions: None,
            },
            Some(Some(available)) => EngineError::UnknownTemplate {
                field: "version",
                message: format!(
                    "template `{ns}.{name}` has no version `{}`",
                    version.unwrap_or("")
                ),
                available_versions: Some(available),
            },
        }
    }

    /// A page of tasks for a list request, after the paging and filter rules.
    pub async fn list_tasks_checked(
        &self,
        request: &TaskListRequest,
        limits: PageLimits,
    ) -> Result<Page<TaskRow>, EngineError> {
        let query = request.to_query(limits)?;
        self.list_tasks(&query).await
    }

    /// Attaches a typed note to a task ([`check_annotation`] first); `by`
    /// is who wrote it, when known.
    pub async fn annotate_task(
        &self,
        task_id: Uuid,
        kind: &str,
        content: serde_json::Value,
        by: Option<&str>,
    ) -> Result<AnnotationRow, EngineError> {
        check_annotation(kind, &content)?;
        Ok(self
            .store()
            .annotation_create(NewAnnotation {
                id: Uuid::now_v7(),
                task_id,
                annotation_type: kind.to_string(),
                content,
                created_by: by.map(str::to_string),
                now: self.now(),
            })
            .await?)
    }

    /// The annotations of many tasks (oldest first each), in one read.
    pub async fn task_annotations(
        &self,
        task_ids: &[Uuid],
    ) -> Result<std::collections::HashMap<Uuid, Vec<AnnotationRow>>, EngineError> {
        Ok(self.store().annotation_list_many(task_ids).await?)
    }

    /// The step, checked to belong to the task ([`EngineError::StepNotInTask`] otherwise).
    pub async fn step_in_task(&self, task_id: Uuid, step_id: Uuid) -> Result<StepRow, EngineError> {
        let step = self.step(step_id).await?;
        if step.task_id != task_id {
            return Err(EngineError::StepNotInTask { task_id, step_id });
        }
        Ok(step)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_and_text_have_bounds() {
        assert!(check_tags(&vec!["a".into(); MAX_TAGS]).is_ok());
        let e = check_tags(&vec!["a".into(); MAX_TAGS + 1]).unwrap_err();
        assert_eq!(
            (e.code(), e.field().as_deref()),
            ("invalid_field", Some("tags"))
        );
        let e = check_tags(&["ok".into(), String::new()]).unwrap_err();
        assert_eq!(e.field().as_deref(), Some("tags[1]"));
        let e = check_text("reason", Some(&"x".repeat(MAX_TEXT + 1))).unwrap_err();
        assert_eq!(e.field().as_deref(), Some("reason"));
        assert!(check_text("reason", Some(&"é".repeat(MAX_TEXT))).is_ok());
    }

    #[test]
    fn list_rules() {
        let limits = PageLimits {
            default: 25,
            max: 100,
        };
        let q = TaskListRequest::default().to_query(limits).unwrap();
        assert_eq!((q.limit, q.offset, q.descending), (25, 0, true));
        for bad in [0, 101] {
            let r = TaskListRequest {
                limit: Some(bad),
                ..Default::default()
            };
            let e = r.to_query(limits).unwrap_err();
            assert_eq!(
                (e.code(), e.field().as_deref()),
                ("invalid_parameter", Some("limit"))
            );
        }
        let r = TaskListRequest {
            version: Some("1.x".into()),
            ..Default::default()
        };
        assert_eq!(
            r.to_query(limits).unwrap_err().field().as_deref(),
            Some("version")
        );
        let t = Utc::now();
        let r = TaskListRequest {
            created_since: Some(t),
            created_until: Some(t),
            ..Default::default()
        };
        assert_eq!(
            r.to_query(limits).unwrap_err().field().as_deref(),
            Some("created_until")
        );
    }

    #[test]
    fn list_correlation_id_is_checked_and_passed_on() {
        let limits = PageLimits {
            default: 10,
            max: 100,
        };
        let r = TaskListRequest {
            correlation_id: Some("order-42".into()),
            ..Default::default()
        };
        assert_eq!(
            r.to_query(limits).unwrap().correlation_id.as_deref(),
            Some("order-42")
        );
        for bad in ["", "a b", "<x>"] {
            let r = TaskListRequest {
                correlation_id: Some(bad.into()),
                ..Default::default()
            };
            assert_eq!(
                r.to_query(limits).unwrap_err().field().as_deref(),
                Some("correlation_id"),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn edits_need_something_to_change() {
        let e = check_task_update(&TaskUpdate {
            reason: None,
            tags: None,
        })
        .unwrap_err();
        assert_eq!(e.code(), "empty_update");
        let e = check_step_update(&StepUpdate {
            retry_limit: Some(0),
            inputs: None,
        })
        .unwrap_err();
        assert_eq!(e.field().as_deref(), Some("retry_limit"));
        let e = check_step_update(&StepUpdate {
            retry_limit: None,
            inputs: Some(serde_json::json!([1])),
        })
        .unwrap_err();
        assert_eq!(e.field().as_deref(), Some("inputs"));
    }

    #[test]
    fn annotation_rules() {
        use serde_json::json;
        assert!(check_annotation("audit.note", &json!({"a": 1})).is_ok());
        let e = check_annotation("bad type", &json!({})).unwrap_err();
        assert_eq!(
            (e.code(), e.field().as_deref()),
            ("invalid_field", Some("type"))
        );
        let e = check_annotation("audit", &json!([1])).unwrap_err();
        assert_eq!(e.field().as_deref(), Some("content"));
        let big = json!({"x": "a".repeat(MAX_ANNOTATION_BYTES)});
        assert_eq!(
            check_annotation("audit", &big)
                .unwrap_err()
                .field()
                .as_deref(),
            Some("content")
        );
        let limits = PageLimits {
            default: 25,
            max: 100,
        };
        let field = |r: TaskListRequest| r.to_query(limits).unwrap_err().field();
        let contains = json!({"k": {"nested": 1}}).as_object().cloned();
        assert_eq!(
            field(TaskListRequest {
                annotation_type: Some("audit".into()),
                annotation_contains: contains.clone(),
                ..Default::default()
            })
            .as_deref(),
            Some("annotation_contains")
        );
        assert_eq!(
            field(TaskListRequest {
                annotation_contains: json!({"k": 1}).as_object().cloned(),
                ..Default::default()
            })
            .as_deref(),
            Some("annotation_contains")
        );
        assert_eq!(
            field(TaskListRequest {
                annotation_type: Some("a b".into()),
                ..Default::default()
            })
            .as_deref(),
            Some("annotation_type")
        );
        assert_eq!(
            field(TaskListRequest {
                tags: vec![String::new()],
                ..Default::default()
            })
            .as_deref(),
            Some("tag")
        );
        let q = TaskListRequest {
            tags: vec!["vip".into()],
            annotation_type: Some("audit".into()),
            annotation_contains: json!({"ticket": "T-1"}).as_object().cloned(),
            ..Default::default()
        }
        .to_query(limits)
        .unwrap();
        assert_eq!(q.tags, ["vip"]);
        assert_eq!(q.annotation.unwrap().contains["ticket"], "T-1");
    }

    #[test]
    fn correlation_ids() {
        assert!(valid_correlation_id("abc-1.2:3_4"));
        assert!(!valid_correlation_id(""));
        assert!(!valid_correlation_id("a b"));
        assert!(!valid_correlation_id(&"a".repeat(129)));
    }
}
