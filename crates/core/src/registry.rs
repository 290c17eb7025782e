//! The template registry: templates keyed by (namespace, name, version).
//!
//! Registration is atomic and fail-fast: a batch either goes in whole or not at
//! all, so a bad file never leaves the registry half-updated. Versions are
//! ordered by real semver precedence (0.10.0 > 0.9.0), not as strings (the
//! reference's Q14).

use crate::template::TaskTemplate;
use semver::Version;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Why a registration or lookup failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    /// The key is taken and replacement was not asked for.
    #[error(
        "template {namespace}.{name}@{version} is already registered (ask for replacement to override it)"
    )]
    Duplicate {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// Version.
        version: String,
    },
    /// The same key appears twice in one batch.
    #[error("template {0} appears twice in the same batch")]
    DuplicateInBatch(String),
    /// No such template.
    #[error("no template {namespace}.{name}{}", version.as_ref().map(|v| format!("@{v}")).unwrap_or_default())]
    NotFound {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// Version asked for, if any.
        version: Option<String>,
    },
}

/// Templates by namespace, name and version.
#[derive(Debug, Clone, Default)]
pub struct TemplateRegistry {
    map: BTreeMap<String, BTreeMap<String, BTreeMap<Version, Arc<TaskTemplate>>>>,
}

/// One namespace and how many templates (name × version) it holds.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct NamespaceSummary {
    /// Namespace.
    pub namespace: String,
    /// Distinct template names.
    pub names: usize,
    /// Name × version pairs.
    pub versions: usize,
}

impl TemplateRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a batch atomically: nothing changes unless every template can go in.
    pub fn register_all(
        &mut self,
        templates: Vec<TaskTemplate>,
        replace: bool,
    ) -> Result<(), RegistryError> {
        let mut seen = std::collections::HashSet::new();
        for t in &templates {
            if !seen.insert((t.namespace.clone(), t.name.clone(), t.version.clone())) {
                return Err(RegistryError::DuplicateInBatch(t.full_name()));
            }
            if !replace && self.get(&t.namespace, &t.name, Some(&t.version)).is_ok() {
                return Err(RegistryError::Duplicate {
                    namespace: t.namespace.clone(),
                    name: t.name.clone(),
                    version: t.version.to_string(),
                });
            }
        }
        for t in templates {
            self.map
                .entry(t.namespace.clone())
                .or_default()
                .entry(t.name.clone())
                .or_default()
                .insert(t.version.clone(), Arc::new(t));
        }
        Ok(())
    }

    /// Registers one template.
    pub fn register(&mut self, template: TaskTemplate, replace: bool) -> Result<(), RegistryError> {
        self.register_all(vec![template], replace)
    }

    /// An exact version, or the latest by semver when `version` is `None`.
    pub fn get(
        &self,
        namespace: &str,
        name: &str,
        version: Option<&Version>,
    ) -> Result<Arc<TaskTemplate>, RegistryError> {
        let versions = self.map.get(namespace).and_then(|n| n.get(name));
        let found = match version {
            Some(v) => versions.and_then(|vs| vs.get(v)),
            None => versions.and_then(|vs| vs.values().next_back()),
        };
        found.cloned().ok_or_else(|| RegistryError::NotFound {
            namespace: namespace.to_string(),
            name: name.to_string(),
            version: version.map(|v| v.to_string()),
        })
    }

    /// Namespaces with their counts, sorted by name.
    pub fn namespaces(&self) -> Vec<NamespaceSummary> {
        self.map
            .iter()
            .map(|(ns, names)| NamespaceSummary {
                namespace: ns.clone(),
                names: names.len(),
                versions: names.values().map(BTreeMap::len).sum(),
            })
            .collect()
    }

    /// Template names in a namespace with their versions, ascending by semver.
    pub fn names(&self, namespace: &str) -> Option<Vec<(String, Vec<Version>)>> {
        self.map.get(namespace).map(|names| {
            names
                .iter()
                .map(|(n, vs)| (n.clone(), vs.keys().cloned().collect()))
                .collect()
        })
    }

    /// Every registered template.
    pub fn all(&self) -> impl Iterator<Item = &Arc<TaskTemplate>> {
        self.map
            .values()
            .flat_map(|n| n.values())
            .flat_map(|v| v.values())
    }

    /// Number of registered templates (all versions).
    pub fn len(&self) -> usize {
        self.all().count()
    }

    /// True when nothing is registered.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::template::parse_template;

    fn tpl(ns: &str, name: &str, version: &str) -> TaskTemplate {
        let yaml = format!(
            "name: {name}\nnamespace: {ns}\nversion: {version}\nstep_templates:\n  - name: a\n    handler: {{kind: noop}}\n"
        );
        parse_template("<test>", &yaml, None).unwrap()
    }

    #[test]
    fn latest_uses_semver_order() {
        let mut r = TemplateRegistry::new();
        r.register_all(
            vec![
                tpl("ns", "t", "0.9.0"),
                tpl("ns", "t", "0.10.0"),
                tpl("ns", "t", "0.2.0"),
            ],
            false,
        )
        .unwrap();
        assert_eq!(
            r.get("ns", "t", None).unwrap().version.to_string(),
            "0.10.0"
        );
        let v = Version::parse("0.9.0").unwrap();
        assert_eq!(r.get("ns", "t", Some(&v)).unwrap().version, v);
        let names = r.names("ns").unwrap();
        assert_eq!(
            names[0].1.iter().map(|v| v.to_string()).collect::<Vec<_>>(),
            ["0.2.0", "0.9.0", "0.10.0"]
        );
    }

    #[test]
    fn duplicate_rejected_unless_replacing_and_batches_are_atomic() {
        let mut r = TemplateRegistry::new();
        r.register(tpl("ns", "t", "1.0.0"), false).unwrap();
        let err = r.register_all(
            vec![tpl("ns", "other", "1.0.0"), tpl("ns", "t", "1.0.0")],
            false,
        );
        assert!(matches!(err, Err(RegistryError::Duplicate { .. })));
        // The good template of the failed batch did not go in.
        assert!(r.get("ns", "other", None).is_err());
        r.register(tpl("ns", "t", "1.0.0"), true).unwrap();
        assert_eq!(r.len(), 1);
    }

    #[test]
    fn enumeration() {
        let mut r = TemplateRegistry::new();
        r.register_all(
            vec![
                tpl("a", "x", "1.0.0"),
                tpl("a", "x", "2.0.0"),
                tpl("a", "y", "1.0.0"),
                tpl("b", "z", "1.0.0"),
            ],
            false,
        )
        .unwrap();
        let ns = r.namespaces();
        assert_eq!(ns.len(), 2);
        assert_eq!((ns[0].names, ns[0].versions), (2, 3));
        assert!(r.names("nope").is_none());
        let err = r.get("a", "nope", None).unwrap_err();
        assert_eq!(err.to_string(), "no template a.nope");
    }
}
