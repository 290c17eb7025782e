//! Reading template files from disk (the only file I/O of the template path).

use crate::handlers::check_builtin_config;
use std::path::{Path, PathBuf};
use tasker_core::TaskTemplate;
use tasker_core::template::{
    MAX_TEMPLATE_BYTES, TemplateError, TemplateErrors, parse_template_bytes, parse_template_checked,
};

/// Loads every `.yaml` / `.yml` file of `paths` (files, or directories read
/// recursively in name order). Returns all templates, or every error of every
/// file.
pub fn load_paths(
    paths: &[PathBuf],
    environment: Option<&str>,
) -> Result<Vec<TaskTemplate>, TemplateErrors> {
    let mut files = Vec::new();
    let mut errors = Vec::new();
    for p in paths {
        collect(p, &mut files, &mut errors);
    }
    let mut templates = Vec::new();
    for file in files {
        match load_file(&file, environment) {
            Ok(t) => templates.push(t),
            Err(e) => errors.extend(e.0),
        }
    }
    if errors.is_empty() {
        Ok(templates)
    } else {
        Err(TemplateErrors(errors))
    }
}

/// Loads one template file, checking the configs of built-in handler kinds.
pub fn load_file(path: &Path, environment: Option<&str>) -> Result<TaskTemplate, TemplateErrors> {
    let source = path.display().to_string();
    let too_big = std::fs::metadata(path)
        .map(|m| m.len() > MAX_TEMPLATE_BYTES as u64)
        .unwrap_or(false);
    if too_big {
        // Refused before reading it into memory.
        return Err(TemplateErrors(vec![TemplateError {
            source,
            line: None,
            column: None,
            field: String::new(),
            message: format!(
                "larger than the limit of {MAX_TEMPLATE_BYTES} bytes (docs/TEMPLATES.md#limits)"
            ),
        }]));
    }
    let bytes = std::fs::read(path).map_err(|e| TemplateErrors(vec![io_error(&source, &e)]))?;
    parse_template_bytes(&source, &bytes, environment, &check_builtin_config)
}

fn collect(path: &Path, files: &mut Vec<PathBuf>, errors: &mut Vec<TemplateError>) {
    let source = path.display().to_string();
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) => return errors.push(io_error(&source, &e)),
    };
    if meta.is_file() {
        files.push(path.to_path_buf());
        return;
    }
    let entries = match std::fs::read_dir(path) {
        Ok(rd) => rd,
        Err(e) => return errors.push(io_error(&source, &e)),
    };
    let mut children: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    children.sort();
    for child in children {
        if child.is_dir() {
            collect(&child, files, errors);
        } else if matches!(
            child.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml")
        ) {
            files.push(child);
        }
    }
}

fn io_error(source: &str, e: &std::io::Error) -> TemplateError {
    TemplateError {
        source: source.to_string(),
        line: None,
        column: None,
        field: String::new(),
        message: format!("cannot read: {e}"),
    }
}

/// Parses a template from a string (no file), naming it `source` in errors.
pub fn parse_str(source: &str, yaml: &str) -> Result<TaskTemplate, TemplateErrors> {
    parse_template_checked(source, yaml, None, &check_builtin_config)
}
