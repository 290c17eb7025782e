//! Live progress of one task: a line per step state change, with attempt and
//! elapsed time, redrawn from the store whenever the task changes.

use crate::output::{StdoutError, outln};
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tasker_engine::Tasker;
use tasker_store::StoreEvent;
use tokio::sync::oneshot;
use uuid::Uuid;

/// A running display; [`Display::finish`] prints the last changes and stops it.
pub struct Display {
    stop: oneshot::Sender<()>,
    join: tokio::task::JoinHandle<Result<(), StdoutError>>,
}

impl Display {
    /// Stops after one last refresh; the error if stdout could not be written.
    pub async fn finish(self) -> Result<(), StdoutError> {
        let _ = self.stop.send(());
        self.join.await.unwrap_or(Ok(()))
    }

    /// Resolves only if the display stopped on its own: stdout failed (its
    /// reader went away, or the disk is full). Do not call
    /// [`Display::finish`] after this resolved.
    pub async fn failed(&mut self) -> StdoutError {
        match (&mut self.join).await {
            Ok(Err(e)) => e,
            _ => std::future::pending().await,
        }
    }
}

/// Starts printing progress of `task_id`.
pub fn spawn(tasker: Tasker, task_id: Uuid) -> Display {
    let (stop, mut stopped) = oneshot::channel();
    let join = tokio::spawn(async move {
        let started = Instant::now();
        let mut events = tasker.store().subscribe();
        let mut seen: HashMap<Uuid, (String, i32)> = HashMap::new();
        loop {
            print_changes(&tasker, task_id, started, &mut seen).await?;
            // Refresh when this task changes; the timer keeps timings moving
            // when the change happened in another process.
            let timer = tokio::time::sleep(Duration::from_millis(250));
            tokio::pin!(timer);
            loop {
                tokio::select! {
                    ev = events.recv() => match ev {
                        Ok(StoreEvent::TaskChanged(t) | StoreEvent::TaskFinished(t)) if t == task_id => break,
                        Ok(_) => continue,
                        Err(_) => break,
                    },
                    _ = &mut timer => break,
                    _ = &mut stopped => {
                        return print_changes(&tasker, task_id, started, &mut seen).await;
                    }
                }
            }
        }
    });
    Display { stop, join }
}

async fn print_changes(
    tasker: &Tasker,
    task_id: Uuid,
    started: Instant,
    seen: &mut HashMap<Uuid, (String, i32)>,
) -> Result<(), StdoutError> {
    let Ok(steps) = tasker.store().step_list(task_id).await else {
        return Ok(());
    };
    for s in steps {
        let now = (s.status.to_string(), s.attempts);
        if seen.get(&s.id) == Some(&now) {
            continue;
        }
        let took = match (s.last_attempted_at, s.completed_at) {
            (Some(a), Some(c)) => format!(
                " in {:.3}s",
                (c - a).num_microseconds().unwrap_or(0) as f64 / 1e6
            ),
            _ => String::new(),
        };
        let err = match (&s.last_error, s.status) {
            (Some(e), tasker_core::StepState::Pending | tasker_core::StepState::Error) => {
                format!("  ({})", e.message)
            }
            _ => String::new(),
        };
        outln!(
            "[{:>8.3}s] {:<28} {:<18} attempt {}/{}{}{}",
            started.elapsed().as_secs_f64(),
            s.name,
            s.status.as_str(),
            s.attempts,
            s.max_attempts,
            took,
            err
        )?;
        seen.insert(s.id, now);
    }
    Ok(())
}
