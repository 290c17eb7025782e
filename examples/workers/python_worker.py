#!/usr/bin/env python3
"""A Tasker external worker in Python, standard library only.

It claims steps of the handler kinds it serves over the REST API (long
polling), runs them, renews each lease while the step runs, and reports the
result. Any language with an HTTP client can do the same: see
docs/HANDLERS.md, "External workers".

    python3 examples/workers/python_worker.py --url http://127.0.0.1:8080 --kind external

Handlers live in HANDLERS below: a function of the claimed step (a dict with
context, inputs, parent_results, handler_config, attempt, idempotency_key...)
returning a JSON-serialisable result, or raising Retryable / Permanent.
"""

import argparse
import json
import os
import sys
import threading
import time
import urllib.error
import urllib.request


class Retryable(Exception):
    """Try the step again later (optionally no sooner than retry_after seconds)."""

    def __init__(self, message, retry_after=None, code=None):
        super().__init__(message)
        self.retry_after = retry_after
        self.code = code


class Permanent(Exception):
    """Do not try again."""

    def __init__(self, message, code=None):
        super().__init__(message)
        self.code = code


def compute(step):
    """Kind `external`, config {"op": ...}: arithmetic on the task context and parent results."""
    op = step["handler_config"].get("op")
    n = step["context"].get("n")
    if not isinstance(n, (int, float)):
        raise Permanent("context.n must be a number", code="BAD_INPUT")
    if op == "square":
        return {"value": n * n, "worker": "python"}
    if op == "sum_parents":
        total = sum(r.get("value", 0) for r in step["parent_results"].values() if isinstance(r, dict))
        return {"value": total + n, "worker": "python"}
    raise Permanent(f"unknown op {op!r}", code="BAD_CONFIG")


HANDLERS = {"external": compute}


class Client:
    def __init__(self, base_url, timeout=30):
        self.base = base_url.rstrip("/") + "/tasker"
        self.timeout = timeout

    def post(self, path, body):
        """POST JSON; returns (status, parsed body). Network errors raise OSError."""
        data = json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method="POST",
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as res:
                return res.status, json.loads(res.read() or b"null")
        except urllib.error.HTTPError as e:
            try:
                payload = json.loads(e.read() or b"null")
            except ValueError:
                payload = None
            return e.code, payload


class Heartbeat(threading.Thread):
    """Renews a step's lease every third of its length until stopped; notes a lost lease."""

    def __init__(self, client, step, lease_seconds):
        super().__init__(daemon=True)
        self.client, self.step, self.lease = client, step, lease_seconds
        self.stopped = threading.Event()
        self.lost = False

    def run(self):
        while not self.stopped.wait(self.lease / 3):
            try:
                status, _ = self.client.post(f"/steps/{self.step['step_id']}/heartbeat",
                                             {"lease_token": self.step["lease_token"], "lease_seconds": self.lease})
            except OSError:
                continue  # transient; the next beat retries
            if status == 409:
                self.lost = True
                return


def run_step(client, step, lease_seconds, log):
    handler = HANDLERS.get(step["handler_kind"])
    beat = Heartbeat(client, step, lease_seconds)
    beat.start()
    try:
        if handler is None:
            raise Permanent(f"this worker has no handler for kind {step['handler_kind']!r}", code="HANDLER_MISSING")
        result = handler(step)
        path, body = "complete", {"lease_token": step["lease_token"], "results": result}
    except Retryable as e:
        path, body = "fail", {"lease_token": step["lease_token"], "message": str(e), "retryable": True,
                              "retry_after_seconds": e.retry_after, "code": e.code}
    except Permanent as e:
        path, body = "fail", {"lease_token": step["lease_token"], "message": str(e), "retryable": False, "code": e.code}
    except Exception as e:  # a bug in a handler: retry it, with the error recorded
        path, body = "fail", {"lease_token": step["lease_token"], "message": f"{type(e).__name__}: {e}", "retryable": True}
    finally:
        beat.stopped.set()
    body = {k: v for k, v in body.items() if v is not None}
    status, payload = client.post(f"/steps/{step['step_id']}/{path}", body)
    if status == 409:
        log(f"step {step['step_name']} ({step['step_id']}): lease lost, result ignored")
    elif status != 200:
        log(f"step {step['step_name']}: {path} answered {status}: {payload}")
    else:
        log(f"step {step['step_name']} attempt {step['attempt']}: {path} "
            f"(correlation {step['correlation_id']})")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", default=os.environ.get("TASKER_URL", "http://127.0.0.1:8080"))
    p.add_argument("--worker-id", default=f"python-{os.getpid()}")
    p.add_argument("--kind", action="append", dest="kinds", help="handler kind to serve (repeatable)")
    p.add_argument("--max-steps", type=int, default=4)
    p.add_argument("--lease-seconds", type=float, default=30)
    p.add_argument("--wait-seconds", type=float, default=10)
    p.add_argument("--exit-after-idle", type=int, default=0,
                   help="exit after this many empty claims in a row (0 = run forever)")
    args = p.parse_args(argv)
    kinds = args.kinds or sorted(HANDLERS)
    client = Client(args.url, timeout=args.wait_seconds + 15)
    log = lambda msg: print(f"[{args.worker_id}] {msg}", file=sys.stderr, flush=True)
    idle = 0
    backoff = 0.5
    while True:
        try:
            status, payload = client.post("/workers/claim", {
                "worker_id": args.worker_id, "handler_kinds": kinds, "max_steps": args.max_steps,
                "lease_seconds": args.lease_seconds, "wait_seconds": args.wait_seconds})
        except OSError as e:
            log(f"server unreachable ({e}); retrying in {backoff:.1f}s")
            time.sleep(backoff)
            backoff = min(backoff * 2, 10)
            continue
        backoff = 0.5
        if status != 200:
            log(f"claim answered {status}: {payload}")
            return 2
        steps = payload["steps"]
        if not steps:
            idle += 1
            if args.exit_after_idle and idle >= args.exit_after_idle:
                return 0
            continue
        idle = 0
        for step in steps:
            run_step(client, step, args.lease_seconds, log)


if __name__ == "__main__":
    sys.exit(main())
