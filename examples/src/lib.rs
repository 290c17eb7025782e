//! Runnable examples of the Tasker library; see `src/bin/`.
