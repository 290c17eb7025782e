//! # tasker-engine
//!
//! Runs workflows on top of any [`tasker_store::Store`].
//!
//! | module | role |
//! |---|---|
//! | [`service`] | [`Tasker`], the application service: templates, task creation, waiting, operator actions |
//! | [`handler`] | the [`StepHandler`] trait, [`StepContext`], [`StepError`], the registry of kinds |
//! | [`handlers`] | built-in kinds: `noop`, `sleep`, `command`, `http` |
//! | `worker` | claimer, executor, completer, heartbeat, rescuer ([`WorkerHandle`]) |
//! | [`requests`] | the rules of operator requests (text, tags, paging, filters, edits) every interface shares |
//! | [`background`] | loops every process runs with or without workers: event pruner, webhook dispatcher |
//! | [`webhooks`] | webhook subscribers: registration (SSRF policy), deliveries, dead letters, the dispatcher, signatures |
//! | [`events`] | lifecycle events: reading (masked), long polling, custom events, history, pruning |
//! | [`external`] | external workers: claim with long polling, heartbeat, complete, fail |
//! | [`flow`] | pausing a whole namespace or template (the incident switch) |
//! | [`restart`] | restart a task from a step |
//! | [`schedules`] | schedules: create, list, pause, trigger, and the scheduler's pass |
//! | [`retry`] | the retry decision shared by in-process and external handlers |
//! | [`config`] | [`EngineConfig`] |
//! | [`templates`] | loading template files and directories |
//! | [`clock`] | injectable time |
//!
//! ```no_run
//! # async fn demo(store: std::sync::Arc<dyn tasker_store::Store>) -> Result<(), Box<dyn std::error::Error>> {
//! use tasker_engine::{Tasker, TaskRequest};
//! let tasker = Tasker::builder(store).template_path("examples/templates").build()?;
//! let task = tasker.create_task(TaskRequest::new("default", "hello").context(serde_json::json!({}))).await?;
//! let worker = tasker.start();
//! let done = tasker.wait_for_task(task.id, std::time::Duration::from_secs(30)).await?;
//! worker.shutdown().await;
//! println!("{}", done.status);
//! # Ok(()) }
//! ```

pub mod analytics;
pub mod background;
pub mod clock;
pub mod config;
pub mod error;
pub mod events;
pub mod external;
pub mod flow;
pub mod flow_pause;
pub mod handler;
pub mod handlers;
pub mod metrics;
pub mod requests;
pub mod restart;
pub mod retention;
pub mod retry;
pub mod schedules;
pub mod service;
pub mod telemetry;
pub mod templates;
mod wait;
pub mod webhooks;
mod worker;

pub use background::ServicesHandle;
pub use config::EngineConfig;
pub use error::EngineError;
pub use events::{EventEmitter, HistoryEntry};
pub use handler::{HandlerRegistry, StepContext, StepError, StepHandler};
pub use service::{TaskRequest, TaskStatus, Tasker, TaskerBuilder};
pub use worker::{Shutdown, WorkerHandle};
