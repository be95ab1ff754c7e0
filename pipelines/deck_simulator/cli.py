"""``python -m deck_simulator``: serve a simulator until Ctrl-C, or under a controlling process.

By hand (demos, poking with curl)::

    python -m deck_simulator --runs 5000 --seed 7 --port 8765

A reading of what Deck's documentation leaves open (``Contract``) is ``--reading NAME`` (one of
``READINGS``), each field overridable (``--bound-precision``, ``--stored``,
``--inclusive-bounds``, ``--timestamp-format``); ``--date-skew SECONDS`` and ``--omit-date``
shape the ``Date`` header of every answer.

With ``--control`` (what benchmarks/run.py uses, so the simulator's CPU and memory stay out of
the process whose sync is measured) the first line printed is ``{"ready": true, "base_url": ...,
"api_key": ..., "runs": n, "generate_s": s}``, then one command per stdin line is answered with
one JSON line on stdout:

    stats                     -> {"requests": n, "start_searches": n, "rate_limited": n, ...}
    clear                     -> forget the request log (the 429 counter keeps counting)
    advance SECONDS NEW_RUNS  -> move the simulated clock (finishes open runs), add new runs
    latency SECONDS           -> change the latency of every answer
    reading NAME              -> serve under READINGS[NAME] from the next request on
    rate_limit COUNT PERIOD   -> enforce COUNT requests per PERIOD seconds with 429s ("none": off)
    truth PATH                -> write every run's id, status, result, updated_at (JSON lines)
    log PATH                  -> write the request log (method, path, params, status, at)
    quit                      -> stop serving and exit (so does end of stdin)
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
import time
from collections import Counter
from collections.abc import Iterable
from typing import Any

from .api import DEMO_API_KEY
from .contract import BOUND_PRECISIONS, READINGS, STORED, TIMESTAMP_FORMATS, Contract
from .simulator import DeckSimulator

_DEFAULT_PORT = 8765


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m deck_simulator",
        description="A local stand-in of Deck's v2 API (task runs), served over real HTTP.",
    )
    parser.add_argument("--runs", type=int, default=5000, help="runs in the initial history")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--history-days", type=float, default=30.0)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument(
        "--port",
        type=int,
        default=None,
        help=f"0 picks a free port (default {_DEFAULT_PORT}; 0 with --control)",
    )
    parser.add_argument("--api-key", default=DEMO_API_KEY)
    parser.add_argument("--order", choices=("newest_first", "oldest_first"), default="newest_first")
    parser.add_argument(
        "--latency", type=float, default=0.0, help="seconds slept before every answer"
    )
    parser.add_argument(
        "--rate-limit",
        default=None,
        help="COUNT/SECONDS, e.g. 200/10 (Deck's documented limit); 'none' for no limit",
    )
    parser.add_argument(
        "--tick",
        type=float,
        default=0.0,
        help="advance the simulated clock by this many seconds every second (without --control)",
    )
    parser.add_argument(
        "--new-runs-per-tick", type=int, default=0, help="new runs created on each tick"
    )
    readings = parser.add_argument_group("readings of what Deck's documentation leaves open")
    readings.add_argument("--reading", choices=tuple(READINGS), default="documented")
    readings.add_argument("--bound-precision", choices=BOUND_PRECISIONS, default=None)
    readings.add_argument("--stored", choices=STORED, default=None)
    readings.add_argument("--inclusive-bounds", action=argparse.BooleanOptionalAction, default=None)
    readings.add_argument("--timestamp-format", choices=TIMESTAMP_FORMATS, default=None)
    readings.add_argument(
        "--date-skew",
        type=float,
        default=0.0,
        help="seconds every answer's Date header is off the simulated clock",
    )
    readings.add_argument("--omit-date", action="store_true", help="answer without a Date header")
    parser.add_argument(
        "--control",
        action="store_true",
        help="take commands on stdin and answer JSON lines on stdout (see the module docstring)",
    )
    return parser


def parse_rate_limit(text: str | None) -> tuple[int, float] | None:
    """``200/10`` -> (200, 10.0); ``200`` -> (200, 10.0); empty or ``none`` -> None."""
    if not text or text == "none":
        return None
    count, _, seconds = text.partition("/")
    return int(count), float(seconds or 10)


def contract_from_args(args: argparse.Namespace) -> Contract:
    """``--reading``'s contract with the fields given on the command line instead."""
    fields = ("bound_precision", "stored", "inclusive_bounds", "timestamp_format")
    given = {f: getattr(args, f) for f in fields if getattr(args, f) is not None}
    return dataclasses.replace(READINGS[args.reading], **given)


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.control and args.tick:
        parser.error("--tick works only without --control (use the 'advance' command)")
    port = args.port if args.port is not None else (0 if args.control else _DEFAULT_PORT)
    if not args.control:
        logging.basicConfig(level=logging.INFO)
    started = time.monotonic()
    sim = DeckSimulator(
        seed=args.seed,
        runs=args.runs,
        history_days=args.history_days,
        api_key=args.api_key,
        order=args.order,
        latency=args.latency,
        rate_limit=parse_rate_limit(args.rate_limit),
        host=args.host,
        port=port,
        contract=contract_from_args(args),
    )
    sim.skew_dates(args.date_skew)
    sim.omit_date = args.omit_date
    sim.start()
    try:
        if args.control:
            _reply(
                {
                    "ready": True,
                    "base_url": sim.base_url,
                    "api_key": sim.api_key,
                    "runs": args.runs,
                    "generate_s": round(time.monotonic() - started, 2),
                }
            )
            control(sim, sys.stdin)
        else:
            _serve(sim, args.runs, args.tick, args.new_runs_per_tick)
    finally:
        sim.stop()


def _serve(sim: DeckSimulator, runs: int, tick: float, new_runs_per_tick: int) -> None:
    """Serve until Ctrl-C, moving the clock by ``tick`` seconds every second."""
    print(f"Deck simulator: {runs} runs, clock {sim.now.isoformat()}")
    print(f"  base URL: {sim.base_url}")
    print(f"  API key:  {sim.api_key}")
    print(
        f"  try: curl -H 'Authorization: Bearer {sim.api_key}' '{sim.base_url}/task-runs?limit=2'"
    )
    print("Ctrl-C to stop.", flush=True)
    try:
        while True:
            time.sleep(1.0)
            if tick > 0:
                sim.advance(tick, new_runs=new_runs_per_tick)
    except KeyboardInterrupt:
        pass


# ------------------------------------------------------------------------------------ --control


def control(sim: DeckSimulator, lines: Iterable[str]) -> None:
    """Answer one JSON line per command until ``quit`` or the end of ``lines``."""
    for line in lines:
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
            elif cmd == "reading":
                sim.contract = rest[0]
                _reply({"ok": True})
            elif cmd == "rate_limit":
                sim.rate_limit = parse_rate_limit("/".join(rest))
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


def _reply(payload: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(payload) + "\n")
    sys.stdout.flush()


def _stats(sim: DeckSimulator) -> dict[str, Any]:
    requests = list(sim.requests)
    by_path: Counter[str] = Counter()
    by_status: Counter[str] = Counter()
    for rec in requests:
        path = rec.path.rstrip("/")
        by_path["get" if path.count("/") >= 3 else path.rsplit("/", 1)[-1]] += 1
        by_status[str(rec.status)] += 1
    return {
        "requests": len(requests),
        # one-record questions with no lower bound: the search for where a history starts
        "start_searches": sum(
            rec.params.get("limit") == ["1"] and "created_after" not in rec.params
            for rec in requests
        ),
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
