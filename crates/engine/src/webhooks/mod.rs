//! Webhook subscribers in the application service (docs/EVENTS.md,
//! "Webhooks"): registering them (validated, the SSRF policy applied),
//! syncing `[[webhooks]]` into the database, listing deliveries and dead
//! letters, redelivering. The delivery itself is [`dispatcher`]; the
//! signature is [`signature`].
//!
//! REST and GraphQL call these methods, never the store directly.

pub(crate) mod dispatcher;
pub mod signature;

use crate::error::EngineError;
use crate::handlers::HttpPolicy;
use crate::service::Tasker;
use tasker_config::webhooks as rules;
use tasker_store::{
    DeliveryQuery, DeliveryRow, DeliveryStatus, NewWebhook, WebhookRow, WebhookSource,
};
use uuid::Uuid;

/// Most deliveries listed per page.
pub const MAX_DELIVERY_PAGE: u32 = 1000;

/// A subscriber to register (`POST /tasker/webhooks`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct WebhookRequest {
    /// Unique name.
    pub name: String,
    /// Where events are POSTed.
    pub url: String,
    /// Type patterns; `None`: every event (`*`).
    pub events: Option<Vec<String>>,
    /// Namespaces (empty: all).
    pub namespaces: Vec<String>,
    /// Signing key (none: unsigned).
    pub secret: Option<String>,
    /// Attempts before a dead letter (default 10).
    pub max_attempts: Option<u32>,
    /// Per-request timeout in seconds (default 10).
    pub timeout_seconds: Option<f64>,
}

fn invalid(field: &str, message: impl Into<String>) -> EngineError {
    EngineError::InvalidField {
        field: field.into(),
        message: message.into(),
    }
}

/// Applies the SSRF policy of the `http` handler to a webhook URL: the
/// scheme, the host allow-list, an IP literal's address, and, for a name,
/// the addresses it resolves to now (they are checked again at every
/// delivery, by the client's resolver). A name that does not resolve is
/// accepted: it is checked when it does.
pub async fn check_url(policy: &HttpPolicy, url: &str) -> Result<reqwest::Url, String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("not a URL: {e}"))?;
    policy.check_url(&parsed).map_err(|d| d.to_string())?;
    if let Some(host) = parsed.host_str() {
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        if bare.parse::<std::net::IpAddr>().is_err() {
            let port = parsed.port_or_known_default().unwrap_or(443);
            if let Ok(found) = tokio::net::lookup_host((bare, port)).await {
                let found: Vec<_> = found.map(|a| a.ip()).collect();
                if !found.is_empty() && !found.iter().any(|ip| policy.ip_allowed(*ip)) {
                    let list: Vec<String> = found.iter().map(ToString::to_string).collect();
                    return Err(format!(
                        "host `{bare}` resolves to internal address(es) {} that are not allowed ([http] allow_internal)",
                        list.join(", ")
                    ));
                }
            }
        }
    }
    Ok(parsed)
}

impl Tasker {
    /// Checks a subscriber's fields (`prefix` is put before field names:
    /// `webhooks[0].` for the configuration, empty for the API).
    async fn new_webhook(
        &self,
        prefix: &str,
        req: WebhookRequest,
        source: WebhookSource,
    ) -> Result<NewWebhook, EngineError> {
        let field = |f: &str| format!("{prefix}{f}");
        rules::check_name(&req.name).map_err(|m| invalid(&field("name"), m))?;
        rules::check_url(&req.url).map_err(|m| invalid(&field("url"), m))?;
        check_url(self.webhook_policy(), &req.url)
            .await
            .map_err(|m| invalid(&field("url"), m))?;
        let events = req.events.unwrap_or_else(|| vec!["*".into()]);
        rules::check_patterns(&events).map_err(|m| invalid(&field("events"), m))?;
        if req.url.len() > 2048 {
            return Err(invalid(&field("url"), "must be at most 2048 characters"));
        }
        if req
            .namespaces
            .iter()
            .any(|ns| ns.is_empty() || ns.len() > 255 || ns.contains('\0'))
        {
            return Err(invalid(
                &field("namespaces"),
                "every namespace must be 1 to 255 characters",
            ));
        }
        match req.secret.as_deref() {
            Some("") => {
                return Err(invalid(
                    &field("secret"),
                    "is empty: leave it out for unsigned deliveries",
                ));
            }
            Some(s) if s.len() > 1024 || s.contains('\0') => {
                return Err(invalid(&field("secret"), "must be at most 1024 bytes"));
            }
            _ => {}
        }
        let max_attempts = req
            .max_attempts
            .unwrap_or(tasker_config::webhooks::DEFAULT_MAX_ATTEMPTS);
        rules::check_max_attempts(max_attempts).map_err(|m| invalid(&field("max_attempts"), m))?;
        let timeout = req
            .timeout_seconds
            .unwrap_or(tasker_config::webhooks::DEFAULT_TIMEOUT_SECONDS);
        rules::check_timeout(timeout).map_err(|m| invalid(&field("timeout_seconds"), m))?;
        Ok(NewWebhook {
            id: Uuid::new_v4(),
            name: req.name,
            url: req.url,
            event_types: events,
            namespaces: req.namespaces,
            secret: req.secret,
            max_attempts,
            timeout_ms: (timeout * 1000.0).round() as u32,
            source,
            now: self.now(),
        })
    }

    /// Registers a subscriber (it receives the events recorded from now
    /// on). A bad field is [`EngineError::InvalidField`] naming it; a taken
    /// name is a store conflict.
    pub async fn create_webhook(&self, req: WebhookRequest) -> Result<WebhookRow, EngineError> {
        let hook = self.new_webhook("", req, WebhookSource::Api).await?;
        Ok(self.store().webhook_create(hook).await?)
    }

    /// Makes the database's config-defined subscribers those of
    /// `[[webhooks]]` (run at start by `tasker serve` and `tasker worker`).
    pub async fn sync_config_webhooks(&self) -> Result<(), EngineError> {
        let mut hooks = Vec::new();
        for (i, h) in self.config().webhooks.configured.iter().enumerate() {
            let req = WebhookRequest {
                name: h.name.clone(),
                url: h.url.clone(),
                events: Some(h.events.clone()),
                namespaces: h.namespaces.clone(),
                secret: h.secret.clone(),
                max_attempts: Some(h.max_attempts),
                timeout_seconds: Some(h.timeout_seconds),
            };
            hooks.push(
                self.new_webhook(&format!("webhooks[{i}]."), req, WebhookSource::Config)
                    .await?,
            );
        }
        Ok(self.store().webhook_sync_config(hooks).await?)
    }

    /// Every subscriber, by name.
    pub async fn webhooks(&self) -> Result<Vec<WebhookRow>, EngineError> {
        Ok(self.store().webhook_list().await?)
    }

    /// One subscriber.
    pub async fn webhook(&self, id: Uuid) -> Result<WebhookRow, EngineError> {
        Ok(self.store().webhook_get(id).await?)
    }

    /// Deletes a subscriber and its deliveries. A config-defined one comes
    /// back at the next start unless it is removed from the configuration.
    pub async fn delete_webhook(&self, id: Uuid) -> Result<(), EngineError> {
        Ok(self.store().webhook_delete(id).await?)
    }

    /// A subscriber's deliveries after event id `after`, oldest first;
    /// `status` is `pending`, `delivered` or `dead` (dead letters).
    pub async fn webhook_deliveries(
        &self,
        id: Uuid,
        status: Option<&str>,
        after: i64,
        limit: u32,
    ) -> Result<Vec<DeliveryRow>, EngineError> {
        let status = match status {
            None => None,
            Some(s) => {
                Some(
                    DeliveryStatus::parse(s).ok_or_else(|| EngineError::InvalidParameter {
                        field: "status".into(),
                        message: format!("`{s}` is not pending, delivered or dead"),
                    })?,
                )
            }
        };
        if !(1..=MAX_DELIVERY_PAGE).contains(&limit) {
            return Err(EngineError::InvalidParameter {
                field: "limit".into(),
                message: format!("must be between 1 and {MAX_DELIVERY_PAGE}"),
            });
        }
        if after < 0 {
            return Err(EngineError::InvalidParameter {
                field: "after".into(),
                message: "must not be negative".into(),
            });
        }
        Ok(self
            .store()
            .webhook_deliveries(&DeliveryQuery {
                webhook_id: id,
                status,
                after,
                limit,
            })
            .await?)
    }

    /// Sends deliveries again with a fresh attempt budget: the given
    /// events' (dead or delivered), or every dead letter. Returns how many.
    pub async fn redeliver_webhook(
        &self,
        id: Uuid,
        event_ids: Option<Vec<i64>>,
    ) -> Result<u64, EngineError> {
        if let Some(ids) = &event_ids
            && (ids.is_empty() || ids.len() > MAX_DELIVERY_PAGE as usize)
        {
            return Err(invalid(
                "event_ids",
                format!(
                    "must list 1 to {MAX_DELIVERY_PAGE} event ids (leave it out for every dead letter)"
                ),
            ));
        }
        let n = self
            .store()
            .webhook_redeliver(id, event_ids, self.now())
            .await?;
        Ok(n)
    }
}
