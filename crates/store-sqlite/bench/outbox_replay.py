#!/usr/bin/env python3
"""Replays the writer's work of `tasker bench --scenario throughput` on a
SQLite file migrated by `tasker migrate`, to measure what the schema's
triggers cost without the engine around them (docs/PERFORMANCE.md, "Events
found through their transitions" and "One row per change").

N single-step tasks are inserted pending and ready; then, B steps per
transaction, the claim (pending -> in_progress), the finish (-> complete)
and the task's completion run as the engine's statements do, each firing
the status triggers. Prints the CPU time of each phase (process time: the
file is local and synchronous=NORMAL, so this is the writer's work).

    python3 outbox_replay.py on|off [--tasks N] [--batch B] [--tasker PATH]

`off` turns the triggers' event switch to 0 the way `tasker bench
--events false` does (the same rows, without event type and payload; on a
schema older than 20261205000000, the triggers' `INSERT INTO events`
statements are removed). Use a Python whose sqlite3 module loads the
SQLite version the store bundles (libsqlite3-sys): build
`sqlite3.c` from that crate into `libsqlite3.so.0` (`gcc -O2 -fPIC -shared
-o libsqlite3.so.0 sqlite3.c -lpthread -lm`) and run with
`LD_LIBRARY_PATH` pointing at it; `sqlite3.sqlite_version` is printed.

To count instructions instead of seconds (`valgrind --tool=callgrind`,
repeatable on a busy machine), prepare the file natively and replay it
under valgrind: `--db F --phase setup`, then `--db F --phase replay`
(the tasks and steps are re-read from the file). `--migrations DIR` builds
the schema from a folder of migrations instead of `tasker migrate` (for an
older schema: `git archive <commit> crates/store-sqlite/migrations`).
"""
import argparse, glob, os, shutil, sqlite3, subprocess, tempfile, time

p = argparse.ArgumentParser()
p.add_argument("events", choices=["on", "off"])
p.add_argument("--tasks", type=int, default=30000)
p.add_argument("--batch", type=int, default=32)
p.add_argument("--tasker", default="target/release/tasker")
p.add_argument("--migrations", help="build the schema from these migrations instead")
p.add_argument("--db", help="keep the file here (default: a temporary one)")
p.add_argument("--phase", choices=["all", "setup", "replay"], default="all")
a = p.parse_args()

d = None if a.db else tempfile.mkdtemp()
db = a.db or os.path.join(d, "replay.db")
if a.phase != "replay":
    if a.migrations:
        c = sqlite3.connect(db)
        for f in sorted(glob.glob(os.path.join(a.migrations, "*.sql"))):
            c.executescript(open(f).read())
        c.close()
    else:
        subprocess.run([a.tasker, "--database", "sqlite://" + db, "migrate"], check=True,
                       capture_output=True)
c = sqlite3.connect(db)
c.isolation_level = None
def events_off():
    """The triggers without their events, as `tasker bench --events false`:
    the switch turned to 0, or (schemas older than 20261205000000) their
    `INSERT INTO events` statements removed."""
    on, off = "(1 /* lifecycle events */)", "(0 /* lifecycle events */)"
    rows = c.execute("SELECT name, sql FROM sqlite_master "
                     "WHERE type = 'trigger' AND sql LIKE ?", ("%" + on + "%",)).fetchall()
    old = not rows
    if old:
        rows = c.execute("SELECT name, sql FROM sqlite_master "
                         "WHERE type = 'trigger' AND sql LIKE '%INSERT INTO events%'").fetchall()
    c.execute("BEGIN")
    for name, sql in rows:
        out = sql.replace(on, off)
        if old:
            out, rest = "", sql
            while "INSERT INTO events" in rest:
                at = rest.index("INSERT INTO events")
                out += rest[:at]
                end = rest.find(";", at)
                rest = "" if end < 0 else rest[end + 1:]
            out += rest
        c.execute(f'DROP TRIGGER "{name}"')
        if ";" in out:
            c.execute(out)
    c.execute("COMMIT")

if a.phase != "replay" and a.events == "off":
    events_off()
for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "cache_size=-16000", "foreign_keys=ON"):
    c.execute("PRAGMA " + pragma)

if a.phase != "replay":
    now = int(time.time() * 1e6)
    tasks = [now.to_bytes(8, "big") + i.to_bytes(8, "big") for i in range(a.tasks)]
    steps = [(now + 1).to_bytes(8, "big") + i.to_bytes(8, "big") for i in range(a.tasks)]
    c.execute("BEGIN")
    c.executemany(
        "INSERT INTO tasks (id, namespace, name, version, status, context, initiator, source_system, "
        "reason, correlation_id, steps_total, steps_remaining, steps_live, steps_blocked, created_at, "
        "updated_at) VALUES (?, 'bench', 'single', '0.1.0', 'pending', '{}', 'bench', 'bench', 'bench', "
        "'corr-0123456789', 1, 1, 1, 0, ?, ?)",
        [(t, now, now) for t in tasks])
    c.executemany(
        "INSERT INTO steps (id, task_id, name, position, dependent_system, handler_kind, "
        "handler_config, inputs, status, max_attempts, retry_limit, retryable, skippable, "
        "remaining_parents, ready_at, created_at, updated_at) VALUES (?, ?, 'only', 0, 'default', "
        "'noop', '{}', '{}', 'pending', 3, 3, 1, 0, 0, ?, ?, ?)",
        [(s, t, now, now, now) for s, t in zip(steps, tasks)])
    c.execute("COMMIT")

if a.phase == "setup":
    c.close()
    raise SystemExit(0)
if a.phase == "replay":
    rows = c.execute("SELECT id, task_id, created_at FROM steps ORDER BY id").fetchall()
    steps, tasks = [r[0] for r in rows], [r[1] for r in rows]
    now = rows[0][2] if rows else 0
    a.tasks = min(a.tasks, len(steps))

spent = {"claim": 0.0, "finish": 0.0, "complete": 0.0, "commits": 0.0}
def timed(phase, sql, args=()):
    t = time.process_time()
    c.execute(sql, args)
    spent[phase] += time.process_time() - t

start = time.process_time()
for i in range(0, a.tasks, a.batch):
    ids, tids = steps[i:i + a.batch], tasks[i:i + a.batch]
    q = ",".join("?" * len(ids))
    ts = now + i
    c.execute("BEGIN IMMEDIATE")
    timed("claim", f"UPDATE steps SET status = 'in_progress', attempts = attempts + 1, "
          f"lease_owner = 'worker-host-12345-abcdef', lease_token = randomblob(16), "
          f"lease_expires_at = ?, ready_at = NULL, last_attempted_at = ?, updated_at = ? "
          f"WHERE id IN ({q})", [ts + 30_000_000, ts, ts] + ids)
    timed("commits", "COMMIT")
    c.execute("BEGIN IMMEDIATE")
    timed("finish", f"UPDATE steps SET status = 'complete', results = '{{}}', completed_at = ?, "
          f"lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL, updated_at = ? "
          f"WHERE id IN ({q})", [ts + 500, ts + 500] + ids)
    timed("complete", f"UPDATE tasks SET status = 'complete', completed_at = ?, updated_at = ? "
          f"WHERE id IN ({q}) AND steps_remaining = 0", [ts + 600, ts + 600] + tids)
    timed("commits", "COMMIT")
total = time.process_time() - start
events = c.execute("SELECT count(*) FROM events").fetchone()[0]
print(f"sqlite {sqlite3.sqlite_version}, events {a.events}, {a.tasks} tasks, {a.batch} per "
      f"transaction: {total:.3f} s CPU (" + ", ".join(f"{k} {v:.2f}" for k, v in spent.items())
      + f"), {events} events")
c.close()
if d:
    shutil.rmtree(d)
