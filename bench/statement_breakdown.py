#!/usr/bin/env python3
"""A chain stage on PostgreSQL, broken down by statement (issue #10).

For each tasker build given (`--build name=path`, order alternating by
round), runs `tasker bench --scenario chain` on a fresh database of the local
PostgreSQL with `log_min_duration_statement = 0` set on that database only,
then reads what the run added to the server log and sums, per kind of
statement, the server time PostgreSQL logged for it (parse, bind and execute
together) and how many times it ran. Each sum is divided by the stages the
run executed (chains x 10), so a row reads "server time per stage".

The kinds are named by the statement's opening words (`KINDS` below); a
statement no pattern names is listed by its first words. Statements of the
benchmark's own harness (waiting for each task, reading its steps to time
them) run between chains, not inside a stage, and are listed apart.

What the log cannot show: an autocommit statement's commit (the WAL flush
happens at the protocol's Sync, after PostgreSQL logs the execute), the
round trips and the engine's own time. The stage figures `tasker bench`
prints are the end-to-end ones.

    python3 bench/statement_breakdown.py --build new=target/release/tasker \\
        --build old=/tmp/tasker-old --chains 100 --rounds 3

Needs read access to the server log (`--log`, default Debian's) and a
`log_line_prefix` that names the database (`%u@%d`, Debian's default
`%m [%p] %q%u@%d `). Nothing here is part of the product or of CI.
"""

import argparse
import collections
import os
import re
import statistics
import subprocess
import sys

ADMIN = ["psql", "-qAt", "-h", "127.0.0.1", "-U", "postgres", "-d", "postgres"]

# (label, regex on the statement text), first match wins. Written against
# the statements of the current build and of the build #10 was filed on.
KINDS = [
    ("task creation", r"INSERT INTO tasks"),
    ("finish (steps, transitions, events, children, their lease, task counters, finaliser)",
     r"^WITH o AS \( SELECT \* FROM UNNEST.* tpath AS"),
    ("finish: steps + transitions", r"^WITH o AS \( SELECT \* FROM UNNEST"),
    ("finish: unblock children", r"^WITH d AS \( SELECT e\.child_id"),
    ("claim", r"^WITH pick AS|FOR NO KEY UPDATE SKIP LOCKED"),
    ("finish: lock tasks", r"^SELECT id, status, steps_remaining, steps_live, steps_blocked FROM tasks"),
    ("finish: write tasks + transitions", r"^WITH u AS \( SELECT \* FROM UNNEST"),
    ("BEGIN", r"^BEGIN"),
    ("COMMIT", r"^COMMIT"),
    ("NOTIFY", r"pg_notify|^NOTIFY"),
]

# The harness's reads between chains (wait_for_task, step_list, metrics).
HARNESS = [
    r"^SELECT .* FROM tasks WHERE id = \$1",
    r"^SELECT .* FROM steps .*WHERE .*task_id = \$1",
    r"^SELECT .* FROM tasks t WHERE t\.id = \$1",
    r"^SELECT parent_id, child_id FROM step_edges WHERE task_id = \$1",
]

LINE = re.compile(
    r"\[(?P<pid>\d+)\] \S*@(?P<db>\S+) LOG:  duration: (?P<ms>[\d.]+) ms  "
    r"(?P<phase>parse|bind|execute|statement)(?: [^:]*)?: (?P<sql>.*)$"
)


def fresh_db(name):
    subprocess.run(
        ADMIN + ["-c", f"DROP DATABASE IF EXISTS {name}", "-c", f"CREATE DATABASE {name}",
                 "-c", f"ALTER DATABASE {name} SET log_min_duration_statement = 0"],
        check=True, capture_output=True)


def kind_of(sql):
    for label, pat in KINDS:
        if re.search(pat, sql):
            return label, False
    for pat in HARNESS:
        if re.search(pat, sql):
            return " ".join(sql.split()[:8]), True
    return " ".join(sql.split()[:8]), False


def one_run(path, db, chains, log):
    fresh_db(db)
    start = os.path.getsize(log)
    out = subprocess.run(
        [path, "bench", "--target", f"postgres://postgres@127.0.0.1:5432/{db}?sslmode=disable",
         "--scenario", "chain", "--chains", str(chains)],
        capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"{path} failed:\n{out.stderr[-2000:]}")
    chain_line = next((l for l in out.stdout.splitlines() if "per-stage p50" in l), "")
    with open(log, "rb") as f:
        f.seek(start)
        text = f.read().decode("utf-8", "replace")
    sums = collections.defaultdict(float)
    execs = collections.Counter()
    harness = set()
    lines = text.splitlines()
    started = False
    for i, line in enumerate(lines):
        m = LINE.search(line)
        if not m or m.group("db") != db:
            continue
        # A statement of several lines starts on the next one.
        sql = m.group("sql").strip() or (lines[i + 1].strip() if i + 1 < len(lines) else "")
        label, is_harness = kind_of(sql)
        # Migrations and set-up come before the first task's creation.
        started = started or label == "task creation"
        if not started:
            continue
        if is_harness:
            harness.add(label)
        sums[label] += float(m.group("ms"))
        if m.group("phase") in ("execute", "statement"):
            execs[label] += 1
    return chain_line, sums, execs, harness


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", action="append", required=True, help="name=path of a tasker binary")
    ap.add_argument("--chains", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--log", default="/var/log/postgresql/postgresql-15-main.log")
    args = ap.parse_args()
    builds = [b.split("=", 1) for b in args.build]
    stages = args.chains * 10
    per_build = {name: [] for name, _ in builds}
    for r in range(args.rounds):
        order = builds if r % 2 == 0 else list(reversed(builds))
        for name, path in order:
            line, sums, execs, harness = one_run(path, f"stmt_{name}", args.chains, args.log)
            print(f"round {r + 1} {name}: {line}")
            per_build[name].append((sums, execs, harness))
    for name, runs in per_build.items():
        print(f"\n{name}: server time per stage (ms), median of {len(runs)} runs; "
              f"executions per stage")
        labels = sorted({k for sums, _, _ in runs for k in sums},
                        key=lambda k: -statistics.median(s.get(k, 0.0) for s, _, _ in runs))
        harness = set().union(*(h for _, _, h in runs))
        total = rest = 0.0
        for k in labels:
            ms = statistics.median(s.get(k, 0.0) for s, _, _ in runs) / stages
            n = statistics.median(e.get(k, 0) for _, e, _ in runs) / stages
            if k in harness:
                continue
            total += ms
            # Statements that ran less than once in twenty stages (the
            # statistics refresh, lease renewals, idle checks) as one row.
            if n < 0.05:
                rest += ms
                continue
            print(f"  {ms:7.3f} ms  {n:5.2f}x  {k}")
        print(f"  {rest:7.3f} ms         statements run less than once in twenty stages")
        print(f"  {total:7.3f} ms         in all")
        for k in labels:
            if k in harness:
                ms = statistics.median(s.get(k, 0.0) for s, _, _ in runs) / stages
                print(f"  ({ms:.3f} ms  harness: {k})")


if __name__ == "__main__":
    main()
