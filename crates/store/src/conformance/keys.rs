//! API keys: stored as hashes, listed, revoked.

use super::at;
use crate::{NewApiKey, Store, StoreError};
use std::sync::Arc;
use uuid::Uuid;

fn new_key(name: &str, created_secs: i64) -> NewApiKey {
    NewApiKey {
        id: Uuid::new_v4(),
        name: name.to_string(),
        hash: format!("{:064x}", created_secs),
        permissions: vec!["tasker.worker:*@billing".into(), "tasker.task:index".into()],
        created_at: at(created_secs),
        expires_at: Some(at(created_secs + 3600)),
    }
}

/// What goes in comes back (times at the store's precision), and the list
/// is oldest first.
pub async fn api_keys_round_trip_and_list_oldest_first(store: Arc<dyn Store>) {
    let later = new_key("later", 10);
    let earlier = NewApiKey {
        expires_at: None,
        ..new_key("earlier", 5)
    };
    let created = store.api_key_create(later.clone()).await.unwrap();
    store.api_key_create(earlier.clone()).await.unwrap();
    assert_eq!(created.id, later.id);
    assert_eq!(created.hash, later.hash);
    assert_eq!(created.permissions, later.permissions);
    assert_eq!(created.expires_at, Some(at(3610)));
    assert_eq!(created.revoked_at, None);
    let got = store.api_key_get(later.id).await.unwrap();
    assert_eq!(got, created);
    assert!(got.is_active(at(3609)) && !got.is_active(at(3610)));
    let names: Vec<String> = store
        .api_key_list()
        .await
        .unwrap()
        .into_iter()
        .map(|k| k.name)
        .collect();
    assert_eq!(names, ["earlier", "later"]);
    // The same id twice is a conflict, not a second key.
    let dup = store.api_key_create(later).await;
    assert!(matches!(dup, Err(StoreError::Conflict(_))), "{dup:?}");
}

/// Revoking stamps the first time only; unknown ids are `NotFound`.
pub async fn revocation_is_kept_once_and_missing_keys_are_not_found(store: Arc<dyn Store>) {
    let k = new_key("worker", 0);
    store.api_key_create(k.clone()).await.unwrap();
    let revoked = store.api_key_revoke(k.id, at(20)).await.unwrap();
    assert_eq!(revoked.revoked_at, Some(at(20)));
    assert!(!revoked.is_active(at(21)));
    let again = store.api_key_revoke(k.id, at(30)).await.unwrap();
    assert_eq!(again.revoked_at, Some(at(20)));
    assert_eq!(
        store.api_key_get(k.id).await.unwrap().revoked_at,
        Some(at(20))
    );
    let missing = Uuid::new_v4();
    for r in [
        store.api_key_get(missing).await,
        store.api_key_revoke(missing, at(0)).await,
    ] {
        assert!(
            matches!(r, Err(StoreError::NotFound { entity: "api_key", id }) if id == missing),
            "{r:?}"
        );
    }
}
