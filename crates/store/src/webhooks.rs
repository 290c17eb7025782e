//! Webhook subscribers and the durable delivery of events to them
//! (docs/EVENTS.md, "Webhooks").
//!
//! Each subscriber has a cursor: the highest event id already *fanned out*
//! to it. [`crate::Store::webhook_fanout`] turns the events after the
//! cursor that match the subscriber's filters into delivery rows, one per
//! (event, subscriber) pair, and moves the cursor, in one transaction (so a
//! pair is written once however many processes fan out). Event ids ascend
//! in commit order, so the cursor misses nothing.
//!
//! A delivery is claimed under a lease (owner, token, expiry), like a step:
//! a claimed pair is in flight until its lease expires or its outcome is
//! written with the token. A claim never returns a pair while an earlier
//! event of the same task is still pending for the same subscriber, so a
//! task's events reach each subscriber in event-id order, one at a time,
//! while different tasks proceed in parallel. Dead letters do not block
//! later events (see docs/EVENTS.md).
//!
//! Events are referenced by id value, never by a foreign key: the events
//! table may be partitioned, and a delivery whose event was pruned comes
//! back from a claim with `event: None` (the dispatcher dead-letters it).

use crate::outbox::{EventRow, type_matches};
use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

/// Where a subscriber was defined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WebhookSource {
    /// `[[webhooks]]` in the configuration, synced into the database at
    /// start (deleted there when removed from the configuration).
    Config,
    /// Created through `POST /tasker/webhooks`.
    Api,
}

impl WebhookSource {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            WebhookSource::Config => "config",
            WebhookSource::Api => "api",
        }
    }

    /// The stored name back (unknown names are `None`).
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "config" => Some(WebhookSource::Config),
            "api" => Some(WebhookSource::Api),
            _ => None,
        }
    }
}

/// A subscriber to create (or, for config ones, to sync).
#[derive(Debug, Clone, PartialEq)]
pub struct NewWebhook {
    /// Its id (kept when a config subscriber already exists by name).
    pub id: Uuid,
    /// Unique name.
    pub name: String,
    /// Where events are POSTed (already checked against the SSRF policy).
    pub url: String,
    /// Type patterns (`task.*`, `step.failed`, `*`); at least one.
    pub event_types: Vec<String>,
    /// Only events of tasks in these namespaces; empty: every namespace.
    pub namespaces: Vec<String>,
    /// HMAC-SHA256 key of the `Tasker-Signature` header (None: unsigned).
    pub secret: Option<String>,
    /// Attempts before a delivery is dead-lettered.
    pub max_attempts: u32,
    /// Per-request timeout, in milliseconds.
    pub timeout_ms: u32,
    /// Config or API.
    pub source: WebhookSource,
    /// When.
    pub now: DateTime<Utc>,
}

/// The columns of `webhooks` that [`WebhookRow`] is read from, as both
/// stores name them: a macro expanding to a string literal, so a store can
/// `concat!` it into a statement.
#[macro_export]
macro_rules! webhook_columns {
    () => {
        "id, name, url, event_types, namespaces, secret, max_attempts, timeout_ms, source, \
         event_cursor, created_at, updated_at"
    };
}

/// The columns of `webhook_deliveries` that [`DeliveryRow`] is read from
/// (see [`webhook_columns!`]).
#[macro_export]
macro_rules! delivery_columns {
    () => {
        "webhook_id, event_id, task_id, event_type, event_created_at, status, attempts, \
         next_attempt_at, lease_owner, lease_expires_at, last_error, last_status_code, \
         delivered_at, created_at, updated_at"
    };
}

/// A stored subscriber.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WebhookRow {
    /// Its id.
    pub id: Uuid,
    /// Unique name.
    pub name: String,
    /// Where events are POSTed.
    pub url: String,
    /// Type patterns.
    pub event_types: Vec<String>,
    /// Namespaces (empty: all).
    pub namespaces: Vec<String>,
    /// The signing key; never serialised (the API says only whether there is one).
    #[serde(skip)]
    pub secret: Option<String>,
    /// Attempts before a delivery is dead-lettered.
    pub max_attempts: u32,
    /// Per-request timeout, in milliseconds.
    pub timeout_ms: u32,
    /// Config or API.
    pub source: WebhookSource,
    /// Highest event id already fanned out to it.
    pub event_cursor: i64,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed (config sync).
    pub updated_at: DateTime<Utc>,
}

impl WebhookRow {
    /// Whether an event of `event_type` in `namespace` goes to this subscriber.
    pub fn wants(&self, event_type: &str, namespace: &str) -> bool {
        self.event_types.iter().any(|p| type_matches(p, event_type))
            && (self.namespaces.is_empty() || self.namespaces.iter().any(|n| n == namespace))
    }
}

/// The state of one (event, subscriber) pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Waiting for its attempt (or in flight while its lease holds).
    Pending,
    /// The receiver answered 2xx.
    Delivered,
    /// Every attempt failed (or the event was pruned): a dead letter.
    Dead,
}

impl DeliveryStatus {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Dead => "dead",
        }
    }

    /// The stored name back (unknown names are `None`).
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(DeliveryStatus::Pending),
            "delivered" => Some(DeliveryStatus::Delivered),
            "dead" => Some(DeliveryStatus::Dead),
            _ => None,
        }
    }
}

/// One (event, subscriber) pair as stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeliveryRow {
    /// The subscriber.
    pub webhook_id: Uuid,
    /// The event (by value).
    pub event_id: i64,
    /// The event's task.
    pub task_id: Uuid,
    /// The event's type.
    pub event_type: String,
    /// When the event happened.
    pub event_created_at: DateTime<Utc>,
    /// Pending, delivered or dead.
    pub status: DeliveryStatus,
    /// Attempts started so far (a claim counts one).
    pub attempts: u32,
    /// Earliest time of the next attempt (pending only).
    pub next_attempt_at: DateTime<Utc>,
    /// The dispatcher holding it, while in flight.
    pub lease_owner: Option<String>,
    /// Until when it is held (an expired lease is claimed again).
    pub lease_expires_at: Option<DateTime<Utc>>,
    /// What went wrong last.
    pub last_error: Option<String>,
    /// The receiver's last HTTP status.
    pub last_status_code: Option<u16>,
    /// When it was delivered.
    pub delivered_at: Option<DateTime<Utc>>,
    /// When it was fanned out.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// What to claim.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryClaim {
    /// The dispatcher (lease owner).
    pub owner: String,
    /// At most this many pairs.
    pub limit: u32,
    /// Now.
    pub now: DateTime<Utc>,
    /// The lease expiry written.
    pub lease_until: DateTime<Utc>,
}

/// A claimed pair, with what the dispatcher needs to send it.
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimedDelivery {
    /// The subscriber as stored.
    pub webhook: WebhookRow,
    /// The event id (the pair's key with the subscriber id).
    pub event_id: i64,
    /// The event; `None` when it was pruned before delivery.
    pub event: Option<EventRow>,
    /// This attempt's number (1 for the first).
    pub attempt: u32,
    /// Proves the lease when the outcome is written.
    pub lease_token: Uuid,
}

/// How one attempt ended.
#[derive(Debug, Clone, PartialEq)]
pub enum DeliveryResult {
    /// The receiver answered 2xx.
    Delivered {
        /// Its status.
        status_code: u16,
    },
    /// The attempt failed; `retry_at: None` dead-letters the pair.
    Failed {
        /// What went wrong (shown in the API).
        error: String,
        /// The receiver's status, when it answered.
        status_code: Option<u16>,
        /// When to try again (`None`: give up).
        retry_at: Option<DateTime<Utc>>,
    },
}

/// The outcome of a claimed pair.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryOutcome {
    /// The subscriber.
    pub webhook_id: Uuid,
    /// The event.
    pub event_id: i64,
    /// The claim's token; an outcome whose lease was lost (expired and
    /// claimed again) is ignored.
    pub lease_token: Uuid,
    /// How it ended.
    pub result: DeliveryResult,
    /// When.
    pub now: DateTime<Utc>,
}

/// Which deliveries to list.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryQuery {
    /// The subscriber.
    pub webhook_id: Uuid,
    /// Only this status.
    pub status: Option<DeliveryStatus>,
    /// Only event ids above this.
    pub after: i64,
    /// At most this many (callers cap it).
    pub limit: u32,
}
