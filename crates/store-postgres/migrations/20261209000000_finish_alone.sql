-- The finish statement runs on its own when it can (src/finish.rs,
-- `PgStore::finish_once`): autocommit, without the `BEGIN` and `COMMIT`
-- round trips, so a chain stage is one round trip to the database
-- (docs/PERFORMANCE.md, "The finish statement on its own").
--
-- Two kinds of batch need what follows the statement inside its
-- transaction: one whose steps hold concurrency keys (the keys are released
-- before the tasks are locked, in statements after it) and one whose task
-- counters had drifted from their steps (the recounted truth is written
-- after it). Run on its own, the statement calls this function for such a
-- batch; the error rolls the statement back whole, and the store runs the
-- batch again in a transaction. The SQLSTATE is the store's own
-- (`NEEDS_TRANSACTION` in src/finish.rs).
CREATE FUNCTION tasker_finish_needs_transaction(reason text) RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'this finish needs a transaction: %', reason USING ERRCODE = 'TKTX1';
END $$;
