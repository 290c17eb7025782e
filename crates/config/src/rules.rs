//! The rules on engine settings, each written once. The configuration
//! checks ([`crate::validate`]) apply them to `[engine]` with the key's
//! source; the engine applies the same functions to the settings it is built
//! with (`tasker_engine::EngineConfig::problems`), so a library user and a
//! `tasker` user hit the same limits with the same words.
//!
//! Each function returns what is wrong, without the key: the caller names it.

/// Most steps per claim statement or outcome transaction.
pub const MAX_BATCH_SIZE: u32 = 10_000;
/// Most outcome transactions in flight.
pub const MAX_FINISH_CONCURRENCY: u32 = 64;

/// A count that must be at least 1 (`max_concurrent_steps`, a per-task limit).
pub fn at_least_one(v: u32) -> Result<(), String> {
    if v == 0 {
        return Err("must be at least 1".into());
    }
    Ok(())
}

/// `claim_batch_size`, `finish_batch_size`.
pub fn batch_size(v: u32) -> Result<(), String> {
    if !(1..=MAX_BATCH_SIZE).contains(&v) {
        return Err(format!("must be between 1 and {MAX_BATCH_SIZE}"));
    }
    Ok(())
}

/// `finish_concurrency`.
pub fn finish_concurrency(v: u32) -> Result<(), String> {
    if !(1..=MAX_FINISH_CONCURRENCY).contains(&v) {
        return Err(format!("must be between 1 and {MAX_FINISH_CONCURRENCY}"));
    }
    Ok(())
}

/// Every duration: finite and above zero.
pub fn positive_seconds(v: f64) -> Result<(), String> {
    if !(v.is_finite() && v > 0.0) {
        return Err("must be a positive number of seconds".into());
    }
    Ok(())
}

/// The heartbeat must renew a lease before it runs out.
pub fn heartbeat_within_lease(heartbeat: f64, lease: f64) -> Result<(), String> {
    if heartbeat >= lease {
        return Err(format!(
            "must be shorter than engine.lease_seconds ({lease}), or leases expire between renewals"
        ));
    }
    Ok(())
}
