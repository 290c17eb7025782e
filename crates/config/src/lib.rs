//! # tasker-config
//!
//! Typed, layered configuration. Later layers override earlier ones:
//!
//! 1. built-in defaults ([`TaskerConfig::default`]);
//! 2. a file, TOML or YAML by extension (`--config PATH` or `TASKER_CONFIG`);
//! 3. environment variables `TASKER__SECTION__KEY` (values parsed as JSON when
//!    they parse, else taken as strings: `TASKER__ENGINE__LEASE_SECONDS=10`,
//!    `TASKER__ENGINE__EXCLUDE_KINDS='["external"]'`).
//!
//! Loading reports **every** problem at once, each naming the key, where the
//! value came from (file and line, or the variable), the bad value and how to
//! fix it. Unknown keys are errors, with the closest known key suggested.
//!
//! | module | role |
//! |---|---|
//! | [`model`] | the configuration tree and its defaults |
//! | [`load`](mod@load) | layering and error collection |
//! | [`validate`](mod@validate) | cross-field and environment rules |
//! | [`locate`] | finding a key's line in a file |
//! | [`database`] | what a `database.url` names |
//! | [`events`](mod@events) | `[events]`: the event outbox's retention |
//! | [`webhooks`](mod@webhooks) | `[[webhooks]]`: subscribers defined in the configuration |
//! | [`scheduler`](mod@scheduler) | `[scheduler]`: the schedule loop |
//! | [`rules`] | the engine-setting rules, shared with the engine |

pub mod database;
pub mod events;
pub mod load;
pub mod locate;
pub mod model;
pub mod rules;
pub mod scheduler;
pub mod validate;
pub mod webhooks;

pub use database::{DATABASE_URL_FIX, DatabaseKind, database_kind};
pub use events::EventsConfig;
pub use load::{ConfigError, LoadOptions, Loaded, Source, load, load_with_problems};
pub use model::*;
pub use scheduler::SchedulerConfig;
pub use webhooks::WebhookConfig;
