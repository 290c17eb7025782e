//! Task and step state machines.
//!
//! Both machines share the same six states. The allowed transitions are the
//! tables of the reference engine (ruby-tasker-semantics §2), encoded here once
//! so every backend and interface asks the same question: "may `from` go to
//! `to`?". An illegal or idempotent transition is a typed error, never a silent
//! no-op.
//!
//! ```text
//!   step:  pending ──► in_progress ──► complete
//!             │  ▲          │
//!             │  └─ error ◄─┘   (error ──► pending is a retry)
//!             ├──► error / cancelled / resolved_manually
//!          error ──► resolved_manually
//! ```

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

macro_rules! state_enum {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            /// Created, not started (or waiting for a retry).
            Pending,
            /// Being worked on.
            InProgress,
            /// Finished successfully.
            Complete,
            /// Failed.
            Error,
            /// Cancelled by an operator.
            Cancelled,
            /// Marked done by an operator without running.
            ResolvedManually,
        }

        impl $name {
            /// Every state, in declaration order.
            pub const ALL: [$name; 6] = [
                $name::Pending,
                $name::InProgress,
                $name::Complete,
                $name::Error,
                $name::Cancelled,
                $name::ResolvedManually,
            ];

            /// The snake_case name stored in databases and shown in APIs.
            pub fn as_str(self) -> &'static str {
                match self {
                    $name::Pending => "pending",
                    $name::InProgress => "in_progress",
                    $name::Complete => "complete",
                    $name::Error => "error",
                    $name::Cancelled => "cancelled",
                    $name::ResolvedManually => "resolved_manually",
                }
            }

            /// Complete or resolved manually: counts as done for dependants.
            pub fn is_done(self) -> bool {
                matches!(self, $name::Complete | $name::ResolvedManually)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = UnknownState;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                $name::ALL
                    .into_iter()
                    .find(|st| st.as_str() == s)
                    .ok_or_else(|| UnknownState(s.to_string()))
            }
        }
    };
}

state_enum!(
    /// The state of a task (one run of a template).
    TaskState
);
state_enum!(
    /// The state of one step of a task.
    StepState
);

/// A state name that is not one of the six states.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown state `{0}` (expected one of pending, in_progress, complete, error, cancelled, resolved_manually)"
)]
pub struct UnknownState(pub String);

/// A transition the state machine does not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{entity} cannot go from `{from}` to `{to}`{}", reason.map(|r| format!(": {r}")).unwrap_or_default())]
pub struct InvalidTransition {
    /// `task` or `step`.
    pub entity: &'static str,
    /// Current state.
    pub from: String,
    /// Requested state.
    pub to: String,
    /// Why, when there is more to say than "not in the table".
    pub reason: Option<&'static str>,
}

impl TaskState {
    /// Terminal states accept no transition at all: a finished task stays
    /// finished. (`error` is not terminal: it can be retried back to
    /// `pending`, resolved by hand, or closed as `cancelled`.)
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            TaskState::Complete | TaskState::Cancelled | TaskState::ResolvedManually
        )
    }

    /// Checks a task transition against the reference table (§2.1).
    ///
    /// `in_progress → complete` is additionally guarded by "every step is done";
    /// that guard lives where step counts are known (the store's finaliser).
    ///
    /// One deliberate departure from the reference: it allowed an admin
    /// override `complete | resolved_manually → cancelled`, which rewrote a
    /// finished task's outcome and cleared `completed_at`, while a failed task
    /// could never be closed. Here finished states are final, and a task in
    /// `error` can be closed (`error → cancelled`) besides being retried
    /// (`error → pending`) or resolved (`error → resolved_manually`).
    pub fn check_transition(self, to: TaskState) -> Result<(), InvalidTransition> {
        use TaskState::*;
        let ok = match (self, to) {
            (a, b) if a == b => {
                return Err(self.invalid(to, Some("already in that state")));
            }
            (Pending, InProgress | Error | Cancelled) => true,
            (InProgress, Pending | Complete | Error | Cancelled) => true,
            (Error, Pending | ResolvedManually | Cancelled) => true,
            _ => false,
        };
        if ok {
            Ok(())
        } else {
            Err(self.invalid(to, None))
        }
    }

    fn invalid(self, to: TaskState, reason: Option<&'static str>) -> InvalidTransition {
        InvalidTransition {
            entity: "task",
            from: self.to_string(),
            to: to.to_string(),
            reason,
        }
    }
}

impl StepState {
    /// No transition leaves a terminal step state.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            StepState::Complete | StepState::Cancelled | StepState::ResolvedManually
        )
    }

    /// Checks a step transition against the reference table (§2.2).
    ///
    /// `pending → in_progress` is additionally guarded by "all parents done";
    /// the store enforces it by only claiming steps whose parents are done.
    pub fn check_transition(self, to: StepState) -> Result<(), InvalidTransition> {
        use StepState::*;
        let ok = match (self, to) {
            (a, b) if a == b => {
                return Err(self.invalid(to, Some("already in that state")));
            }
            (Pending, InProgress | Error | Cancelled | ResolvedManually) => true,
            (InProgress, Complete | Error | Cancelled) => true,
            (Error, Pending | ResolvedManually) => true,
            _ => false,
        };
        if ok {
            Ok(())
        } else {
            Err(self.invalid(to, None))
        }
    }

    fn invalid(self, to: StepState, reason: Option<&'static str>) -> InvalidTransition {
        InvalidTransition {
            entity: "step",
            from: self.to_string(),
            to: to.to_string(),
            reason,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for s in TaskState::ALL {
            assert_eq!(s.as_str().parse::<TaskState>(), Ok(s));
        }
        for s in StepState::ALL {
            assert_eq!(s.as_str().parse::<StepState>(), Ok(s));
        }
        assert!("done".parse::<StepState>().is_err());
    }

    /// The full step table of the reference, cell by cell.
    #[test]
    fn step_table() {
        use StepState::*;
        let allowed = [
            (Pending, InProgress),
            (Pending, Error),
            (Pending, Cancelled),
            (Pending, ResolvedManually),
            (InProgress, Complete),
            (InProgress, Error),
            (InProgress, Cancelled),
            (Error, Pending),
            (Error, ResolvedManually),
        ];
        for from in StepState::ALL {
            for to in StepState::ALL {
                let expect = allowed.contains(&(from, to));
                assert_eq!(from.check_transition(to).is_ok(), expect, "{from} -> {to}");
            }
        }
    }

    /// The full task table, cell by cell: the reference's, except that
    /// finished tasks stay finished and a failed task can be closed.
    #[test]
    fn task_table() {
        use TaskState::*;
        let allowed = [
            (Pending, InProgress),
            (Pending, Error),
            (Pending, Cancelled),
            (InProgress, Pending),
            (InProgress, Complete),
            (InProgress, Error),
            (InProgress, Cancelled),
            (Error, Pending),
            (Error, ResolvedManually),
            (Error, Cancelled),
        ];
        for from in TaskState::ALL {
            for to in TaskState::ALL {
                let expect = allowed.contains(&(from, to));
                assert_eq!(from.check_transition(to).is_ok(), expect, "{from} -> {to}");
            }
        }
    }

    #[test]
    fn idempotent_transition_is_an_error_with_reason() {
        let err = StepState::Complete
            .check_transition(StepState::Complete)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "step cannot go from `complete` to `complete`: already in that state"
        );
    }
}
