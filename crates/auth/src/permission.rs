//! Permissions: `resource:action` strings, granted with wildcards and an
//! optional namespace scope.
//!
//! A **grant** (what a token or key holds) is one of
//! - `*`: everything;
//! - `tasker.task:*`: every action on one resource;
//! - `tasker.task:create`: one action;
//!
//! each optionally followed by `@namespace` (`tasker.task:create@billing`),
//! which limits it to tasks of that namespace. A scoped grant satisfies only
//! a request whose namespace is known and equal: it never opens a list
//! across namespaces.

use std::fmt;

/// Every resource and its actions (the original's 18, less metrics and
/// analytics which this server does not have, plus `resolve` on steps and
/// the external-worker protocol, the lifecycle event feed and webhooks).
pub const RESOURCES: &[(&str, &[&str])] = &[
    (
        "tasker.task",
        &[
            "index", "show", "create", "update", "destroy", "retry", "cancel", "pause", "resume",
            "restart",
        ],
    ),
    (
        "tasker.workflow_step",
        &[
            "index", "show", "update", "destroy", "retry", "cancel", "resolve",
        ],
    ),
    ("tasker.flow", &["index", "pause", "resume"]),
    (
        "tasker.schedule",
        &[
            "index", "show", "create", "destroy", "pause", "resume", "trigger",
        ],
    ),
    ("tasker.handler", &["index", "show"]),
    ("tasker.health_status", &["index"]),
    ("tasker.metrics", &["index"]),
    ("tasker.analytics", &["index"]),
    (
        "tasker.worker",
        &["claim", "heartbeat", "complete", "fail", "emit"],
    ),
    ("tasker.event", &["index"]),
    (
        "tasker.webhook",
        &["index", "show", "create", "destroy", "redeliver"],
    ),
];

/// Every concrete permission, `resource:action`, in table order.
pub fn all_permissions() -> Vec<String> {
    RESOURCES
        .iter()
        .flat_map(|(r, actions)| actions.iter().map(move |a| format!("{r}:{a}")))
        .collect()
}

/// Whether `permission` (`resource:action`, no wildcard, no scope) exists.
pub fn is_known(permission: &str) -> bool {
    permission.split_once(':').is_some_and(|(r, a)| {
        RESOURCES
            .iter()
            .any(|(res, actions)| *res == r && actions.contains(&a))
    })
}

/// A parsed grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// `None` for `*`.
    resource: Option<String>,
    /// `None` for `resource:*` (and `*`).
    action: Option<String>,
    /// `Some` for `...@namespace`.
    namespace: Option<String>,
}

/// Why a grant string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{grant}` is not a permission: {why}")]
pub struct GrantError {
    /// The string as given.
    pub grant: String,
    /// What is wrong with it.
    pub why: String,
}

impl Grant {
    /// Parses `*`, `resource:*`, `resource:action`, each with an optional `@namespace`.
    /// Unknown resources and actions are refused, so a typo in a role or a key
    /// is an error and not a silently useless grant.
    pub fn parse(s: &str) -> Result<Grant, GrantError> {
        let err = |why: &str| GrantError {
            grant: s.to_string(),
            why: why.to_string(),
        };
        let (body, namespace) = match s.split_once('@') {
            Some((_, "")) => return Err(err("the namespace after `@` is empty")),
            Some((b, ns)) => {
                if ns.contains(['@', ':', '*']) || ns.chars().any(char::is_whitespace) {
                    return Err(err("a namespace has no `@`, `:`, `*` or spaces"));
                }
                (b, Some(ns.to_string()))
            }
            None => (s, None),
        };
        if body == "*" {
            return Ok(Grant {
                resource: None,
                action: None,
                namespace,
            });
        }
        let Some((resource, action)) = body.split_once(':') else {
            return Err(err("expected `resource:action`, `resource:*` or `*`"));
        };
        let Some((_, actions)) = RESOURCES.iter().find(|(r, _)| *r == resource) else {
            let known: Vec<&str> = RESOURCES.iter().map(|(r, _)| *r).collect();
            return Err(err(&format!(
                "unknown resource `{resource}` (known: {})",
                known.join(", ")
            )));
        };
        if action == "*" {
            return Ok(Grant {
                resource: Some(resource.to_string()),
                action: None,
                namespace,
            });
        }
        if !actions.contains(&action) {
            return Err(err(&format!(
                "unknown action `{action}` of {resource} (known: {})",
                actions.join(", ")
            )));
        }
        Ok(Grant {
            resource: Some(resource.to_string()),
            action: Some(action.to_string()),
            namespace,
        })
    }

    /// The namespace this grant is limited to, if any.
    pub fn namespace(&self) -> Option<&str> {
        self.namespace.as_deref()
    }

    /// Whether this grant covers `permission` (`resource:action`), ignoring namespaces.
    pub fn covers_permission(&self, permission: &str) -> bool {
        let Some((resource, action)) = permission.split_once(':') else {
            return false;
        };
        self.resource.as_deref().is_none_or(|r| r == resource)
            && self.action.as_deref().is_none_or(|a| a == action)
    }

    /// Whether this grant allows `permission` on `namespace` (`None`: the
    /// request is not about one namespace, e.g. a list).
    pub fn allows(&self, permission: &str, namespace: Option<&str>) -> bool {
        self.covers_permission(permission)
            && match (&self.namespace, namespace) {
                (None, _) => true,
                (Some(scope), Some(ns)) => scope == ns,
                (Some(_), None) => false,
            }
    }
}

impl fmt::Display for Grant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.resource, &self.action) {
            (None, _) => write!(f, "*")?,
            (Some(r), None) => write!(f, "{r}:*")?,
            (Some(r), Some(a)) => write!(f, "{r}:{a}")?,
        }
        if let Some(ns) = &self.namespace {
            write!(f, "@{ns}")?;
        }
        Ok(())
    }
}

/// What one caller may do: the union of its grants.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grants(Vec<Grant>);

impl Grants {
    /// The grants given.
    pub fn new(grants: Vec<Grant>) -> Self {
        Grants(grants)
    }

    /// Everything (what `auth.mode = none` gives every request).
    pub fn all() -> Self {
        Grants(vec![Grant {
            resource: None,
            action: None,
            namespace: None,
        }])
    }

    /// Whether some grant allows `permission` on `namespace`.
    pub fn allows(&self, permission: &str, namespace: Option<&str>) -> bool {
        self.0.iter().any(|g| g.allows(permission, namespace))
    }

    /// The namespaces `permission` is allowed on: `None` when some grant
    /// allows it everywhere, else the (possibly empty) list of scopes.
    /// An external worker's claim is limited to these.
    pub fn namespaces_for(&self, permission: &str) -> Option<Vec<String>> {
        let mut scopes = Vec::new();
        for g in self.0.iter().filter(|g| g.covers_permission(permission)) {
            match &g.namespace {
                None => return None,
                Some(ns) if !scopes.contains(ns) => scopes.push(ns.clone()),
                Some(_) => {}
            }
        }
        Some(scopes)
    }

    /// The grants, in the order given.
    pub fn iter(&self) -> impl Iterator<Item = &Grant> {
        self.0.iter()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn g(s: &str) -> Grant {
        Grant::parse(s).unwrap()
    }

    #[test]
    fn exact_wildcard_and_star_grants() {
        assert!(g("tasker.task:create").allows("tasker.task:create", None));
        assert!(!g("tasker.task:create").allows("tasker.task:index", None));
        assert!(g("tasker.task:*").allows("tasker.task:retry", Some("x")));
        assert!(!g("tasker.task:*").allows("tasker.workflow_step:show", None));
        assert!(g("*").allows("tasker.worker:claim", None));
        assert!(!g("tasker.task:create").allows("garbage", None));
    }

    #[test]
    fn a_scoped_grant_only_opens_its_namespace() {
        let scoped = g("tasker.task:create@billing");
        assert!(scoped.allows("tasker.task:create", Some("billing")));
        assert!(!scoped.allows("tasker.task:create", Some("shipping")));
        // A request about no single namespace (a list) is not opened by a scoped grant.
        assert!(!scoped.allows("tasker.task:create", None));
        assert!(g("*@billing").allows("tasker.task:show", Some("billing")));
        assert!(!g("*@billing").allows("tasker.task:show", Some("other")));
    }

    #[test]
    fn typos_are_refused_with_the_known_names() {
        let e = Grant::parse("tasker.tasks:create").unwrap_err();
        assert!(
            e.to_string().contains("unknown resource `tasker.tasks`"),
            "{e}"
        );
        let e = Grant::parse("tasker.task:delete").unwrap_err();
        assert!(e.to_string().contains("known: index, show"), "{e}");
        for bad in [
            "",
            "task",
            "tasker.task:create@",
            "a:b@c@d",
            "*@x y",
            "tasker.task",
        ] {
            assert!(Grant::parse(bad).is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn display_round_trips() {
        for s in ["*", "tasker.task:*", "tasker.task:create@billing", "*@ns"] {
            assert_eq!(g(s).to_string(), s);
        }
    }

    #[test]
    fn namespaces_for_a_permission() {
        let grants = Grants::new(vec![
            g("tasker.worker:claim@a"),
            g("tasker.worker:*@b"),
            g("tasker.task:index"),
        ]);
        assert_eq!(
            grants.namespaces_for("tasker.worker:claim"),
            Some(vec!["a".to_string(), "b".to_string()])
        );
        assert_eq!(grants.namespaces_for("tasker.task:index"), None);
        assert_eq!(grants.namespaces_for("tasker.task:create"), Some(vec![]));
        assert!(Grants::all().allows("tasker.task:create", Some("x")));
    }

    #[test]
    fn every_listed_permission_is_known_and_parses() {
        let all = all_permissions();
        // task (10, restart included), step, flow, schedule, handler, health,
        // metrics, analytics, worker, event, webhook.
        assert_eq!(all.len(), 10 + 7 + 3 + 7 + 2 + 1 + 1 + 1 + 5 + 1 + 5);
        for p in &all {
            assert!(is_known(p));
            assert_eq!(g(p).to_string(), *p);
        }
        assert!(!is_known("tasker.task:*"));
    }
}
