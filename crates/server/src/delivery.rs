//! Claims that never reach their worker give their steps back.
//!
//! A long-poll claim commits in the database before its answer is written.
//! If the worker has gone by then (its connection closed, or the request
//! timed out), nobody knows the lease tokens and the steps would stay leased
//! until their leases expire (up to an hour). So:
//!
//! - the claim runs in a task of its own that is never cancelled mid-claim
//!   ([`tasker_engine::Tasker::external_claim_until`] stops only while
//!   waiting); if the request is gone when it returns, it releases at once;
//! - the answer's body holds an [`Undelivered`] guard that releases the
//!   leases unless the body was handed to the connection: a response that
//!   is dropped unsent (the client went away first) releases them too.
//!
//! Bytes handed to a socket whose peer has just vanished cannot be told
//! from delivered ones; those leases expire as usual.

use axum::body::Bytes;
use http_body::{Body, Frame, SizeHint};
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use tasker_engine::Tasker;
use tasker_store::LeaseRef;

/// Releases its leases when dropped, unless [`Undelivered::delivered`] was called.
pub(crate) struct Undelivered {
    tasker: Tasker,
    leases: Vec<LeaseRef>,
    why: &'static str,
}

impl Undelivered {
    /// A guard over `leases`; `why` is recorded on the steps if it fires.
    pub(crate) fn new(tasker: Tasker, leases: Vec<LeaseRef>, why: &'static str) -> Self {
        Undelivered {
            tasker,
            leases,
            why,
        }
    }

    /// The claim reached the worker: nothing to release.
    pub(crate) fn delivered(&mut self) {
        self.leases.clear();
    }
}

impl Drop for Undelivered {
    fn drop(&mut self) {
        if self.leases.is_empty() {
            return;
        }
        let leases = std::mem::take(&mut self.leases);
        let (tasker, why) = (self.tasker.clone(), self.why);
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            tracing::warn!(
                steps = leases.len(),
                "claimed steps not delivered and no runtime to release them; their leases will expire"
            );
            return;
        };
        handle.spawn(async move {
            match tasker.external_release(&leases, why).await {
                Ok(n) => tracing::warn!(released = n, claimed = leases.len(), reason = why, "claimed steps were not delivered to the worker; released"),
                Err(e) => tracing::warn!(error = %e, steps = leases.len(), "could not release undelivered claimed steps; their leases will expire"),
            }
        });
    }
}

/// A response body that marks its [`Undelivered`] guard delivered when the
/// connection takes the bytes, and releases the claim if it is dropped first.
pub(crate) struct GuardedBody {
    data: Option<Bytes>,
    guard: Option<Undelivered>,
}

impl GuardedBody {
    /// `data`, guarded by `guard`.
    pub(crate) fn new(data: Vec<u8>, guard: Undelivered) -> Self {
        GuardedBody {
            data: Some(Bytes::from(data)),
            guard: Some(guard),
        }
    }
}

impl Body for GuardedBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.data.take() {
            Some(data) => {
                if let Some(mut guard) = self.guard.take() {
                    guard.delivered();
                }
                Poll::Ready(Some(Ok(Frame::data(data))))
            }
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.data.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.data.as_ref().map_or(0, |d| d.len() as u64))
    }
}
