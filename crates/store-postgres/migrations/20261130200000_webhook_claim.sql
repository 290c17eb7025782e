-- The webhook claim in time independent of the backlog (issue 12,
-- docs/EVENTS.md "Delivery", docs/PERFORMANCE.md "Webhook delivery").
--
-- The claim (store-postgres/src/webhooks.rs) walks the pending pairs in
-- due order, `(next_attempt_at, event_id)`, and stops after its batch:
-- pairs waiting for a retry lie past `now` in this index and are never
-- read, so a receiver that is down (every pair in backoff) costs a claim
-- nothing however many pairs wait.
CREATE INDEX webhook_deliveries_due_idx
    ON webhook_deliveries (next_attempt_at, event_id) WHERE status = 'pending';
-- Replaced by the one above (the walk in event-id order read every pair in
-- backoff on every claim).
DROP INDEX webhook_deliveries_pending_idx;
-- Listing delivered pairs and dead letters. Pending pairs are left out, so
-- the claim's per-task order check (is an earlier event of this task still
-- pending for this subscriber?) has exactly one index that fits it,
-- `webhook_deliveries_task_idx`: with the old (webhook_id, status,
-- event_id) index the planner could pick that one and read every pending
-- pair of the subscriber for every candidate (quadratic in the backlog).
DROP INDEX webhook_deliveries_status_idx;
CREATE INDEX webhook_deliveries_settled_idx
    ON webhook_deliveries (webhook_id, status, event_id) WHERE status <> 'pending';
-- A claim rewrites the lease columns of a pending row; with room left on
-- its page that update is HOT (no new index entries).
ALTER TABLE webhook_deliveries SET (fillfactor = 80);
