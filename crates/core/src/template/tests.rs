use super::*;
use serde_json::json;

const DIAMOND: &str = "\
name: diamond
namespace: shapes
version: 1.2.3
description: a diamond
context_schema:
  type: object
  required: [amount]
  properties:
    amount: { type: number, minimum: 0 }
step_templates:
  - name: start
    handler: { kind: noop }
  - name: left
    depends_on_step: start
    handler: { kind: noop }
  - name: right
    depends_on_steps: [start]
    handler: { kind: command, config: { program: echo } }
    default_retry_limit: 5
    timeout_seconds: 2.5
  - name: merge
    depends_on_steps: [left, right]
    handler: { kind: noop }
environments:
  production:
    step_templates:
      - name: right
        handler: { config: { args: [hi] } }
        default_retry_limit: 9
";

fn errs(yaml: &str) -> Vec<TemplateError> {
    parse_template("t.yaml", yaml, None).unwrap_err().0
}

#[test]
fn parses_with_defaults() {
    let t = parse_template("t.yaml", DIAMOND, None).unwrap();
    assert_eq!(t.full_name(), "shapes.diamond@1.2.3");
    assert_eq!(t.steps.len(), 4);
    assert_eq!(t.steps[3].depends_on, vec!["left", "right"]);
    assert_eq!(t.steps[0].retry_limit, DEFAULT_RETRY_LIMIT);
    assert_eq!(t.steps[0].dependent_system, "unknown");
    assert_eq!(t.steps[2].retry_limit, 5);
    assert_eq!(t.steps[2].timeout_seconds, Some(2.5));
    assert_eq!(t.dag.levels(), &[0, 1, 1, 2]);
    let min = parse_template(
        "m.yaml",
        "name: m\nstep_templates:\n  - name: a\n    handler: {kind: noop}\n",
        None,
    )
    .unwrap();
    assert_eq!(min.namespace, "default");
    assert_eq!(min.version.to_string(), "0.1.0");
}

#[test]
fn environment_overrides_merge_by_name() {
    let t = parse_template("t.yaml", DIAMOND, Some("production")).unwrap();
    assert_eq!(t.steps[2].retry_limit, 9);
    assert_eq!(
        t.steps[2].handler.config,
        json!({"program": "echo", "args": ["hi"]})
    );
    let dev = parse_template("t.yaml", DIAMOND, Some("development")).unwrap();
    assert_eq!(dev.steps[2].retry_limit, 5);
}

#[test]
fn context_schema_reports_paths() {
    let t = parse_template("t.yaml", DIAMOND, None).unwrap();
    assert!(t.validate_context(&json!({"amount": 3})).is_ok());
    let v = t.validate_context(&json!({"amount": -1})).unwrap_err();
    assert_eq!(v[0].path, "/amount");
    let v = t.validate_context(&json!({})).unwrap_err();
    assert!(v[0].message.contains("amount"), "{v:?}");
}

#[test]
fn unknown_key_names_line_and_key() {
    let e = errs(
        "name: x\nstep_templates:\n  - name: a\n    handler: {kind: noop}\n    depends_on_stpe: b\n",
    );
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].line, Some(5), "{e:?}");
    assert!(
        e[0].message.starts_with("unknown field `depends_on_stpe`"),
        "{}",
        e[0]
    );
    assert!(e[0].to_string().starts_with("t.yaml:5:"), "{}", e[0]);
}

#[test]
fn missing_field_is_reported() {
    let e = errs("name: x\nstep_templates:\n  - name: a\n");
    assert!(e[0].message.contains("handler"), "{}", e[0]);
}

#[test]
fn duplicate_and_unknown_dependencies_all_reported_with_lines() {
    let yaml = "name: x\nstep_templates:\n  - name: a\n    handler: {kind: noop}\n  - name: a\n    handler: {kind: noop}\n  - name: c\n    depends_on_steps: [a, ghost]\n    handler: {kind: noop}\n";
    let e = errs(yaml);
    assert_eq!(e.len(), 2, "{e:?}");
    assert_eq!(e[0].line, Some(5));
    assert_eq!(e[0].field, "step_templates[1].name");
    assert!(e[0].message.contains("duplicate step name `a`"));
    assert_eq!(e[1].line, Some(8));
    assert_eq!(e[1].field, "step_templates[2].depends_on_steps[1]");
    assert!(e[1].message.contains("unknown step `ghost`"));
}

#[test]
fn cycle_prints_its_path() {
    let yaml = "name: x\nstep_templates:\n  - name: a\n    handler: {kind: noop}\n  - name: b\n    depends_on_steps: [a, c]\n    handler: {kind: noop}\n  - name: c\n    depends_on_step: b\n    handler: {kind: noop}\n";
    let e = errs(yaml);
    assert_eq!(e.len(), 1);
    assert!(
        e[0].message.contains("dependency cycle: b -> c -> b"),
        "{}",
        e[0]
    );
    assert_eq!(e[0].line, Some(5));
}

#[test]
fn bad_semver_and_names() {
    let e =
        errs("name: x y\nversion: 1.0\nstep_templates:\n  - name: a\n    handler: {kind: noop}\n");
    assert_eq!(e.len(), 2, "{e:?}");
    assert_eq!(e[0].field, "name");
    assert_eq!(e[1].field, "version");
    assert_eq!(e[1].line, Some(2));
}

#[test]
fn bad_yaml_syntax_has_a_line() {
    let e = errs("name: x\nstep_templates: [\n");
    assert!(e[0].line.is_some(), "{e:?}");
}

#[test]
fn invalid_schema_and_timeout_rejected() {
    let e = errs(
        "name: x\ncontext_schema: {type: 12}\nstep_templates:\n  - name: a\n    handler: {kind: noop}\n    timeout_seconds: -1\n",
    );
    let fields: Vec<&str> = e.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(
        fields,
        ["context_schema", "step_templates[0].timeout_seconds"]
    );
}

#[test]
fn override_of_unknown_step_is_an_error() {
    let yaml = "name: x\nstep_templates:\n  - name: a\n    handler: {kind: noop}\nenvironments:\n  prod:\n    step_templates:\n      - name: b\n        default_retry_limit: 1\n";
    assert!(parse_template("t.yaml", yaml, None).is_ok());
    let e = parse_template("t.yaml", yaml, Some("prod")).unwrap_err().0;
    assert!(e[0].message.contains("unknown step `b`"));
}

#[test]
fn not_retryable_means_one_attempt() {
    let t = parse_template("t.yaml", "name: x\nstep_templates:\n  - name: a\n    handler: {kind: noop}\n    default_retryable: false\n", None).unwrap();
    assert_eq!(t.steps[0].max_attempts(), 1);
}

#[test]
fn retry_schedule_parses_and_environments_replace_it() {
    let yaml = "name: x\nstep_templates:\n  - name: call\n    handler: {kind: noop}\n    retry:\n      delays: [1, 5, 30, 300]\n      by_code: {HTTP_429: {strategy: exponential, base: 60, max: 600}}\n      no_retry_on: [HTTP_400]\nenvironments:\n  test:\n    step_templates:\n      - name: call\n        retry: {delays: [0]}\n";
    let t = parse_template("t.yaml", yaml, None).unwrap();
    let r = t.steps[0].retry.as_ref().unwrap();
    assert_eq!(
        r.backoff,
        Some(crate::retry::Backoff::Delays {
            delays: vec![1.0, 5.0, 30.0, 300.0]
        })
    );
    assert!(r.by_code.contains_key("HTTP_429"));
    assert!(r.no_retry_on.contains("HTTP_400"));
    let t = parse_template("t.yaml", yaml, Some("test")).unwrap();
    assert_eq!(
        t.steps[0].retry.as_ref().unwrap().backoff,
        Some(crate::retry::Backoff::Delays { delays: vec![0.0] })
    );
    let plain = parse_template("t.yaml", DIAMOND, None).unwrap();
    assert!(plain.steps.iter().all(|s| s.retry.is_none()));
}

#[test]
fn bad_retry_schedule_names_the_field_and_line() {
    let e = errs(
        "name: x\nstep_templates:\n  - name: a\n    handler: {kind: noop}\n    retry: {delays: [1, -5]}\n",
    );
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!(e[0].field, "step_templates[0].retry.delays[1]");
    assert_eq!(e[0].line, Some(5));
    let e = errs(
        "name: x\nstep_templates:\n  - name: a\n    handler: {kind: noop}\n    retry: {strategy: exponential}\n",
    );
    assert_eq!(e[0].field, "step_templates[0].retry.base");
}

#[test]
fn concurrency_and_rate_limit_parse() {
    let yaml = "name: x\nstep_templates:\n  - name: a\n    handler: {kind: noop}\n    concurrency: {key: \"c:{{context.customer_id}}\", limit: 2}\n    rate_limit: payments_api\n  - name: b\n    handler: {kind: noop}\n    rate_limit: {name: payments_api, key: \"{{inputs.region}}\"}\n";
    let t = parse_template("t.yaml", yaml, None).unwrap();
    assert_eq!(
        t.steps[0].concurrency,
        Some(crate::flow::ConcurrencySpec {
            key: "c:{{context.customer_id}}".into(),
            limit: 2
        })
    );
    assert_eq!(
        t.steps[0].rate_limit,
        Some(crate::flow::RateLimitRef {
            name: "payments_api".into(),
            key: None
        })
    );
    assert_eq!(
        t.steps[1].rate_limit.as_ref().unwrap().key.as_deref(),
        Some("{{inputs.region}}")
    );
    assert!(t.steps[1].concurrency.is_none());
}

#[test]
fn bad_concurrency_and_rate_limit_name_the_field_and_line() {
    let e = errs(
        "name: x\nstep_templates:\n  - name: a\n    handler: {kind: noop}\n    concurrency: {key: \"{{parents.p.id}}\", limit: 0}\n    rate_limit: \"no spaces\"\n",
    );
    let got: Vec<(&str, Option<u32>)> = e.iter().map(|e| (e.field.as_str(), e.line)).collect();
    assert_eq!(
        got,
        [
            ("step_templates[0].concurrency.key", Some(5)),
            ("step_templates[0].concurrency.limit", Some(5)),
            ("step_templates[0].rate_limit", Some(6)),
        ],
        "{e:?}"
    );
    assert!(e[0].message.contains("only use context, inputs or task"));
    assert!(e[1].message.contains("between 1 and 100000"));
    let e = errs(
        "name: x\nstep_templates:\n  - name: a\n    handler: {kind: noop}\n    concurrency: {key: k, limit: 2, extra: 1}\n",
    );
    assert!(e[0].message.contains("unknown field `extra`"), "{e:?}");
}

#[test]
fn max_running_tasks_parses_and_bad_values_name_the_line() {
    let t = parse_template(
        "t.yaml",
        "name: x\nmax_running_tasks: 3\nstep_templates:\n  - name: a\n    handler: {kind: noop}\n",
        None,
    )
    .unwrap();
    assert_eq!(t.max_running_tasks, Some(3));
    let t = parse_template(
        "t.yaml",
        "name: x\nstep_templates:\n  - name: a\n    handler: {kind: noop}\n",
        None,
    )
    .unwrap();
    assert_eq!(t.max_running_tasks, None);
    for bad in ["0", "-1", "100001"] {
        let e = errs(&format!(
            "name: x\nstep_templates:\n  - name: a\n    handler: {{kind: noop}}\nmax_running_tasks: {bad}\n"
        ));
        assert_eq!(e.len(), 1, "{e:?}");
        assert_eq!(e[0].field, "max_running_tasks");
        assert_eq!(e[0].line, Some(5));
        assert!(e[0].message.contains("between 1 and 100000"), "{e:?}");
    }
    let e = errs(
        "name: x\nmax_running_tasks: two\nstep_templates:\n  - name: a\n    handler: {kind: noop}\n",
    );
    assert_eq!(e[0].line, Some(2), "{e:?}");
}

#[test]
fn schedules_in_a_template_file() {
    let yaml = "\
name: report
namespace: ops
step_templates:
  - name: build
    handler: { kind: noop }
schedules:
  - name: nightly
    cron: \"0 2 * * *\"
    timezone: Europe/Paris
    catch_up: all
    context: { day: \"{{schedule.date}}\" }
  - name: poll
    every_seconds: 30
";
    let t = parse_template("r.yaml", yaml, None).expect("valid");
    assert_eq!(t.schedules.len(), 2);
    assert_eq!(t.schedules[0].namespace, "ops");
    assert_eq!(t.schedules[0].template, "report");
    assert_eq!(t.schedules[0].catch_up, crate::schedule::CatchUp::All);
    assert_eq!(t.schedules[1].every_seconds, Some(30));

    let bad = "\
name: report
step_templates:
  - name: build
    handler: { kind: noop }
schedules:
  - name: nightly
    cron: \"0 25 * * *\"
";
    let e = parse_template("r.yaml", bad, None).expect_err("bad cron");
    assert_eq!(e.0[0].field, "schedules[0].cron");
    assert_eq!(e.0[0].line, Some(6));
}
