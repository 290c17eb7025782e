//! Claim on completion: the transaction that records a step's outcome
//! leases the children it made ready to the same worker, which runs them at
//! once: a chain runs with no wake-up between its stages (the claim loop is
//! never needed), and with the setting off every stage needs one.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use tasker_core::TaskState;
use tasker_engine::TaskRequest;
use tasker_store::StoreEvent;
use tokio::sync::broadcast::error::TryRecvError;

const STAGES: usize = 10;

fn chain_yaml() -> String {
    let mut y = String::from("name: chain\nstep_templates:\n");
    for i in 0..STAGES {
        y.push_str(&format!(
            "  - name: s{i}\n    handler: {{ kind: record }}\n"
        ));
        if i > 0 {
            y.push_str(&format!("    depends_on_step: s{}\n", i - 1));
        }
    }
    y
}

/// Runs one chain and returns how many `WorkAvailable` wake-ups the store
/// announced meanwhile (task creation included).
async fn wake_ups(claim_on_completion: bool) -> usize {
    let (store, _dir) = sqlite().await;
    let rec = Recorder::default();
    let mut config = test_config();
    config.claim_on_completion = claim_on_completion;
    let tasker = builder(store.clone())
        .config(config)
        .handler("record", rec.clone())
        .template(template(&chain_yaml()))
        .build()
        .unwrap();
    let mut events = store.subscribe();
    let task = run_once(&tasker, TaskRequest::new("default", "chain")).await;
    assert_eq!(task.status, TaskState::Complete);
    assert_eq!(rec.calls().len(), STAGES, "each stage ran once");
    let mut n = 0;
    loop {
        match events.try_recv() {
            Ok(StoreEvent::WorkAvailable) => n += 1,
            Ok(_) => {}
            Err(TryRecvError::Lagged(_)) => panic!("event buffer too small for the test"),
            Err(_) => return n,
        }
    }
}

#[tokio::test]
async fn a_chain_runs_without_a_wake_up_between_stages() {
    assert_eq!(
        wake_ups(true).await,
        1,
        "only the task's creation announces work; every later stage was leased on completion"
    );
    assert_eq!(
        wake_ups(false).await,
        STAGES,
        "without claim on completion, each stage is announced and claimed"
    );
}
