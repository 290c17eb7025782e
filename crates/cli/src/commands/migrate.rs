//! `tasker migrate`: apply the database migrations and say what was done.

use crate::connect;
use crate::output::outln;
use std::process::ExitCode;
use tasker_config::TaskerConfig;

/// Applies pending migrations; says "up to date" when there were none.
pub async fn run(c: &TaskerConfig) -> anyhow::Result<ExitCode> {
    let url = c.database.url.as_str();
    // Opening the store applies what is pending; counting before and after
    // tells the operator whether anything changed.
    let before = connect::applied_migrations(url).await.unwrap_or(0);
    connect::open_with(c).await?;
    let after = connect::applied_migrations(url).await?;
    if after > before {
        outln!(
            "applied {} migration(s) to {}",
            after - before,
            connect::redact(url)
        )?;
    } else {
        outln!(
            "database {} is up to date ({after} migrations applied)",
            connect::redact(url)
        )?;
    }
    Ok(ExitCode::SUCCESS)
}
