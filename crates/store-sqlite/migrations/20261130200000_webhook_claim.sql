-- The webhook claim in time independent of the backlog (issue 12,
-- docs/EVENTS.md "Delivery"): the claim (store-sqlite/src/webhooks.rs)
-- walks the pending pairs in due order, `(next_attempt_at, event_id)`, and
-- stops after its batch, so pairs waiting for a retry (a receiver that is
-- down) are never read. Same indexes as on PostgreSQL.
CREATE INDEX webhook_deliveries_due_idx
    ON webhook_deliveries (next_attempt_at, event_id) WHERE status = 'pending';
DROP INDEX webhook_deliveries_pending_idx;
-- Delivered pairs and dead letters only: the per-task order check of the
-- claim has one index that fits it, webhook_deliveries_task_idx.
DROP INDEX webhook_deliveries_status_idx;
CREATE INDEX webhook_deliveries_settled_idx
    ON webhook_deliveries (webhook_id, status, event_id) WHERE status <> 'pending';
