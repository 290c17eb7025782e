//! The shared conformance suite against PostgreSQL: every case gets a fresh
//! database (`tasker_test_<uuid>`), dropped when the case ends.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

tasker_store::conformance_tests!(common::fresh_store().await);
