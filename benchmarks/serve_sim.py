"""Serve a DeckSimulator in its own process for the benchmarks, controlled over stdin/stdout.

`python -m deck.simulator` has no way to change the data between two syncs, read the request log
or count 429s from outside; this launcher constructs the same class with the options a benchmark
needs and takes one command per line on stdin, answering one JSON line on stdout each:

    stats                     -> {"requests": n, "rate_limited": n, "by_path": {...}, ...}
    clear                     -> forget the request log (the 429 counter keeps counting)
    advance SECONDS NEW_RUNS  -> move the simulated clock (finishes open runs), add new runs
    latency SECONDS           -> change the latency of every answer
    rate_limit COUNT PERIOD   -> enforce COUNT requests per PERIOD seconds with 429s ("none": off)
    truth PATH                -> write every run's id, status, result, updated_at (JSON lines)
    log PATH                  -> write the request log (method, path, params, status, at)
    quit                      -> stop serving and exit (so does end of stdin)

The first line printed is {"ready": true, "base_url": ..., "api_key": ..., ...}. Running the
simulator here keeps its CPU and memory out of the process whose sync is measured.
"""

import argparse
import json
import sys
import time
from collections import Counter

from deck.simulator import DEMO_API_KEY, DeckSimulator


def _reply(payload: dict) -> None:
    sys.stdout.write(json.dumps(payload) + "\n")
    sys.stdout.flush()


def _stats(sim: DeckSimulator) -> dict:
    requests = list(sim.requests)
    by_path: Counter = Counter()
    by_status: Counter = Counter()
    for rec in requests:
        path = rec.path.rstrip("/")
        by_path["get" if path.count("/") >= 3 else path.rsplit("/", 1)[-1]] += 1
        by_status[str(rec.status)] += 1
    return {
        "requests": len(requests),
        "rate_limited": sim.rate_limited_count,
        "by_path": dict(by_path),
        "by_status": dict(by_status),
        "first_at": requests[0].at if requests else None,
        "last_at": requests[-1].at if requests else None,
    }


def _truth(sim: DeckSimulator, path: str) -> int:
    runs = sim.runs()
    with open(path, "w") as out:
        for run in runs:
            row = {k: run.get(k) for k in ("id", "status", "result", "updated_at", "created_at")}
            out.write(json.dumps(row) + "\n")
    return len(runs)


def _log(sim: DeckSimulator, path: str) -> int:
    requests = list(sim.requests)
    with open(path, "w") as out:
        for rec in requests:
            row = {
                "method": rec.method,
                "path": rec.path,
                "params": rec.params,
                "status": rec.status,
                "at": rec.at,
            }
            out.write(json.dumps(row) + "\n")
    return len(requests)


def _rate_limit(text: str):
    if not text or text == "none":
        return None
    count, _, period = text.partition("/")
    return int(count), float(period or 10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--history-days", type=float, default=30.0)
    parser.add_argument("--order", choices=("newest_first", "oldest_first"), default="newest_first")
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--rate-limit", default="none", help="COUNT/SECONDS, e.g. 200/10")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free loopback port")
    args = parser.parse_args()

    started = time.monotonic()
    sim = DeckSimulator(
        seed=args.seed,
        runs=args.runs,
        history_days=args.history_days,
        api_key=DEMO_API_KEY,
        order=args.order,
        latency=args.latency,
        rate_limit=_rate_limit(args.rate_limit),
        host="127.0.0.1",
        port=args.port,
    ).start()
    _reply(
        {
            "ready": True,
            "base_url": sim.base_url,
            "api_key": sim.api_key,
            "runs": args.runs,
            "generate_s": round(time.monotonic() - started, 2),
        }
    )
    try:
        for line in sys.stdin:
            words = line.split()
            if not words:
                continue
            cmd, rest = words[0], words[1:]
            try:
                if cmd == "stats":
                    _reply(_stats(sim))
                elif cmd == "clear":
                    sim.clear_requests()
                    _reply({"ok": True})
                elif cmd == "advance":
                    sim.advance(float(rest[0]), new_runs=int(rest[1]) if len(rest) > 1 else 0)
                    _reply({"ok": True, "now": sim.now.isoformat()})
                elif cmd == "latency":
                    sim.latency = float(rest[0])
                    _reply({"ok": True})
                elif cmd == "rate_limit":
                    sim.rate_limit = _rate_limit("/".join(rest))
                    _reply({"ok": True})
                elif cmd == "truth":
                    _reply({"ok": True, "runs": _truth(sim, rest[0])})
                elif cmd == "log":
                    _reply({"ok": True, "requests": _log(sim, rest[0])})
                elif cmd == "quit":
                    _reply({"ok": True})
                    break
                else:
                    _reply({"error": f"unknown command {cmd!r}"})
            except Exception as exc:  # answer, so the controller never hangs on a bad command
                _reply({"error": f"{type(exc).__name__}: {exc}"})
    finally:
        sim.stop()


if __name__ == "__main__":
    main()
