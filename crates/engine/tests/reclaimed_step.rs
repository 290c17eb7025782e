//! In-flight leases are keyed by (step, lease token). After an outage longer
//! than the lease (played here with an injected clock: the clock jumps past
//! the lease and the step is rescued, as another process would), this worker
//! claims the same step again while the old attempt is still running. The
//! old attempt's late outcome is refused (lease lost) and must release only
//! its own lease: the new attempt stays tracked, so this worker still renews
//! and can abort it. Keyed by step id alone, the late outcome dropped the new
//! attempt's entry: its heartbeat stopped (the step ran a third time after
//! expiry) and shutdown could not abort it (here: shutdown hung).
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use tasker_core::StepState;
use tasker_engine::clock::{Clock, ManualClock};
use tasker_engine::{EngineConfig, StepContext, StepError, StepHandler, TaskRequest};
use tokio::sync::{Notify, mpsc};

/// Attempt 1 returns when `release_first` is notified; attempt 2 never returns.
#[derive(Clone)]
struct Gated {
    started: mpsc::UnboundedSender<u32>,
    release_first: Arc<Notify>,
}

#[async_trait::async_trait]
impl StepHandler for Gated {
    async fn call(&self, step: &StepContext) -> Result<Value, StepError> {
        let _ = self.started.send(step.attempt);
        if step.attempt == 1 {
            self.release_first.notified().await;
            return Ok(json!({ "attempt": 1 }));
        }
        std::future::pending::<()>().await;
        unreachable!()
    }
}

#[derive(Clone, Default)]
struct Capture(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Capture {
    type Writer = Capture;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

impl Capture {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_late_outcome_of_an_old_attempt_keeps_the_new_attempt_tracked() {
    let capture = Capture::default();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter("tasker_engine=warn")
        .with_writer(capture.clone())
        .finish();
    // current_thread: the worker's tasks run on this thread, under this subscriber.
    let _guard = tracing::subscriber::set_default(subscriber);

    let (store, _dir) = sqlite().await;
    let clock = Arc::new(ManualClock::new(chrono::Utc::now()));
    let (started_tx, mut started) = mpsc::unbounded_channel();
    let release_first = Arc::new(Notify::new());
    let config = EngineConfig {
        // Lease time is the injected clock's; the loops run on real time and
        // are kept out of the way: this test drives rescue itself.
        lease_duration: Duration::from_secs(3600),
        heartbeat_interval: Duration::from_secs(1800),
        rescue_interval: Duration::from_secs(3600),
        poll_interval: Duration::from_millis(20),
        shutdown_timeout: Duration::from_millis(300),
        max_concurrent_steps: 4,
        ..test_config()
    };
    let tasker = builder(store.clone())
        .config(config)
        .clock(clock.clone())
        .handler(
            "gated",
            Gated {
                started: started_tx,
                release_first: release_first.clone(),
            },
        )
        .template(template(
            "name: gated\nstep_templates:\n  - name: a\n    handler: { kind: gated }\n    default_retry_limit: 5\n",
        ))
        .build()
        .unwrap();
    let worker = tasker.start();
    let task = tasker
        .create_task(TaskRequest::new("default", "gated"))
        .await
        .unwrap();
    assert_eq!(started.recv().await, Some(1));

    // The outage outlasts the lease: the step is rescued (as by another
    // process) while attempt 1 still runs here, and this worker claims it again.
    clock.advance(chrono::Duration::hours(2));
    assert_eq!(store.step_rescue_expired(clock.now(), 10).await.unwrap(), 1);
    assert_eq!(started.recv().await, Some(2));

    // Attempt 1 finishes late; its outcome is refused (lease lost).
    release_first.notify_one();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !capture.text().contains("result ignored: lease lost") {
        assert!(tokio::time::Instant::now() < deadline, "{}", capture.text());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // Attempt 2 is still the step's lease, and still this worker's to abort:
    // shutdown reaches its deadline with exactly that one step abandoned.
    let step = &store.step_list(task.id).await.unwrap()[0];
    assert_eq!(step.status, StepState::InProgress);
    assert_eq!(step.attempts, 2);
    let report = tokio::time::timeout(Duration::from_secs(10), worker.shutdown())
        .await
        .expect("shutdown hung: the re-claimed attempt was no longer tracked");
    assert_eq!(report.abandoned, 1);
    // No "lease lost; aborting" for the new attempt: it was never lost.
    assert!(
        !capture.text().contains("aborting handler"),
        "{}",
        capture.text()
    );
}
