//! Retention through the engine: windows per namespace, batches, the gzip
//! JSON-lines archive written before the delete, dry runs, and the
//! background pruner in a worker process.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use std::io::Read;
use std::sync::Arc;
use std::time::Duration;
use tasker_engine::clock::ManualClock;
use tasker_engine::retention::{PruneOptions, RetentionConfig};
use tasker_engine::{EngineConfig, TaskRequest, Tasker};
use tasker_store::{Store, StoreError};

const DAY: u64 = 86_400;

fn engine(store: Arc<dyn Store>, clock: Arc<ManualClock>, retention: RetentionConfig) -> Tasker {
    builder(store)
        .config(EngineConfig {
            retention,
            ..test_config()
        })
        .clock(clock)
        .template(template("name: one\nstep_templates:\n  - name: a\n    handler: { kind: noop }\n"))
        .template(template(
            "name: one\nnamespace: keep\nstep_templates:\n  - name: a\n    handler: { kind: noop }\n",
        ))
        .build()
        .unwrap()
}

fn archive_lines(files: &[std::path::PathBuf]) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    for f in files {
        let mut text = String::new();
        flate2::read::GzDecoder::new(std::fs::File::open(f).unwrap())
            .read_to_string(&mut text)
            .unwrap();
        out.extend(text.lines().map(|l| serde_json::from_str(l).unwrap()));
    }
    out
}

#[tokio::test]
async fn prune_archives_then_deletes_by_namespace_window() {
    let (store, dir) = sqlite().await;
    let clock = Arc::new(ManualClock::new(chrono::Utc::now()));
    let archive = dir.path().join("archive");
    let retention = RetentionConfig {
        enabled: false,
        finished_task_window: Duration::from_secs(30 * DAY),
        namespaces: [("keep".to_string(), Duration::from_secs(90 * DAY))].into(),
        archive_dir: Some(archive.clone()),
        batch_size: 2,
        ..RetentionConfig::default()
    };
    let tasker = engine(store.clone(), clock.clone(), retention);
    let mut old = Vec::new();
    for _ in 0..3 {
        old.push(
            run_once(&tasker, TaskRequest::new("default", "one"))
                .await
                .id,
        );
    }
    let kept = run_once(&tasker, TaskRequest::new("keep", "one")).await.id;

    // Inside every window: nothing to prune.
    clock.advance(chrono::Duration::days(29));
    assert_eq!(
        tasker.prune(&PruneOptions::default()).await.unwrap().tasks,
        0
    );

    // Past the default window only.
    clock.advance(chrono::Duration::days(2));
    let dry = tasker
        .prune(&PruneOptions {
            dry_run: true,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!((dry.tasks, dry.files.len()), (3, 0), "a dry run counts");
    assert!(store.task_get(old[0]).await.is_ok(), "and deletes nothing");

    let done = tasker.prune(&PruneOptions::default()).await.unwrap();
    assert_eq!((done.tasks, done.archived), (3, 3));
    assert_eq!(done.files.len(), 2, "batches of two");
    let lines = archive_lines(&done.files);
    let mut ids: Vec<String> = lines
        .iter()
        .map(|l| l["task"]["id"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    let mut want: Vec<String> = old.iter().map(|i| i.to_string()).collect();
    want.sort();
    assert_eq!(ids, want);
    let first = &lines[0];
    assert_eq!(first["task"]["status"], "complete");
    assert_eq!(first["steps"].as_array().unwrap().len(), 1);
    assert!(!first["transitions"].as_array().unwrap().is_empty());
    let step_id = first["steps"][0]["id"].as_str().unwrap();
    assert!(
        !first["step_transitions"][step_id]
            .as_array()
            .unwrap()
            .is_empty()
    );
    for id in &old {
        assert!(matches!(
            store.task_get(*id).await,
            Err(StoreError::NotFound { .. })
        ));
    }
    assert!(
        store.task_get(kept).await.is_ok(),
        "its namespace keeps 90 days"
    );

    // An operator's --older-than replaces every window.
    let forced = tasker
        .prune(&PruneOptions {
            dry_run: true,
            older_than: Some(Duration::from_secs(DAY)),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(forced.tasks, 1);
    clock.advance(chrono::Duration::days(60));
    assert_eq!(
        tasker.prune(&PruneOptions::default()).await.unwrap().tasks,
        1
    );
    assert!(store.task_get(kept).await.is_err());
}

#[tokio::test]
async fn a_worker_prunes_in_the_background() {
    let (store, _dir) = sqlite().await;
    let clock = Arc::new(ManualClock::new(chrono::Utc::now()));
    let retention = RetentionConfig {
        enabled: true,
        interval: Duration::from_millis(20),
        ..RetentionConfig::default()
    };
    let tasker = engine(store.clone(), clock.clone(), retention);
    let task = run_once(&tasker, TaskRequest::new("default", "one"))
        .await
        .id;
    clock.advance(chrono::Duration::days(31));
    let worker = tasker.start();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while store.task_get(task).await.is_ok() {
        assert!(tokio::time::Instant::now() < deadline, "never pruned");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    worker.shutdown().await;
}
