//! A webhook receiver for the tests: records every request (headers and raw
//! body), answers as told (accept, fail with 503, or hold the request open
//! without answering), and counts requests for an event id that arrive while
//! another for the same id is still open (a pair in flight twice).

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// How the receiver answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// 200.
    Accept,
    /// 503.
    Fail,
    /// Never answers (the request stays open until the sender goes away).
    Hold,
}

/// One request as received.
#[derive(Debug, Clone)]
pub struct Received {
    pub event_id: i64,
    pub event_type: String,
    pub task_id: String,
    pub attempt: u32,
    pub timestamp: String,
    pub signature: Option<String>,
    pub body: Vec<u8>,
    pub at: Instant,
}

#[derive(Clone)]
struct Shared {
    log: Arc<Mutex<Vec<Received>>>,
    mode: Arc<Mutex<Mode>>,
    arrived: Arc<Notify>,
    open: Arc<Mutex<HashMap<i64, usize>>>,
    overlaps: Arc<AtomicUsize>,
    /// Answer `Mode::Accept` requests after this long (work at the receiver).
    work: Duration,
}

/// A running receiver.
#[derive(Clone)]
pub struct Receiver {
    pub url: String,
    shared: Shared,
}

/// Removes a request from the open set when its handler ends or is dropped
/// (the sender closed the connection).
struct OpenGuard {
    open: Arc<Mutex<HashMap<i64, usize>>>,
    id: i64,
}

impl Drop for OpenGuard {
    fn drop(&mut self) {
        let mut open = self.open.lock().unwrap();
        if let Some(n) = open.get_mut(&self.id) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.id);
            }
        }
    }
}

async fn handle(State(s): State<Shared>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let h = |k: &str| {
        headers
            .get(k)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let Some(event_id) = h("tasker-event-id").and_then(|v| v.parse::<i64>().ok()) else {
        return StatusCode::BAD_REQUEST;
    };
    let task_id = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["task_id"].as_str().map(str::to_string))
        .unwrap_or_default();
    {
        let mut open = s.open.lock().unwrap();
        let n = open.entry(event_id).or_default();
        if *n > 0 {
            s.overlaps.fetch_add(1, Ordering::SeqCst);
        }
        *n += 1;
    }
    let _guard = OpenGuard {
        open: s.open.clone(),
        id: event_id,
    };
    let mode = *s.mode.lock().unwrap();
    s.log.lock().unwrap().push(Received {
        event_id,
        event_type: h("tasker-event-type").unwrap_or_default(),
        task_id,
        attempt: h("tasker-attempt")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
        timestamp: h("tasker-timestamp").unwrap_or_default(),
        signature: h("tasker-signature"),
        body: body.to_vec(),
        at: Instant::now(),
    });
    s.arrived.notify_waiters();
    match mode {
        Mode::Accept => {
            if !s.work.is_zero() {
                tokio::time::sleep(s.work).await;
            }
            StatusCode::OK
        }
        Mode::Fail => StatusCode::SERVICE_UNAVAILABLE,
        Mode::Hold => std::future::pending().await,
    }
}

impl Receiver {
    /// Serves on `listener` in `mode`; accepted requests take `work`.
    pub fn start(listener: tokio::net::TcpListener, mode: Mode, work: Duration) -> Receiver {
        let addr = listener.local_addr().unwrap();
        let shared = Shared {
            log: Arc::default(),
            mode: Arc::new(Mutex::new(mode)),
            arrived: Arc::new(Notify::new()),
            open: Arc::default(),
            overlaps: Arc::default(),
            work,
        };
        let app = Router::new()
            .route("/hook", post(handle))
            .with_state(shared.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver {
            url: format!("http://{addr}/hook"),
            shared,
        }
    }

    /// Changes how later requests are answered.
    pub fn set_mode(&self, mode: Mode) {
        *self.shared.mode.lock().unwrap() = mode;
    }

    /// Every request so far.
    pub fn log(&self) -> Vec<Received> {
        self.shared.log.lock().unwrap().clone()
    }

    /// Requests that arrived while one for the same event id was open.
    pub fn overlaps(&self) -> usize {
        self.shared.overlaps.load(Ordering::SeqCst)
    }

    /// Waits (woken by each request) until `done` holds for the log, at
    /// most `timeout`; returns whether it did.
    pub async fn wait_for(&self, timeout: Duration, done: impl Fn(&[Received]) -> bool) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.shared.arrived.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if done(&self.shared.log.lock().unwrap()) {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return done(&self.shared.log.lock().unwrap());
            }
        }
    }
}

/// The first arrival of each event id, in arrival order (the receiver's log
/// after deduplication by `Tasker-Event-Id`).
pub fn dedup(log: &[Received]) -> Vec<Received> {
    let mut seen = std::collections::HashSet::new();
    log.iter()
        .filter(|r| seen.insert(r.event_id))
        .cloned()
        .collect()
}

/// Asserts that each task's events arrived in event-id order.
pub fn assert_order_per_task(firsts: &[Received]) {
    let mut last: HashMap<&str, i64> = HashMap::new();
    for r in firsts {
        if let Some(prev) = last.insert(r.task_id.as_str(), r.event_id) {
            assert!(
                prev < r.event_id,
                "task {}: event {} arrived after {}",
                r.task_id,
                r.event_id,
                prev
            );
        }
    }
}
