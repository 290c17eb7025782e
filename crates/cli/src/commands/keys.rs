//! `tasker keys create|list|revoke`: API keys for machines and external
//! workers. A key is printed once, at creation; only its SHA-256 is stored.

use crate::connect;
use crate::output::outln;
use anyhow::{Context, bail};
use chrono::{DateTime, Utc};
use std::process::ExitCode;
use tasker_config::TaskerConfig;
use tasker_store::NewApiKey;
use uuid::Uuid;

/// Subcommands of `tasker keys`.
#[derive(Debug, clap::Subcommand)]
pub enum KeysCommand {
    /// Make a key and print it (once: it cannot be shown again).
    Create {
        /// What the key is for, e.g. `billing-worker`.
        #[arg(long)]
        name: String,
        /// A permission (repeatable): `tasker.worker:*@billing`, `tasker.task:create`, `*`.
        #[arg(long = "permission", required = true)]
        permissions: Vec<String>,
        /// Lifetime: a number with `s`, `m`, `h` or `d` (`30d`); default: no expiry.
        #[arg(long)]
        expires: Option<String>,
    },
    /// List keys (never the keys themselves).
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a key by id; servers refuse it within `auth.key_cache_seconds`.
    Revoke {
        /// The key id (`tasker keys list`).
        id: Uuid,
    },
}

/// Parses `30d`, `12h`, `90m`, `3600s`.
pub fn parse_lifetime(s: &str) -> Result<chrono::Duration, String> {
    let fix = "use a whole number with s, m, h or d, e.g. 30d";
    let (n, unit) = s.split_at(s.len().saturating_sub(1));
    let n: i64 = n
        .parse()
        .map_err(|_| format!("--expires `{s}` is not a lifetime; {fix}"))?;
    if n <= 0 {
        return Err(format!("--expires `{s}` must be positive; {fix}"));
    }
    let secs = match unit {
        "s" => Some(n),
        "m" => n.checked_mul(60),
        "h" => n.checked_mul(3600),
        "d" => n.checked_mul(86_400),
        _ => None,
    };
    secs.filter(|s| *s <= 100 * 365 * 86_400)
        .map(chrono::Duration::seconds)
        .ok_or_else(|| format!("--expires `{s}` is not a lifetime of at most 100 years; {fix}"))
}

fn time(t: Option<DateTime<Utc>>) -> String {
    t.map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_else(|| "-".into())
}

/// Runs the subcommand.
pub async fn run(config: &TaskerConfig, cmd: KeysCommand) -> anyhow::Result<ExitCode> {
    // Checked before connecting, so a typo costs no database round trip.
    if let KeysCommand::Create {
        name,
        permissions,
        expires,
    } = &cmd
    {
        if name.trim().is_empty() || name.len() > 200 {
            bail!("--name must be 1-200 characters");
        }
        for p in permissions {
            if let Err(e) = tasker_auth::Grant::parse(p) {
                bail!("--permission {e}");
            }
        }
        if let Some(e) = expires {
            parse_lifetime(e).map_err(anyhow::Error::msg)?;
        }
    }
    let store = connect::open_with(config).await?;
    match cmd {
        KeysCommand::Create {
            name,
            permissions,
            expires,
        } => {
            let now = Utc::now();
            let expires_at = match expires {
                Some(e) => Some(now + parse_lifetime(&e).map_err(anyhow::Error::msg)?),
                None => None,
            };
            let minted = tasker_auth::apikey::mint()?;
            let row = store
                .api_key_create(NewApiKey {
                    id: minted.id,
                    name,
                    hash: minted.hash,
                    permissions,
                    created_at: now,
                    expires_at,
                })
                .await
                .context("storing the key")?;
            eprintln!(
                "created key {} ({}), expires {}; it is shown once, store it now:",
                row.id,
                row.name,
                time(row.expires_at)
            );
            outln!("{}", minted.key)?;
        }
        KeysCommand::List { json } => {
            let keys = store.api_key_list().await?;
            if json {
                outln!(
                    "{}",
                    serde_json::to_string_pretty(&serde_json::json!({"keys": keys}))?
                )?;
                return Ok(ExitCode::SUCCESS);
            }
            outln!(
                "{:<36}  {:<20}  {:<20}  {:<20}  {:<20}  PERMISSIONS",
                "ID",
                "NAME",
                "CREATED",
                "EXPIRES",
                "REVOKED"
            )?;
            for k in keys {
                outln!(
                    "{:<36}  {:<20}  {:<20}  {:<20}  {:<20}  {}",
                    k.id,
                    k.name,
                    time(Some(k.created_at)),
                    time(k.expires_at),
                    time(k.revoked_at),
                    k.permissions.join(" ")
                )?;
            }
        }
        KeysCommand::Revoke { id } => match store.api_key_revoke(id, Utc::now()).await {
            Ok(k) => outln!(
                "revoked key {} ({}) at {}",
                k.id,
                k.name,
                time(k.revoked_at)
            )?,
            Err(tasker_store::StoreError::NotFound { .. }) => {
                bail!("no key {id} (see `tasker keys list`)")
            }
            Err(e) => return Err(e.into()),
        },
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::parse_lifetime;

    #[test]
    fn lifetimes() {
        assert_eq!(parse_lifetime("30d").unwrap().num_seconds(), 30 * 86_400);
        assert_eq!(parse_lifetime("90m").unwrap().num_seconds(), 5400);
        for bad in ["", "d", "0d", "-1d", "5w", "1.5h", "99999999999d"] {
            assert!(parse_lifetime(bad).is_err(), "{bad}");
        }
    }
}
