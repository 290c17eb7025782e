//! Task annotations and the tag and annotation filters of task lists.

use super::factory::TaskBuilder;
use super::*;
use crate::{AnnotationFilter, NewAnnotation, TaskQuery};
use serde_json::json;

fn note(task_id: Uuid, kind: &str, content: Value, secs: i64) -> NewAnnotation {
    NewAnnotation {
        id: Uuid::now_v7(),
        task_id,
        annotation_type: kind.to_string(),
        content,
        created_by: Some("ops".into()),
        now: at(secs),
    }
}

/// What goes in comes back, grouped by task and oldest first; an unknown
/// task is `NotFound` and writes nothing.
pub async fn annotations_round_trip_grouped_by_task(store: Arc<dyn Store>) {
    let a = TaskBuilder::new("billing", "invoice")
        .step("s", &[])
        .build(at(0));
    let b = TaskBuilder::new("billing", "invoice")
        .step("s", &[])
        .build(at(1));
    store
        .task_create_many(vec![a.clone(), b.clone()])
        .await
        .unwrap();
    let later = store
        .annotation_create(note(a.id, "audit", json!({"n": 2, "deep": {"x": [1]}}), 20))
        .await
        .unwrap();
    let first = note(a.id, "audit", json!({"n": 1}), 10);
    let created = store.annotation_create(first.clone()).await.unwrap();
    assert_eq!(created.id, first.id);
    assert_eq!(created.task_id, a.id);
    assert_eq!(created.annotation_type, "audit");
    assert_eq!(created.content, json!({"n": 1}));
    assert_eq!(created.created_at, at(10));
    assert_eq!(created.created_by.as_deref(), Some("ops"));

    let missing = Uuid::now_v7();
    let got = store
        .annotation_list_many(&[a.id, b.id, missing])
        .await
        .unwrap();
    assert_eq!(got.len(), 1, "tasks without annotations are absent");
    assert_eq!(got[&a.id], vec![created, later]);

    let err = store
        .annotation_create(note(missing, "audit", json!({}), 30))
        .await;
    assert!(
        matches!(err, Err(StoreError::NotFound { entity: "task", id }) if id == missing),
        "{err:?}"
    );
    assert!(
        store
            .annotation_list_many(&[missing])
            .await
            .unwrap()
            .is_empty()
    );
}

/// `annotation` keeps tasks with a note of that type whose content holds
/// every given top-level scalar (type-exact: `1` is not `"1"` nor `true`);
/// `tags` keeps tasks carrying every tag; both combine with other filters
/// and `total` counts the matches.
pub async fn task_list_filters_by_tags_and_annotations(store: Arc<dyn Store>) {
    let mut tasks = Vec::new();
    for (i, tags) in [vec!["vip", "eu"], vec!["vip"], vec!["eu"], vec![]]
        .into_iter()
        .enumerate()
    {
        let mut t = TaskBuilder::new("billing", "invoice")
            .step("s", &[])
            .build(at(i as i64));
        t.tags = tags.into_iter().map(String::from).collect();
        tasks.push(t);
    }
    store.task_create_many(tasks.clone()).await.unwrap();
    let ids = |q: TaskQuery| {
        let store = store.clone();
        async move {
            let p = store.task_list(&q).await.unwrap();
            let mut ids: Vec<Uuid> = p.items.iter().map(|t| t.id).collect();
            ids.sort();
            assert_eq!(p.total, Some(ids.len() as i64), "total counts the matches");
            ids
        }
    };
    let sorted = |mut v: Vec<Uuid>| {
        v.sort();
        v
    };
    let tags = |t: &[&str]| TaskQuery {
        tags: t.iter().map(|s| s.to_string()).collect(),
        ..TaskQuery::default()
    };
    assert_eq!(
        ids(tags(&["vip"])).await,
        sorted(vec![tasks[0].id, tasks[1].id])
    );
    assert_eq!(ids(tags(&["vip", "eu"])).await, vec![tasks[0].id]);
    assert_eq!(ids(tags(&["nope"])).await, Vec::<Uuid>::new());

    for (t, content) in [
        (0, json!({"ticket": "T-1", "priority": 1, "urgent": true})),
        (
            1,
            json!({"ticket": "T-2", "priority": "1", "urgent": false}),
        ),
        (2, json!({"ticket": "T-1", "priority": 1.0})),
    ] {
        store
            .annotation_create(note(tasks[t].id, "escalation", content, 10))
            .await
            .unwrap();
    }
    store
        .annotation_create(note(tasks[3].id, "audit", json!({"ticket": "T-1"}), 10))
        .await
        .unwrap();
    let by = |kind: &str, contains: Value| TaskQuery {
        annotation: Some(AnnotationFilter {
            annotation_type: kind.into(),
            contains: contains.as_object().cloned().unwrap_or_default(),
        }),
        ..TaskQuery::default()
    };
    let (t0, t1, t2, t3) = (tasks[0].id, tasks[1].id, tasks[2].id, tasks[3].id);
    assert_eq!(
        ids(by("escalation", json!({}))).await,
        sorted(vec![t0, t1, t2])
    );
    assert_eq!(ids(by("audit", json!({}))).await, vec![t3]);
    assert_eq!(
        ids(by("escalation", json!({"ticket": "T-1"}))).await,
        sorted(vec![t0, t2])
    );
    assert_eq!(
        ids(by("escalation", json!({"priority": 1}))).await,
        sorted(vec![t0, t2])
    );
    assert_eq!(
        ids(by("escalation", json!({"priority": "1"}))).await,
        vec![t1]
    );
    assert_eq!(
        ids(by("escalation", json!({"urgent": true}))).await,
        vec![t0]
    );
    assert_eq!(
        ids(by("escalation", json!({"urgent": false}))).await,
        vec![t1]
    );
    assert_eq!(
        ids(by("escalation", json!({"ticket": "T-1", "urgent": true}))).await,
        vec![t0]
    );
    assert_eq!(
        ids(by("escalation", json!({"missing": 1}))).await,
        Vec::<Uuid>::new()
    );
    // Combined with tags and a page: the page is cut after filtering.
    let mut q = by("escalation", json!({"ticket": "T-1"}));
    q.tags = vec!["eu".into()];
    q.limit = 1;
    let p = store.task_list(&q).await.unwrap();
    assert_eq!(p.total, Some(2));
    assert_eq!(p.items.len(), 1);
}
