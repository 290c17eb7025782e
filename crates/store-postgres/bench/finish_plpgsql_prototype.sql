-- A chain stage's finish written as a PL/pgSQL function, statement by
-- statement: a prototype measured against FINISH_SQL (docs/PERFORMANCE.md,
-- "The finish statement on its own": +18 % instructions). Success outcomes
-- only, one step per call, no retry or failure branches, no task events; not
-- part of the schema. Create it in the replay database, then
--   statement_callgrind.py on --data DATA --db cg --statement finish --sql call.sql
-- with call.sql holding the SELECT at the end of this file.
CREATE OR REPLACE FUNCTION proto_finish_one(ids uuid[], toks uuid[], kinds text[], res jsonb[], errs jsonb[],
    rat timestamptz[], now_ timestamptz, budget bigint, worker text, until timestamptz,
    kinds_f text[], excl text[], nss text[], ltoks uuid[])
RETURNS TABLE(part text, id uuid, task_id uuid, kind text, ready bigint, status text,
    steps_remaining bigint, steps_live bigint, steps_blocked bigint, finalised text, claim jsonb)
LANGUAGE plpgsql AS $$
DECLARE
  owner text; s record; c record; t record; tk record; pth record;
  nready bigint := 0; nleased int := 0; ok boolean; m jsonb; lst text; fin text;
  leased uuid[] := '{}'; readyids uuid[] := '{}';
BEGIN
  SELECT st.lease_owner INTO owner FROM steps st
   WHERE st.id = ids[1] AND st.status = 'in_progress' AND st.lease_token = toks[1] FOR NO KEY UPDATE;
  IF NOT FOUND THEN RETURN; END IF;
  UPDATE steps st SET status = 'complete', results = res[1], completed_at = now_, lease_owner = NULL,
         lease_token = NULL, lease_expires_at = NULL, updated_at = now_, ready_at = NULL
   WHERE st.id = ids[1]
   RETURNING st.id, st.task_id, st.attempts, st.name, st.results, st.last_attempted_at INTO s;
  m := jsonb_build_object('attempt', s.attempts, 'worker', owner);
  SELECT x.namespace, x.status, x.steps_remaining, x.steps_live, x.steps_blocked INTO tk
    FROM tasks x WHERE x.id = s.task_id;
  INSERT INTO step_transitions (step_id, task_id, from_state, to_state, created_at, metadata, evented)
    VALUES (s.id, s.task_id, 'in_progress', 'complete', now_, m, true);
  INSERT INTO events (type, task_id, step_id, namespace, created_at, payload)
    VALUES ('step.completed', s.task_id, s.id, tk.namespace, now_,
            tasker_step_completed_payload(s.name, m, (extract(epoch FROM now_ - s.last_attempted_at) * 1000)::float8, s.results));
  FOR c IN SELECT ch.id, ch.status, ch.remaining_parents, ch.paused, ch.parked, ch.concurrency_key,
                  ch.rate_key, ch.slot_key, ch.handler_kind
             FROM steps ch WHERE ch.id = ANY (ARRAY(SELECT e.child_id FROM step_edges e WHERE e.parent_id = s.id))
            ORDER BY ch.id FOR NO KEY UPDATE LOOP
    IF c.status = 'pending' AND c.remaining_parents = 1 THEN
      ok := nleased < budget AND NOT c.paused AND NOT c.parked AND c.concurrency_key IS NULL
            AND c.rate_key IS NULL AND c.slot_key IS NULL AND tk.status = 'in_progress'
            AND (kinds_f IS NULL OR c.handler_kind = ANY (kinds_f)) AND NOT (c.handler_kind = ANY (excl))
            AND (nss IS NULL OR tk.namespace = ANY (nss));
      nready := nready + 1;
      IF ok THEN
        nleased := nleased + 1;
        UPDATE steps ch SET remaining_parents = 0, status = 'in_progress', attempts = ch.attempts + 1,
               last_attempted_at = now_, lease_owner = worker, lease_token = ltoks[nleased],
               lease_expires_at = until, ready_at = NULL, updated_at = now_
         WHERE ch.id = c.id;
        leased := leased || c.id;
      ELSE
        UPDATE steps ch SET remaining_parents = 0, ready_at = now_, updated_at = now_ WHERE ch.id = c.id;
        readyids := readyids || c.id;
      END IF;
    ELSE
      UPDATE steps ch SET remaining_parents = ch.remaining_parents - 1, updated_at = now_ WHERE ch.id = c.id;
    END IF;
  END LOOP;
  IF nleased > 0 THEN
    INSERT INTO step_transitions (step_id, task_id, from_state, to_state, created_at, metadata, evented)
      SELECT l.id, l.task_id, 'pending', 'in_progress', now_, jsonb_build_object('attempt', l.attempts, 'worker', worker), true
        FROM steps l WHERE l.id = ANY (leased) ORDER BY l.id;
    INSERT INTO events (type, task_id, step_id, namespace, created_at, payload)
      SELECT 'step.started', l.task_id, l.id, tk.namespace, now_,
             tasker_step_started_payload(l.name, jsonb_build_object('attempt', l.attempts, 'worker', worker))
        FROM steps l WHERE l.id = ANY (leased) ORDER BY l.id;
  END IF;
  SELECT x.status, x.steps_remaining, x.steps_live, x.steps_blocked INTO t FROM tasks x WHERE x.id = s.task_id FOR NO KEY UPDATE;
  fin := NULL;
  FOR pth IN SELECT * FROM tasker_finaliser_path(t.status, t.steps_remaining - 1, t.steps_live - 1 + nready, t.steps_blocked) LOOP
    fin := pth.to_state;
    INSERT INTO task_transitions (task_id, from_state, to_state, created_at, metadata, evented)
      VALUES (s.task_id, pth.from_state, pth.to_state, now_, pth.metadata, true);
  END LOOP;
  UPDATE tasks x SET steps_remaining = t.steps_remaining - 1, steps_live = t.steps_live - 1 + nready,
         status = COALESCE(fin, x.status), updated_at = now_
   WHERE x.id = s.task_id;
  RETURN QUERY SELECT 's'::text, s.id, s.task_id, 'ok'::text, NULL::bigint, NULL::text, NULL::bigint, NULL::bigint, NULL::bigint, NULL::text, NULL::jsonb;
  RETURN QUERY SELECT 'c'::text, NULL::uuid, s.task_id, NULL::text, nready, NULL::text, NULL::bigint, NULL::bigint, NULL::bigint, NULL::text, NULL::jsonb;
  RETURN QUERY SELECT 'l'::text, l.id, l.task_id, NULL::text, NULL::bigint, NULL::text, NULL::bigint, NULL::bigint, NULL::bigint, NULL::text,
            jsonb_build_object('id', l.id, 'task_id', l.task_id, 'name', l.name,
                'handler_kind', l.handler_kind, 'handler_config', l.handler_config,
                'inputs', l.inputs, 'attempts', l.attempts, 'max_attempts', l.max_attempts,
                'timeout_seconds', l.timeout_seconds, 'lease_token', l.lease_token,
                'lease_expires_at', l.lease_expires_at, 'namespace', x.namespace,
                'task_name', x.name, 'version', x.version, 'context', x.context,
                'correlation_id', x.correlation_id,
                'parent_results', (SELECT jsonb_object_agg(p.name, COALESCE(p.results, 'null'::jsonb))
                     FROM steps p WHERE p.id = ANY (ARRAY(SELECT e.parent_id FROM step_edges e WHERE e.child_id = l.id))))
       FROM steps l JOIN tasks x ON x.id = l.task_id WHERE l.id = ANY (leased);
  RETURN QUERY SELECT 't'::text, s.task_id, s.task_id, NULL::text, NULL::bigint, t.status, t.steps_remaining, t.steps_live, t.steps_blocked, fin, NULL::jsonb;
END $$;

-- call.sql:
-- SELECT * FROM proto_finish_one($1::uuid[], $2::uuid[], $3::text[], $4::jsonb[], $5::jsonb[], $6::timestamptz[], $7, $8, $9, $10, $11, $12, $13, $14)
