//! On PostgreSQL leases, rescues and transitions follow the database's
//! clock, not the calling host's: a host whose clock runs 10 minutes ahead
//! rescues nothing that is validly leased, and the leases and transitions it
//! writes are stamped in database time.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use chrono::{Duration, Utc};
use std::sync::Arc;
use tasker_core::StepState;
use tasker_store::Store;
use tasker_store::conformance::factory::{Shape, new_task};
use tasker_store::conformance::params;
use tasker_store_postgres::testing::TestDb;
use tasker_store_postgres::{PgClock, PgOptions};

#[tokio::test]
async fn a_host_ten_minutes_ahead_rescues_nothing_validly_leased() {
    let db = TestDb::create().await;
    let on_db_clock = |clock| PgOptions {
        clock,
        ..PgOptions::default()
    };
    let right: Arc<dyn Store> = Arc::new(db.store_with(on_db_clock(PgClock::Database)).await);
    let ahead: Arc<dyn Store> = Arc::new(db.store_with(on_db_clock(PgClock::Database)).await);
    let skew = Duration::minutes(10);

    // The fast host creates the task; the right one claims it (30 s lease).
    let t = new_task(Shape::Single, Utc::now() + skew);
    let step_id = t.steps[0].id;
    ahead.task_create(t).await.unwrap();
    let claimed = right
        .step_claim(&params("right", 1, Utc::now()))
        .await
        .unwrap();
    assert_eq!(
        claimed.len(),
        1,
        "a task created by a fast host is claimable now"
    );

    // The fast host's rescuer: nothing has expired in database time.
    let rescued = ahead
        .step_rescue_expired(Utc::now() + skew, 100)
        .await
        .unwrap();
    assert_eq!(rescued, 0);
    let step = right.step_get(step_id).await.unwrap();
    assert_eq!(step.status, StepState::InProgress);
    assert_eq!(step.lease_owner.as_deref(), Some("right"));

    // What the fast host writes is in database time too: a renewal for 30 s
    // expires 30 s from now, not 10 min 30 s.
    let lease = tasker_store::LeaseRef {
        step_id,
        token: claimed[0].lease_token,
    };
    let fast_now = Utc::now() + skew;
    let lost = ahead
        .step_lease_renew(&[lease], fast_now + Duration::seconds(30), fast_now)
        .await
        .unwrap();
    assert!(lost.is_empty());
    let expires = right
        .step_get(step_id)
        .await
        .unwrap()
        .lease_expires_at
        .unwrap();
    let from_now = expires - Utc::now();
    assert!(
        from_now > Duration::seconds(25) && from_now < Duration::seconds(35),
        "{from_now}"
    );
    let created = right.step_transitions(step_id).await.unwrap()[0].created_at;
    assert!(
        (Utc::now() - created).abs() < Duration::seconds(5),
        "{created}"
    );

    // The hazard this prevents: on the caller's clock the same call rescues
    // the step that is still running on the right host.
    let caller_clock: Arc<dyn Store> = Arc::new(db.store().await);
    let rescued = caller_clock
        .step_rescue_expired(Utc::now() + skew, 100)
        .await
        .unwrap();
    assert_eq!(rescued, 1);
}
