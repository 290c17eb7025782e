//! The scheduler loop: writes the templates' `schedules:` to the store,
//! then runs [`Tasker::run_schedules`] whenever a tick is due, and at least
//! every `scheduler.poll_interval` (to see schedules other processes
//! created or resumed). Runs in every worker process: a tick fired by
//! several creates one task (the store's tick key), so no leader is needed.

use crate::service::Tasker;
use tokio::sync::watch;

pub(super) async fn run(tasker: Tasker, mut shutdown: watch::Receiver<bool>) {
    let poll = tasker.config().scheduler.poll_interval;
    match tasker.sync_template_schedules().await {
        Ok(0) => {}
        Ok(n) => tracing::info!(schedules = n, "template schedules written"),
        Err(e) => tracing::warn!(error = %e, "cannot write template schedules"),
    }
    loop {
        let wait = match tasker.run_schedules().await {
            Ok(pass) => {
                // Sleep until the next tick is due (never longer than the
                // poll interval); the clock is the service's.
                pass.next_due.map_or(poll, |at| {
                    (at - tasker.now())
                        .to_std()
                        .unwrap_or(std::time::Duration::ZERO)
                        .min(poll)
                })
            }
            Err(e) => {
                tracing::warn!(error = %e, "schedule pass failed");
                poll
            }
        };
        if super::sleep_or_shutdown(wait, &mut shutdown).await {
            return;
        }
    }
}
