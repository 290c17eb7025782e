//! `tasker prune`: delete (or, with `--dry-run`, count) finished tasks older
//! than their retention window (`[retention]`), archiving them first when
//! `retention.archive` is set. The background pruner of worker processes
//! does the same every `retention.interval_seconds`.

use crate::connect;
use crate::output::outln;
use anyhow::bail;
use std::process::ExitCode;
use std::time::Duration;
use tasker_config::TaskerConfig;
use tasker_engine::retention::PruneOptions;
use tasker_engine::{EngineConfig, Tasker};

/// `tasker prune` flags.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Count what would be deleted; delete nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Prune tasks finished longer ago than this (`30d`, `12h`, `90m`,
    /// `3600s`) in every namespace, instead of the configured windows.
    #[arg(long, value_parser = parse_age)]
    pub older_than: Option<Duration>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Parses `30d`, `12h`, `90m`, `3600s` (a positive whole number and a unit).
pub fn parse_age(s: &str) -> Result<Duration, String> {
    let fix = "use a whole number with s, m, h or d, e.g. 30d";
    let (n, unit) = s.split_at(s.len().saturating_sub(1));
    let n: u64 = n
        .parse()
        .map_err(|_| format!("`{s}` is not an age; {fix}"))?;
    let secs = match unit {
        "s" => Some(n),
        "m" => n.checked_mul(60),
        "h" => n.checked_mul(3600),
        "d" => n.checked_mul(86_400),
        _ => None,
    };
    match secs {
        Some(0) => Err(format!("`{s}` must be positive; {fix}")),
        Some(s) if s <= 100 * 365 * 86_400 => Ok(Duration::from_secs(s)),
        _ => Err(format!("`{s}` is not an age of at most 100 years; {fix}")),
    }
}

/// Runs one prune pass to the end.
pub async fn run(c: &TaskerConfig, args: Args) -> anyhow::Result<ExitCode> {
    let store = connect::open_with(c).await?;
    let tasker = match Tasker::builder(store)
        .config(EngineConfig::from_config(c))
        .build()
    {
        Ok(t) => t,
        Err(e) => bail!("cannot build the engine: {e}"),
    };
    let summary = tasker
        .prune(&PruneOptions {
            dry_run: args.dry_run,
            older_than: args.older_than,
            max_batches: None,
        })
        .await?;
    if args.json {
        outln!(
            "{}",
            serde_json::json!({
                "dry_run": args.dry_run,
                "tasks": summary.tasks,
                "archived": summary.archived,
                "files": summary.files,
                "yielded": summary.yielded,
                "partitions": summary.partitions,
                "flow": summary.flow,
            })
        )?;
    } else if args.dry_run {
        outln!("{} finished task(s) would be pruned", summary.tasks)?;
    } else {
        outln!(
            "pruned {} finished task(s){}{}",
            summary.tasks,
            if summary.archived > 0 {
                format!(
                    ", archived {} in {} file(s)",
                    summary.archived,
                    summary.files.len()
                )
            } else {
                String::new()
            },
            if summary.yielded {
                " (another process is pruning; it does the rest)"
            } else {
                ""
            }
        )?;
        for r in &summary.partitions {
            outln!("{} {} ({} ms)", r.action, r.target, r.millis)?;
        }
        let f = summary.flow;
        if f.schedule_ticks + f.flow_keys + f.rate_buckets > 0 {
            outln!(
                "pruned {} schedule tick(s), {} concurrency key(s), {} rate bucket(s)",
                f.schedule_ticks,
                f.flow_keys,
                f.rate_buckets
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::parse_age;

    #[test]
    fn ages() {
        assert_eq!(parse_age("30d").unwrap().as_secs(), 30 * 86_400);
        assert_eq!(parse_age("90m").unwrap().as_secs(), 5400);
        for bad in ["", "d", "0d", "-1d", "3w", "1.5d", "99999999999d"] {
            assert!(parse_age(bad).is_err(), "{bad}");
        }
    }
}
