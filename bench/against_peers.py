#!/usr/bin/env python3
"""Same-run rounds of `tasker bench` against graphile-worker (issue #10).

A shared machine's speed moves from minute to minute, so a figure means
something only beside the peer's figure of the same minute. Each round runs,
on fresh databases of the local PostgreSQL:

  1. every tasker build given (`--build name=path`, order alternating by
     round): `bench --scenario throughput,chain,fanout` and then
     `bench --scenario throughput --processes 2`;
  2. graphile-worker 0.16.x (`graphile.mjs` of the peers folder: no-op
     throughput, then chains of 10 jobs each enqueueing the next).

and prints each round's figures, then the medians of the per-round ratios
(tasker / graphile-worker, and between builds when there are two or more).
The peers folder is `../shared/bench/peers` copied somewhere writable with
`npm install` run in it (its README). Nothing here is part of the product or
of CI: it is the command behind docs/PERFORMANCE.md's same-run tables.

    python3 bench/against_peers.py --peers /tmp/peers \\
        --build new=target/release/tasker --build old=/tmp/tasker-old --rounds 6

Tasker's URL gets `?sslmode=disable` unless `--tls`: the peer's client
(node-postgres) connects without TLS, so that is the like-for-like setting
(docs/DEPLOYMENT.md, "Transport"); `tasker bench` prints which it used.
"""

import argparse
import re
import statistics
import subprocess
import sys

ADMIN = ["psql", "-qAt", "-h", "127.0.0.1", "-U", "postgres", "-d", "postgres"]

# What each line of `tasker bench` and of graphile.mjs gives, by name.
PATTERNS = {
    "tp1": r"^throughput: \d+ single-step tasks, 1 process\(es\):.*= (\d+) steps/s",
    "tp2": r"^throughput: \d+ single-step tasks, 2 process\(es\):.*= (\d+) steps/s",
    "chain_p50": r"^chain: \d+ runs .*per-chain mean stage p50 ([\d.]+) ms",
    "chain_p95": r"^chain: \d+ runs .*per-chain mean stage p50 [\d.]+ ms, p95 ([\d.]+) ms",
    "create_p50": r"^chain: \d+ runs .*task creation p50 ([\d.]+) ms",
    "fanout_ms": r"^fanout: median ([\d.]+) ms",
    "g_tp": r"^graphile-worker throughput: .*= (\d+) jobs/s",
    "g_chain_p50": r"^graphile-worker chain of 10: per-stage p50 ([\d.]+) ms",
    "g_chain_p95": r"^graphile-worker chain of 10: .*p95 ([\d.]+) ms",
}


def parse(text):
    found = {}
    for line in text.splitlines():
        for name, pat in PATTERNS.items():
            m = re.search(pat, line)
            if m:
                found[name] = float(m.group(1))
    return found


def fresh_db(name):
    subprocess.run(
        ADMIN + ["-c", f"DROP DATABASE IF EXISTS {name}", "-c", f"CREATE DATABASE {name}"],
        check=True,
        capture_output=True,
    )


def run(cmd, env=None, cwd=None):
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=cwd)
    if out.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({out.returncode}):\n{out.stderr[-2000:]}")
    return out.stdout + out.stderr


def tasker_round(path, pg, args):
    suffix = "" if args.tls else "?sslmode=disable"
    figures = {}
    for extra in (["--scenario", "throughput,chain,fanout", "--chains", str(args.chains)],
                  ["--scenario", "throughput", "--processes", "2"]):
        fresh_db("peer_rounds_tasker")
        url = f"{pg}/peer_rounds_tasker{suffix}"
        text = run([path, "bench", "--target", url, "--tasks", str(args.tasks)] + extra,
                   env={"RUST_LOG": "warn", "PATH": "/usr/bin:/bin"})
        figures.update(parse(text))
    return figures


def graphile_round(pg, args):
    fresh_db("peer_rounds_graphile")
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "PEER_PG": f"{pg}/peer_rounds_graphile",
        "N": str(args.tasks),
        "CONC": "8",
        "CHAINS": str(args.chains),
    }
    return parse(run(["node", "graphile.mjs"], env=env, cwd=args.peers))


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--peers", required=True, help="the peers folder, with npm install done")
    p.add_argument("--build", action="append", required=True, metavar="NAME=PATH",
                   help="a tasker binary to measure (repeat to compare builds)")
    p.add_argument("--pg", default="postgres://postgres@127.0.0.1:5432")
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--tasks", type=int, default=10000)
    p.add_argument("--chains", type=int, default=100)
    p.add_argument("--tls", action="store_true", help="let tasker negotiate TLS (sslmode=prefer)")
    args = p.parse_args()
    builds = [b.split("=", 1) for b in args.build]
    if any(len(b) != 2 for b in builds):
        sys.exit("--build takes NAME=PATH")

    rows = []  # (round, {build: figures}, graphile figures)
    for r in range(1, args.rounds + 1):
        order = builds if r % 2 else list(reversed(builds))
        per_build = {name: tasker_round(path, args.pg, args) for name, path in order}
        g = graphile_round(args.pg, args)
        rows.append((r, per_build, g))
        for name, _ in builds:
            f = per_build[name]
            print(f"round {r} {name}: " + ", ".join(f"{k} {v:g}" for k, v in sorted(f.items())), flush=True)
        print(f"round {r} graphile-worker: " + ", ".join(f"{k} {v:g}" for k, v in sorted(g.items())), flush=True)

    def ratio(a, b):
        return a / b if a is not None and b else None

    print("\nmedians of per-round ratios against graphile-worker (chain: below 1 is faster; throughput: above 1 is faster)")
    for name, _ in builds:
        meds = {
            "chain per-chain mean p50": median(ratio(pb[name].get("chain_p50"), g.get("g_chain_p50")) for _, pb, g in rows),
            "chain per-chain p95": median(ratio(pb[name].get("chain_p95"), g.get("g_chain_p95")) for _, pb, g in rows),
            "throughput 1 process": median(ratio(pb[name].get("tp1"), g.get("g_tp")) for _, pb, g in rows),
            "throughput 2 processes": median(ratio(pb[name].get("tp2"), g.get("g_tp")) for _, pb, g in rows),
        }
        print(f"  {name}: " + ", ".join(f"{k} {v:.2f}x" for k, v in meds.items() if v is not None))
        fan = median(pb[name].get("fanout_ms") for _, pb, _ in rows)
        create = median(pb[name].get("create_p50") for _, pb, _ in rows)
        if fan is not None:
            print(f"  {name}: 1,000-step fan-out median {fan:.0f} ms, task creation p50 median {create:.3f} ms")
    if len(builds) > 1:
        base = builds[-1][0]
        print(f"\nmedians of per-round ratios against {base} (same direction as above)")
        for name, _ in builds[:-1]:
            keys = ["chain_p50", "chain_p95", "create_p50", "tp1", "tp2", "fanout_ms"]
            meds = {k: median(ratio(pb[name].get(k), pb[base].get(k)) for _, pb, _ in rows) for k in keys}
            print(f"  {name} / {base}: " + ", ".join(f"{k} {v:.2f}" for k, v in meds.items() if v is not None))


if __name__ == "__main__":
    main()
