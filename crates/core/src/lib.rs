//! # tasker-core
//!
//! The pure domain model of Tasker. Nothing here does I/O, spawns tasks or
//! reads the clock: time comes in as arguments, so every rule is a plain
//! function that unit and property tests can pin down.
//!
//! | module | what it holds |
//! |---|---|
//! | [`template`] | YAML task templates: two-stage parsing, validation with file:line errors |
//! | [`dag`] | dependency graphs: cycle paths, topological order, levels |
//! | [`state`] | task and step state machines (the reference's transition tables) |
//! | [`backoff`] | retry delays: schedule, exponential growth, cap, deterministic jitter |
//! | [`flow`] | concurrency keys and rate limits as templates and configuration declare them |
//! | [`execution`] | the execution context derived from step counts, and the finaliser's rule |
//! | [`registry`] | templates keyed by namespace, name and semver version |
//! | [`schedule`] | schedules: cron / interval timers, due ticks per catch-up mode, tick contexts |
//! | [`identity`] | duplicate-request detection by request hash |
//! | [`mask`] | masking sensitive values in logs and error output |
//! | [`time`](mod@time) | the one timestamp format (RFC 3339, UTC, microseconds) |
//! | [`analysis`] | runtime dependency analysis of a task: critical paths, bottlenecks, error chains |
//!
//! ```
//! use tasker_core::template::parse_template;
//! let yaml = "
//! name: greet
//! step_templates:
//!   - name: hello
//!     handler: { kind: noop }
//!   - name: world
//!     depends_on_step: hello
//!     handler: { kind: noop }
//! ";
//! let t = parse_template("greet.yaml", yaml, None).unwrap();
//! assert_eq!(t.full_name(), "default.greet@0.1.0");
//! assert_eq!(t.dag.levels(), &[0, 1]);
//! ```

pub mod analysis;
pub mod backoff;
pub mod dag;
pub mod execution;
pub mod flow;
pub mod identity;
pub mod mask;
pub mod registry;
pub mod retry;
pub mod schedule;
pub mod state;
pub mod template;
pub mod time;

pub use backoff::BackoffPolicy;
pub use execution::{ExecutionContext, ExecutionStatus, HealthStatus, StepCounts};
pub use registry::TemplateRegistry;
pub use state::{InvalidTransition, StepState, TaskState};
pub use template::{HandlerSpec, StepTemplate, TaskTemplate};
