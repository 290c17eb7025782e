#!/usr/bin/env python3
"""Counts the instructions PostgreSQL spends on one hot statement with
lifecycle events on or off, on a single-user server under callgrind: no
client, no other backend, no machine noise (docs/PERFORMANCE.md, "Lean
event writes").

    python3 statement_callgrind.py on|off --data DIR --db NAME \
        [--statement write_tasks|finish|finish_last|claim] [--sql FILE]

`write_tasks` (the default) is the finaliser's task write (`WRITE_TASKS_SQL`
in src/settle.rs), 300 executions of 8 tasks each. `finish` is the step
finish of a chain stage (`FINISH_SQL` in src/finish.rs): 300 executions of
one successful step each, on steps the replay first puts back in progress
under a known lease token (that one `UPDATE` is counted in both modes).
`finish_last` is the finish of a throughput batch: 300 executions of 8
single-step tasks' steps each, every one its task's last (the finaliser
moves the task), on a database from `--scenario throughput`.
`claim` is the claim on completion of a chain stage, one step each, on
steps the replay first makes ready; its text comes from `--sql FILE`, the
statement as the server logged it.

DIR is the data directory of a private cluster, stopped (a single-user
server needs it to itself), whose database NAME holds finished tasks: for
`write_tasks` from `tasker bench --target postgres://…/NAME --scenario
throughput --tasks 20000`, for `finish` from `--scenario chain --chains
2000` (its replayed steps are stages s1, s3, s5 and s7 of those chains), on
a cluster started with `initdb` and `pg_ctl`. The statement is read from
the Rust source (or FILE, to try a variant by hand), prepared once and
executed inside one transaction that is rolled back, so the database is
left as it was but for its sequences; the dead tuples of the previous run
are vacuumed first, so runs repeat to within a few parts in a thousand.
`off` sets `tasker.events = 'off'` for the session, which cuts the event
CTE by its one-time filter as `tasker bench --events false` does. Run it
as root: the server runs as the `postgres` user. Prints the instruction
total; the callgrind file is kept for `callgrind_annotate --inclusive=yes`.
"""
import argparse, os, re, subprocess, tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
POSTGRES = "/usr/lib/postgresql/15/bin/postgres"
EVENTS_ON = "current_setting('tasker.events', true) IS DISTINCT FROM 'off'"
GROUPS, PER_GROUP = 300, 8

p = argparse.ArgumentParser()
p.add_argument("events", choices=["on", "off"])
p.add_argument("--data", required=True, help="stopped cluster's data directory")
p.add_argument("--db", required=True)
p.add_argument("--statement", choices=["write_tasks", "finish", "finish_last", "claim"],
               default="write_tasks")
p.add_argument("--sql", help="the statement to replay, a variant by hand (default: from the source)")
p.add_argument("--out", default=None, help="callgrind output file")
a = p.parse_args()


def rust_concat(path, const):
    """A `concat!` constant as PostgreSQL receives it, from the Rust source:
    its string literals and the store's own `macro_rules!` macros
    (`events_on!()`, `unblock_ctes!(…)`, `lease_set!(…)`, …), expanded
    with their arguments, nested calls included."""
    src = open(os.path.join(HERE, "..", "src", path)).read()
    body = re.search(rf"const {const}: &str = concat!\((.*?)\n\);", src, re.S).group(1)
    return "".join(Parser(body, {}).items())


def literal(tok):
    return re.sub(r"\\\n\s*", " ", tok).replace('\\"', '"')


def macro(name):
    """`(parameter names, body items source)` of a store macro: the arms of
    `macro_rules! name` in src/*.rs (one arm; its body a string literal, a
    macro call or `concat!(…)`)."""
    if name == "events_on":
        return [], None
    for f in sorted(os.listdir(os.path.join(HERE, "..", "src"))):
        src = open(os.path.join(HERE, "..", "src", f)).read()
        m = re.search(rf"macro_rules! {name} \{{\s*\((.*?)\) => \{{(.*?)\}};\s*\}}", src, re.S)
        if m:
            return re.findall(r"\$(\w+):", m.group(1)), m.group(2).strip()
    raise SystemExit(f"no macro {name} in src/")


class Parser:
    """The items of a `concat!` argument list: string literals, `$param`
    references and macro calls, expanded to SQL text."""

    def __init__(self, text, args):
        self.t, self.i, self.args = text, 0, args

    def skip(self):
        while True:
            m = re.compile(r"\s+|//[^\n]*").match(self.t, self.i)
            if not m or m.end() == self.i:
                return
            self.i = m.end()

    def items(self):
        out = []
        while True:
            self.skip()
            if self.i >= len(self.t) or self.t[self.i] == ")":
                return out
            out.append(self.item())
            self.skip()
            if self.i < len(self.t) and self.t[self.i] == ",":
                self.i += 1

    def item(self):
        m = re.compile(r'"((?:[^"\\]|\\.)*)"', re.S).match(self.t, self.i)
        if m:
            self.i = m.end()
            return literal(m.group(1))
        m = re.compile(r"(?:\$crate::\w+::)?(\w+)!\(").match(self.t, self.i)
        if not m:
            m = re.compile(r"\$(\w+)").match(self.t, self.i)
            if m:
                self.i = m.end()
                return self.args[m.group(1)]
            raise SystemExit(f"cannot read {self.t[self.i:self.i + 60]!r}")
        self.i = m.end()
        values = self.items()
        self.i += 1  # the closing parenthesis
        name = m.group(1)
        if name == "concat":
            return "".join(values)
        if name == "events_on":
            return EVENTS_ON
        names, body = macro(name)
        return "".join(Parser(body, dict(zip(names, values))).items())


def single(sql, workdir):
    """Runs `sql` on a single-user server as postgres; returns its output."""
    path = os.path.join(workdir, "in.sql")
    with open(path, "w") as f:
        f.write(sql)
    os.chmod(path, 0o644)
    return subprocess.run(
        ["su", "postgres", "-c", f"{POSTGRES} --single -D {a.data} -c fsync=off {a.db} < {path}"],
        capture_output=True, text=True).stdout


def lease_offer(n):
    """`$8`..`$15` of FINISH_SQL: the claim on completion of a worker with
    `n` free slots (no kind, namespace or per-task filter), the statement
    run on its own."""
    return {"$8": str(n), "$9": "'w'", "$10": "(now() + interval '30 s')",
            "$11": "NULL::text[]", "$12": "'{}'::text[]", "$13": "NULL::text[]",
            "$14": "ARRAY[" + ",".join(["gen_random_uuid()"] * n) + "]",
            # Run on its own, as the store does unless it must not.
            "$15": "true"}


work = tempfile.mkdtemp(prefix="tasker-callgrind-")
os.chmod(work, 0o777)
ids_file = os.path.join(work, "ids.txt")
TOKEN = "00000000-0000-4000-8000-000000000001"

if a.statement == "write_tasks":
    stmt = open(a.sql).read() if a.sql else rust_concat("settle.rs", "WRITE_TASKS_SQL")
    # Every task is written complete with zero counters, its path in_progress → complete.
    arr = lambda v: "'{" + ",".join([v] * PER_GROUP) + "}'"
    meta = '"{\\"reason\\": \\"all steps done\\"}"'
    params = {
        "$1": "$1", "$2": arr("0"), "$3": arr("0"), "$4": arr("0"), "$5": arr("complete"),
        "$6": arr("1"), "$7": "now()", "$8": "$1", "$9": arr("in_progress"),
        "$10": arr("complete"), "$11": arr(meta), "$12": "false", "$13": "'x'", "$14": "'{}'",
    }
    per_group, table = PER_GROUP, "tasks"
    setup = []
elif a.statement == "claim":
    # The claim on completion (`ClaimShape { among: true, .. }`), one step
    # leased per execution as in a chain stage. Its text is built at run
    # time from its shapes, so it comes from FILE: the statement as the
    # server logged it (`log_min_duration_statement = 0` on a database the
    # engine ran a chain on).
    if not a.sql:
        raise SystemExit("--statement claim needs --sql FILE (the claim as the server logged it)")
    stmt = open(a.sql).read()
    params = {
        "$1": "now()", "$2": "NULL::text[]", "$3": "'{external}'::text[]", "$4": "NULL::text[]",
        "$5": "1", "$6": "'w'", "$7": "(now() + interval '30 s')", "$8": "0", "$9": "1",
        "$10": "$1",
    }
    per_group = 1
    table = ("(SELECT e.parent_id AS id FROM step_edges e JOIN steps s ON s.id = e.parent_id "
             "WHERE s.name IN ('s1', 's3', 's5', 's7')) p")
elif a.statement == "finish_last":
    stmt = open(a.sql).read() if a.sql else rust_concat("finish.rs", "FINISH_SQL")
    # A batch of 8 single-step tasks' steps finished successfully per
    # execution, each the last step of its task, as in the throughput run.
    arr = lambda v: "'{" + ",".join([v] * PER_GROUP) + "}'"
    params = {
        "$1": "$1", "$2": arr(TOKEN), "$3": arr("ok"), "$4": arr('"{\\"n\\": 1}"'),
        "$5": arr("null"), "$6": arr("NULL"), "$7": "now()", **lease_offer(PER_GROUP),
    }
    per_group, table = PER_GROUP, "steps"
else:
    stmt = open(a.sql).read() if a.sql else rust_concat("finish.rs", "FINISH_SQL")
    # One step finished successfully per execution, as in a chain stage.
    params = {
        "$1": "$1", "$2": f"'{{{TOKEN}}}'", "$3": "'{ok}'", "$4": "'{\"{\\\"n\\\": 1}\"}'",
        "$5": "'{null}'", "$6": "'{NULL}'", "$7": "now()", **lease_offer(1),
    }
    # Steps with a child, so that each finish also makes its child ready:
    # every other stage of the chains of `tasker bench --scenario chain`
    # (steps s1, s3, s5, s7), so that no replayed step is another's child.
    per_group = 1
    table = ("(SELECT e.parent_id AS id FROM step_edges e JOIN steps s ON s.id = e.parent_id "
             "WHERE s.name IN ('s1', 's3', 's5', 's7')) p")
stmt = re.sub(r"\$\d+", lambda m: params[m.group(0)], stmt)

# The previous replay's rolled-back rows are dead tuples the next one would
# step over: vacuum first, so runs repeat.
single("VACUUM;\n", work)
single(
    f"COPY (SELECT array_agg(id ORDER BY id)::text FROM "
    f"(SELECT id, (row_number() OVER (ORDER BY id) - 1) / {per_group} AS g FROM {table}) x "
    f"GROUP BY g HAVING count(*) = {per_group} ORDER BY g LIMIT {GROUPS}) TO '{ids_file}';\n",
    work)
groups = open(ids_file).read().split()
if len(groups) < GROUPS:
    raise SystemExit(f"{a.db} has {len(groups) * per_group} rows to replay; {GROUPS * per_group} are needed")
if a.statement == "finish":
    ids = ",".join(g.strip("{}") for g in groups)
    # Each step back in progress under TOKEN, its child pending behind it.
    setup = [f"UPDATE steps SET status = 'in_progress', lease_token = '{TOKEN}', lease_owner = 'w', "
             f"last_attempted_at = now() - interval '1 ms' WHERE id = ANY('{{{ids}}}'::uuid[]);",
             f"UPDATE steps SET status = 'pending', remaining_parents = 1, ready_at = NULL, "
             f"completed_at = NULL WHERE id IN (SELECT child_id FROM step_edges "
             f"WHERE parent_id = ANY('{{{ids}}}'::uuid[]));",
             # Their tasks running, so the finish leases the child (its
             # claim on completion), as in a chain stage.
             f"UPDATE tasks SET status = 'in_progress', completed_at = NULL, steps_remaining = 5, "
             f"steps_live = 1, steps_blocked = 0 WHERE id IN (SELECT task_id FROM steps "
             f"WHERE id = ANY('{{{ids}}}'::uuid[]));"]

if a.statement == "finish_last":
    ids = ",".join(g.strip("{}") for g in groups)
    # Each step back in progress under TOKEN, its task running with it as
    # its one step left.
    setup = [f"UPDATE steps SET status = 'in_progress', lease_token = '{TOKEN}', lease_owner = 'w', "
             f"completed_at = NULL, last_attempted_at = now() - interval '1 ms' "
             f"WHERE id = ANY('{{{ids}}}'::uuid[]);",
             f"UPDATE tasks SET status = 'in_progress', steps_remaining = 1, steps_live = 1, "
             f"steps_blocked = 0, completed_at = NULL WHERE id IN (SELECT task_id FROM steps "
             f"WHERE id = ANY('{{{ids}}}'::uuid[]));"]

if a.statement == "claim":
    ids = ",".join(g.strip("{}") for g in groups)
    # Each step ready again, as a finish leaves the child it unblocked.
    setup = [f"UPDATE steps SET status = 'pending', ready_at = now() - interval '1 s', "
             f"remaining_parents = 0, completed_at = NULL WHERE id = ANY('{{{ids}}}'::uuid[]);"]

lines = ["BEGIN;"]
if a.events == "off":
    lines.append("SET tasker.events = 'off';")
lines += setup
lines.append("PREPARE s (text) AS " + " ".join(stmt.split()) + ";")
lines += [f"EXECUTE s('{g}');" for g in groups]
lines.append("ROLLBACK;")
path = os.path.join(work, "replay.sql")
with open(path, "w") as f:
    f.write("\n".join(lines) + "\n")
os.chmod(path, 0o644)
out = a.out or os.path.join(work, f"callgrind.{a.events}")
r = subprocess.run(
    ["su", "postgres", "-c",
     f"valgrind --tool=callgrind --callgrind-out-file={out} "
     f"{POSTGRES} --single -D {a.data} -c fsync=off {a.db} < {path}"],
    capture_output=True, text=True)
for text in (r.stdout, r.stderr):
    if "ERROR" in text:
        raise SystemExit(text[text.index("ERROR"):][:500])
total = re.search(r"Collected : (\d+)", r.stderr)
print(f"events {a.events}: {int(total.group(1)):,} instructions ({out})")
