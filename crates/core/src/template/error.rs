//! Template errors that name file, line, column and field.

use std::fmt;

/// One problem in a template.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TemplateError {
    /// File path (or `<inline>`).
    pub source: String,
    /// 1-based line, when known.
    pub line: Option<u32>,
    /// 1-based column, when known.
    pub column: Option<u32>,
    /// Path of the offending field, e.g. `step_templates[2].depends_on_steps[0]`.
    pub field: String,
    /// What is wrong and, where possible, how to fix it.
    pub message: String,
}

impl TemplateError {
    pub(crate) fn from_yaml(source: &str, e: &serde_saphyr::Error) -> Self {
        let loc = e.location();
        if let serde_saphyr::Error::Budget { breach, .. } = e.without_snippet() {
            return TemplateError {
                source: source.to_string(),
                line: loc.map(|l| l.line() as u32).filter(|&l| l > 0),
                column: loc.map(|l| l.column() as u32).filter(|&c| c > 0),
                field: String::new(),
                message: format!(
                    "the template is too large or too deeply nested to load safely ({}); see the limits in docs/TEMPLATES.md",
                    budget_message(breach)
                ),
            };
        }
        let full = e.to_string();
        // The rendered error may carry a source snippet after the first line;
        // the first line is the message.
        let first = full.lines().next().unwrap_or("invalid YAML").trim();
        // Drop the renderer's own "error: line N column M:" prefix; we print the location ourselves.
        let first = first.strip_prefix("error:").map(str::trim).unwrap_or(first);
        let message = match first
            .strip_prefix("line ")
            .and_then(|rest| rest.split_once(": "))
        {
            Some((_, msg)) => msg.to_string(),
            None => first.to_string(),
        };
        TemplateError {
            source: source.to_string(),
            line: loc.map(|l| l.line() as u32).filter(|&l| l > 0),
            column: loc.map(|l| l.column() as u32).filter(|&c| c > 0),
            field: String::new(),
            message,
        }
    }
}

/// A YAML budget breach in words.
fn budget_message(breach: &serde_saphyr::budget::BudgetBreach) -> String {
    use serde_saphyr::budget::BudgetBreach as B;
    match breach {
        B::Nodes { nodes } => format!(
            "more than {} YAML nodes (reached {nodes})",
            super::MAX_TEMPLATE_NODES
        ),
        B::Events { events } => format!(
            "more than {} YAML events (reached {events})",
            2 * super::MAX_TEMPLATE_NODES
        ),
        B::Depth { depth } => format!("nested {depth} levels deep; at most 64 are allowed"),
        B::Aliases { aliases } => format!("{aliases} aliases (`*name`)"),
        B::Anchors { anchors } => format!("{anchors} anchors (`&name`)"),
        other => format!("limit reached: {other:?}"),
    }
}

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.source)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(col) = self.column {
                write!(f, ":{col}")?;
            }
        }
        if self.field.is_empty() {
            write!(f, ": {}", self.message)
        } else {
            write!(f, ": {}: {}", self.field, self.message)
        }
    }
}

/// Every problem found in one template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateErrors(pub Vec<TemplateError>);

impl fmt::Display for TemplateErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for TemplateErrors {}
