#!/usr/bin/env python3
"""Counts the instructions PostgreSQL spends on the finaliser's task write
(`WRITE_TASKS_SQL` in src/settle.rs) with lifecycle events on or off, on a
single-user server under callgrind: no client, no other backend, no
machine noise (docs/PERFORMANCE.md, "Lean event writes").

    python3 statement_callgrind.py on|off --data DIR --db NAME [--sql FILE]

DIR is the data directory of a private cluster, stopped (a single-user
server needs it to itself), whose database NAME holds finished tasks, for
example from `tasker bench --target postgres://…/NAME --scenario throughput
--tasks 20000` on a cluster started with `initdb` and `pg_ctl`. The
statement is read from src/settle.rs (or FILE, to try a variant by hand),
prepared once and executed 300 times on 8 tasks each, inside one
transaction that is rolled back, so the database is left as it was (but
for the sequences and dead tuples: totals drift by about 1 % a run, so
alternate the variants). `off` sets `tasker.events = 'off'` for the
session, which cuts the event CTE by its one-time filter as `tasker bench
--events false` does. Run it as root: the server runs as the `postgres`
user. Prints the instruction total; the callgrind file is kept for
`callgrind_annotate --inclusive=yes`.
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
p.add_argument("--sql", help="the statement to replay (default: WRITE_TASKS_SQL)")
p.add_argument("--out", default=None, help="callgrind output file")
a = p.parse_args()


def write_tasks_sql():
    """WRITE_TASKS_SQL as PostgreSQL receives it, from the Rust source."""
    src = open(os.path.join(HERE, "..", "src", "settle.rs")).read()
    body = re.search(r"const WRITE_TASKS_SQL: &str = concat!\((.*?)\n\);", src, re.S).group(1)
    parts = []
    for tok in re.finditer(r'"((?:[^"\\]|\\.)*)"|events_on!\(\)', body, re.S):
        if tok.group(1) is None:
            parts.append(EVENTS_ON)
        else:
            parts.append(re.sub(r"\\\n\s*", " ", tok.group(1)).replace('\\"', '"'))
    return "".join(parts)


def single(sql, workdir):
    """Runs `sql` on a single-user server as postgres; returns its output."""
    path = os.path.join(workdir, "in.sql")
    with open(path, "w") as f:
        f.write(sql)
    os.chmod(path, 0o644)
    return subprocess.run(
        ["su", "postgres", "-c", f"{POSTGRES} --single -D {a.data} -c fsync=off {a.db} < {path}"],
        capture_output=True, text=True).stdout


stmt = open(a.sql).read() if a.sql else write_tasks_sql()
# Every task is written complete with zero counters, its path in_progress → complete.
arr = lambda v: "'{" + ",".join([v] * PER_GROUP) + "}'"
meta = '"{\\"reason\\": \\"all steps done\\"}"'
params = {
    "$1": "$1", "$2": arr("0"), "$3": arr("0"), "$4": arr("0"), "$5": arr("complete"),
    "$6": arr("1"), "$7": "now()", "$8": "$1", "$9": arr("in_progress"),
    "$10": arr("complete"), "$11": arr(meta), "$12": "false", "$13": "'x'", "$14": "'{}'",
}
stmt = re.sub(r"\$\d+", lambda m: params[m.group(0)], stmt)

work = tempfile.mkdtemp(prefix="tasker-callgrind-")
os.chmod(work, 0o777)
ids_file = os.path.join(work, "ids.txt")
single(
    f"COPY (SELECT array_agg(id ORDER BY id)::text FROM "
    f"(SELECT id, (row_number() OVER (ORDER BY id) - 1) / {PER_GROUP} AS g FROM tasks) x "
    f"GROUP BY g HAVING count(*) = {PER_GROUP} ORDER BY g LIMIT {GROUPS}) TO '{ids_file}';\n",
    work)
groups = open(ids_file).read().split()
if len(groups) < GROUPS:
    raise SystemExit(f"{a.db} has {len(groups) * PER_GROUP} tasks; {GROUPS * PER_GROUP} are needed")

lines = ["BEGIN;"]
if a.events == "off":
    lines.append("SET tasker.events = 'off';")
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
if "ERROR" in r.stdout:
    raise SystemExit(r.stdout[r.stdout.index("ERROR"):][:500])
total = re.search(r"Collected : (\d+)", r.stderr)
print(f"events {a.events}: {int(total.group(1)):,} instructions ({out})")
