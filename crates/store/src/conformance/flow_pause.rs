//! Pausing a whole namespace or template (docs/FLOW_CONTROL.md).

use super::factory::TaskBuilder;
use super::*;
use crate::FlowScope;

fn one(ns: &str, name: &str, now: DateTime<Utc>) -> crate::NewTask {
    TaskBuilder::new(ns, name)
        .step("a", &[])
        .step("b", &["a"])
        .build(now)
}

fn scope(ns: &str, name: Option<&str>) -> FlowScope {
    FlowScope {
        namespace: ns.into(),
        name: name.map(String::from),
    }
}

async fn claimable(store: &Arc<dyn Store>, now: DateTime<Utc>) -> Vec<Uuid> {
    let mut ids: Vec<Uuid> = claim(store, 100, now)
        .await
        .iter()
        .map(|c| c.task_id)
        .collect();
    ids.sort();
    ids
}

/// A template pause and a namespace pause hold their open tasks' steps
/// (reads show it), tasks created meanwhile start held, running steps
/// finish; resuming one scope releases only what no other pause (nor the
/// task's own) holds; the rules refuse a double pause or resume.
pub async fn namespace_and_template_pauses(store: Arc<dyn Store>) {
    let a = one("pay", "charge", at(0));
    let b = one("pay", "refund", at(0));
    let c = one("mail", "send", at(0));
    for t in [&a, &b, &c] {
        store.task_create(t.clone()).await.unwrap();
    }
    // `a` runs its first step before the incident (oldest first, `a`'s id
    // is the smallest).
    let first = claim_one(&store, at(1)).await;
    assert_eq!(first.task_id, a.id);

    let p = store
        .flow_pause(
            &scope("pay", Some("charge")),
            at(2),
            Some("ops"),
            Some("PSP down"),
        )
        .await
        .unwrap();
    assert_eq!(
        (p.paused_at, p.paused_by.as_deref(), p.reason.as_deref()),
        (at(2), Some("ops"), Some("PSP down"))
    );
    assert!(step(&store, a.id, "b").await.paused, "step reads show it");
    assert!(!step(&store, b.id, "a").await.paused, "another template");
    assert_conflict(
        store.flow_pause(&p.scope, at(3), None, None).await,
        "paused twice",
    );

    // The whole namespace, and a task paused by itself inside it.
    store.task_pause(b.id, at(3), Some("ops")).await.unwrap();
    store
        .flow_pause(&scope("pay", None), at(4), None, None)
        .await
        .unwrap();
    let listed: Vec<_> = store
        .flow_pauses()
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.scope)
        .collect();
    assert_eq!(listed, [scope("pay", None), scope("pay", Some("charge"))]);
    let late = one("pay", "charge", at(5));
    store.task_create(late.clone()).await.unwrap();
    assert!(
        step(&store, late.id, "a").await.paused,
        "created while paused"
    );
    assert_eq!(
        claimable(&store, at(6)).await,
        [c.id],
        "only the other namespace"
    );

    // The running step finishes; its child waits.
    succeed(&store, &first, at(7)).await;
    assert!(claim(&store, 10, at(8)).await.is_empty());

    // Resuming the namespace releases nothing here: the template pause
    // holds `a` and `late`, `b` holds itself.
    store.flow_resume(&scope("pay", None)).await.unwrap();
    assert!(claim(&store, 10, at(9)).await.is_empty());
    assert_conflict(store.flow_resume(&scope("pay", None)).await, "not paused");

    // Resuming the template releases its tasks, not the self-paused one.
    store
        .flow_resume(&scope("pay", Some("charge")))
        .await
        .unwrap();
    let mut want = vec![a.id, late.id];
    want.sort();
    assert_eq!(claimable(&store, at(10)).await, want);
    assert!(step(&store, b.id, "a").await.paused, "its own pause holds");
    store.task_resume(b.id, at(11), None).await.unwrap();
    assert_eq!(claimable(&store, at(12)).await, [b.id]);
    assert!(store.flow_pauses().await.unwrap().is_empty());
}

/// A task's own resume while its namespace is paused lifts its own pause
/// only: its steps wait for the namespace.
pub async fn own_resume_inside_a_paused_namespace(store: Arc<dyn Store>) {
    let t = one("pay", "charge", at(0));
    store.task_create(t.clone()).await.unwrap();
    store.task_pause(t.id, at(1), None).await.unwrap();
    store
        .flow_pause(&scope("pay", None), at(2), None, None)
        .await
        .unwrap();
    let row = store.task_resume(t.id, at(3), None).await.unwrap();
    assert_eq!(row.paused_at, None);
    assert!(step(&store, t.id, "a").await.paused);
    assert!(claim(&store, 10, at(4)).await.is_empty());
    store.flow_resume(&scope("pay", None)).await.unwrap();
    assert_eq!(claimable(&store, at(5)).await, [t.id]);
}
