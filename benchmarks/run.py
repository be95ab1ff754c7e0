"""Benchmarks of the Deck connector against dlt's generic rest_api source and a raw floor.

    .venv/bin/python benchmarks/run.py            # full run (~10-15 min on 2 cores)
    .venv/bin/python benchmarks/run.py --quick    # smoke run with small sizes (~1-2 min)
    .venv/bin/python benchmarks/run.py --sections cpu,memory

Sections (see docs/benchmarks.md):

1. cpu          runs/s with no latency and no rate limit: ours, rest_api (insert_values),
                rest_api (parquet) and the raw floor (requests -> NDJSON -> DuckDB read_json)
2. backfill     150 ms latency per request and Deck's 200 requests / 10 s enforced with 429s
3. incremental  a full sync, then 1% new runs and the status changes of an advanced clock,
                then the next sync: requests, seconds and rows that disagree with ground truth
4. memory       peak RSS of ours syncing a small and a 10x larger history

The simulator always runs in a separate process (`python -m deck_simulator --control`), and
every measured sync in a fresh process of its own (`benchmarks/worker.py`) with a fresh DuckDB
file and dlt directory in a temporary folder, so wall time and peak RSS are per scenario. Not part
of the test suite: speed is measured here, never in tests.
"""

import argparse
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import duckdb

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SECTIONS = ("cpu", "backfill", "events", "incremental", "memory", "load_sizes")
PAGE_SIZE = 100  # Deck's maximum page; every contestant asks for it
SAFETY_TIMEOUT_S = 1800.0  # no single measured sync may hang the benchmark

TARGET_CPU_VS_PEER = 1.5  # ours / rest_api-parquet runs/s
TARGET_BUDGET_SHARE = 0.95  # ours / the rate budget's ceiling (runs, and runs + events)
TARGET_BACKFILL_VS_PEER = 2.5  # peer wall time / ours
TARGET_MEMORY_RATIO = 1.3  # peak RSS at 10x the runs / peak RSS at 1x


@dataclass
class Sizes:
    cpu_runs: int
    backfill_runs: int
    events_runs: int  # runs of the runs + events backfill (Deck's 30 days: every event kept)
    incremental_runs: int
    memory_runs: Tuple[int, int]
    latency_s: float
    # Deck's budget (200 / 10 s). --quick keeps its rate (20 req/s) in a shorter window, so that a
    # small backfill still outgrows the initial burst; ours is then told the same budget.
    budget: Tuple[int, float]
    peer_timeout_s: float
    incremental_advance_s: float
    load_sizes_runs: int = 8_000  # the backfill listed at each max_runs_per_load of LOAD_SIZES


LOAD_SIZES = (500, 1_000, 5_000, 50_000)
# Requests a backfill may cost beyond its pages and the search for where its history starts
# (counted apart, `start_searches`): the key check, the open-run re-check, the opening page.
FIXED_REQUESTS = 10

FULL = Sizes(
    cpu_runs=100_000,
    backfill_runs=200_000,
    events_runs=20_000,
    incremental_runs=20_000,
    memory_runs=(50_000, 500_000),
    latency_s=0.150,
    budget=(200, 10.0),
    peer_timeout_s=180.0,
    incremental_advance_s=24 * 3600.0,
)
QUICK = Sizes(
    cpu_runs=5_000,
    backfill_runs=5_000,
    events_runs=2_000,
    incremental_runs=3_000,
    memory_runs=(3_000, 30_000),
    latency_s=0.150,
    budget=(50, 2.5),
    peer_timeout_s=60.0,
    incremental_advance_s=24 * 3600.0,
    load_sizes_runs=2_000,
)


# ------------------------------------------------------------------------------------------------
# output helpers
# ------------------------------------------------------------------------------------------------


def log(message: str) -> None:
    print(f"  .. {message}", file=sys.stderr, flush=True)


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[str(h) for h in headers]] + [[_cell(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = []
    for n, row in enumerate(cells):
        parts = [
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  " + "  ".join(parts).rstrip())
        if n == 0:
            lines.append("  " + "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.2f}" if abs(value) < 100 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def ratio(a: Optional[float], b: Optional[float]) -> Optional[float]:
    if a is None or b is None or b == 0:
        return None
    return a / b


def fmt_x(value: Optional[float]) -> str:
    return "n/a" if value is None else f"{value:.2f}x"


def mib(kb: Optional[int]) -> Optional[float]:
    return None if kb is None else kb / 1024


# ------------------------------------------------------------------------------------------------
# the simulator process
# ------------------------------------------------------------------------------------------------


class Simulator:
    """`python -m deck_simulator --control` in a child process, driven one command per line over
    its stdin/stdout (the commands are listed in pipelines/deck_simulator/cli.py)."""

    def __init__(
        self,
        tmp: Path,
        *,
        runs: int,
        seed: int,
        latency: float = 0.0,
        rate_limit: Optional[Tuple[int, float]] = None,
    ) -> None:
        self.rate_limit = rate_limit
        cmd = [
            sys.executable,
            "-m",
            "deck_simulator",
            "--control",
            "--port",
            "0",
            "--runs",
            str(runs),
            "--seed",
            str(seed),
            "--latency",
            str(latency),
            "--rate-limit",
            f"{rate_limit[0]}/{rate_limit[1]}" if rate_limit else "none",
        ]
        self._stderr = open(tmp / f"simulator-{runs}-{seed}.log", "w")
        started = time.monotonic()
        self.proc = subprocess.Popen(
            cmd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            env=child_env(),
            cwd=str(tmp),
        )
        ready = self._read()
        self.base_url: str = ready["base_url"]
        self.api_key: str = ready["api_key"]
        log(
            f"simulator: {runs:,} runs generated in {time.monotonic() - started:.1f} s,"
            f" serving {self.base_url} (pid {self.proc.pid})"
        )

    def _read(self) -> Dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(
                f"the simulator exited (code {self.proc.poll()}); see {self._stderr.name}"
            )
        answer = json.loads(line)
        if "error" in answer:
            raise RuntimeError(f"simulator: {answer['error']}")
        return answer

    def command(self, *words: Any) -> Dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(" ".join(str(w) for w in words) + "\n")
        self.proc.stdin.flush()
        return self._read()

    def stats(self) -> Dict[str, Any]:
        return self.command("stats")

    def clear(self) -> None:
        self.command("clear")

    def cool_down(self) -> None:
        """Let the rate window empty, so the next contestant starts with the whole budget."""
        if self.rate_limit:
            time.sleep(self.rate_limit[1] + 0.5)

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.command("quit")
            except (OSError, RuntimeError, ValueError):
                pass
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._stderr.close()

    def __enter__(self) -> "Simulator":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ------------------------------------------------------------------------------------------------
# measured syncs
# ------------------------------------------------------------------------------------------------


def child_env(workdir: Optional[Path] = None) -> Dict[str, str]:
    env = dict(os.environ)
    env["RUNTIME__DLTHUB_TELEMETRY"] = "false"
    env.setdefault("RUNTIME__LOG_LEVEL", "WARNING")
    # the package is installed editable in .venv; this also covers running without installing it
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(ROOT / "pipelines"), env.get("PYTHONPATH", "")) if p
    )
    if workdir is not None:
        env["DLT_DATA_DIR"] = str(workdir / "dlt_data")
    return env


@dataclass
class Measured:
    kind: str
    ok: bool = False
    timed_out: bool = False
    error: str = ""
    seconds: Optional[float] = None  # the sync alone, measured in the worker
    process_s: Optional[float] = None  # the worker process, start to exit
    cpu_s: Optional[float] = None  # user + system CPU of the sync, all threads of the worker
    peak_rss_kb: Optional[int] = None
    rss_before_kb: Optional[int] = None
    rows: Optional[int] = None  # rows in the warehouse table afterwards
    distinct_ids: Optional[int] = None
    requests: Optional[int] = None  # seen by the simulator (429s included)
    start_searches: int = 0  # of those, the search for where the history starts (`limit=1`)
    rate_limited: Optional[int] = None  # 429s the simulator sent during this sync
    extra: Dict[str, Any] = field(default_factory=dict)

    def runs_per_s(self, runs: int) -> Optional[float]:
        return runs / self.seconds if self.ok and self.seconds else None

    def runs_per_cpu_s(self, runs: int) -> Optional[float]:
        return runs / self.cpu_s if self.ok and self.cpu_s else None


def measure(
    kind: str,
    sim: Simulator,
    workdir: Path,
    *,
    options: Optional[Dict[str, Any]] = None,
    timeout: float = SAFETY_TIMEOUT_S,
) -> Measured:
    """One sync in a fresh worker process; the simulator's log says what it cost."""
    workdir.mkdir(parents=True, exist_ok=True)
    sim.clear()
    before = sim.stats()
    cmd = [
        sys.executable,
        str(HERE / "worker.py"),
        kind,
        "--base-url",
        sim.base_url,
        "--api-key",
        sim.api_key,
        "--workdir",
        str(workdir),
        "--options",
        json.dumps(options or {}),
    ]
    out = Measured(kind)
    stamp = int(time.time() * 1000)
    stderr_path = workdir / f"worker-{kind}-{stamp}.log"
    stdout_path = workdir / f"worker-{kind}-{stamp}.out"
    started = time.monotonic()
    killed_for_rss = 0
    with open(stderr_path, "w") as stderr, open(stdout_path, "w") as stdout_file:
        proc = subprocess.Popen(
            cmd,
            stdout=stdout_file,
            stderr=stderr,
            text=True,
            env=child_env(workdir),
            cwd=str(workdir),
        )
        # Poll instead of waiting: a contestant whose memory runs away is stopped before it
        # takes the machine down (dlt's insert_values path grows with the rows it loads).
        while proc.poll() is None:
            rss_kb = proc_rss_kb(proc.pid)
            if rss_kb > RSS_CAP_KB:
                killed_for_rss = rss_kb
            elif time.monotonic() - started > timeout:
                out.timed_out = True
            if killed_for_rss or out.timed_out:
                proc.kill()
                proc.wait()
                break
            time.sleep(0.2)
    out.process_s = time.monotonic() - started
    after = sim.stats()
    out.requests = after["requests"]
    out.start_searches = after.get("start_searches", 0)
    out.rate_limited = after["rate_limited"] - before["rate_limited"]
    if out.timed_out:
        out.error = f"timed out after {timeout:.0f} s"
        out.seconds = timeout
        log(f"{kind}: {out.error} ({out.requests:,} requests, {out.rate_limited} x 429)")
        return out
    if killed_for_rss:
        out.error = (
            f"stopped at RSS {killed_for_rss / 1024 / 1024:.1f} GiB after {out.process_s:.0f} s"
        )
        out.peak_rss_kb = killed_for_rss
        log(f"{kind}: {out.error}")
        return out
    stdout = stdout_path.read_text()
    result = None
    for line in stdout.splitlines():
        if line.startswith("BENCH_RESULT "):
            result = json.loads(line[len("BENCH_RESULT ") :])
    if proc.returncode != 0 or result is None:
        tail = stderr_path.read_text().strip().splitlines()[-5:]
        out.error = f"exit code {proc.returncode}: " + " | ".join(tail)
        log(f"{kind} FAILED: {out.error}")
        return out
    out.ok = True
    out.seconds = result.pop("seconds")
    out.cpu_s = result.pop("cpu_s")
    out.peak_rss_kb = result.pop("peak_rss_kb")
    out.rss_before_kb = result.pop("rss_before_kb")
    out.extra = result
    out.rows, out.distinct_ids = count_rows(workdir / "warehouse.duckdb")
    log(
        f"{kind}: {out.seconds:.2f} s ({out.cpu_s:.2f} CPU s), {out.rows:,} rows,"
        f" {out.requests:,} requests, {out.rate_limited} x 429,"
        f" peak RSS {out.peak_rss_kb / 1024:,.0f} MiB"
    )
    return out


def proc_rss_kb(pid: int) -> int:
    """Current resident set of a process, from /proc (0 once it is gone)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def memory_available_kb() -> int:
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 8 * 1024 * 1024


# A measured sync is stopped beyond this resident size (half of what is free at start).
RSS_CAP_KB = memory_available_kb() // 2


def count_rows(db: Path) -> Tuple[Optional[int], Optional[int]]:
    if not db.exists():
        return None, None
    with duckdb.connect(str(db), read_only=True) as con:
        row = con.execute("SELECT count(*), count(DISTINCT id) FROM deck.task_runs").fetchone()
    return (int(row[0]), int(row[1])) if row else (None, None)


def warehouse_state(db: Path) -> Dict[str, Tuple[str, int]]:
    """id -> (status, updated_at in epoch ms) as the warehouse holds it."""
    with duckdb.connect(str(db), read_only=True) as con:
        rows = con.execute(
            "SELECT id, status, epoch_ms(CAST(updated_at AS TIMESTAMPTZ)) FROM deck.task_runs"
        ).fetchall()
    return {r[0]: (r[1], int(r[2])) for r in rows}


def truth_state(path: Path) -> Dict[str, Tuple[str, int]]:
    from datetime import datetime

    state = {}
    with open(path) as lines:
        for line in lines:
            run = json.loads(line)
            updated = datetime.fromisoformat(run["updated_at"].replace("Z", "+00:00"))
            state[run["id"]] = (run["status"], round(updated.timestamp() * 1000))
    return state


def disagreements(truth: Dict[str, Tuple[str, int]], held: Dict[str, Tuple[str, int]]) -> int:
    """Runs missing from the warehouse or held at another status/updated_at than Deck's."""
    return sum(1 for rid, state in truth.items() if held.get(rid) != state)


def best(results: List[Measured]) -> Measured:
    """The fastest of repeated measurements: on a shared machine noise only ever adds time.
    A failure wins, so that it is seen."""
    failed = [r for r in results if not r.ok]
    if failed:
        return failed[0]
    return min(results, key=lambda r: r.seconds or 0.0)


# ------------------------------------------------------------------------------------------------
# sections
# ------------------------------------------------------------------------------------------------


@dataclass
class Target:
    name: str
    wanted: str
    measured: str
    met: Optional[bool]  # None: could not be measured


def section_cpu(tmp: Path, sizes: Sizes, args: argparse.Namespace, targets: List[Target]) -> str:
    n = sizes.cpu_runs
    # name -> (worker kind, source options, label). The scenario has no rate limit, so ours runs
    # with its client-side limiter off (rate_limit_requests=0), like the peers which have none.
    # --cpu-with-limiter adds ours with every default: its limiter then caps it at Deck's budget.
    contestants = {
        "ours": ("ours", {"rate_limit_requests": 0}, "ours (deck.sync, limiter off)"),
        "rest_api": ("rest_api", {}, "rest_api (insert_values)"),
        "rest_api_parquet": ("rest_api_parquet", {}, "rest_api (parquet)"),
        "raw": ("raw", {}, "raw (requests+NDJSON+read_json)"),
    }
    if args.cpu_with_limiter:
        contestants["ours_budget"] = ("ours", {}, "ours (all defaults: 200 req/10 s)")
    kinds = tuple(contestants)
    labels = {name: c[2] for name, c in contestants.items()}
    results: Dict[str, Measured] = {}
    with Simulator(tmp, runs=n, seed=args.seed) as sim:
        for name, (kind, options, _) in contestants.items():
            runs = [
                measure(kind, sim, tmp / f"cpu-{name}-{i}", options=options)
                for i in range(args.repeat)
            ]
            results[name] = best(runs)
    rate = {k: r.runs_per_s(n) for k, r in results.items()}
    cpu_rate = {k: r.runs_per_cpu_s(n) for k, r in results.items()}
    rows = []
    for kind in kinds:
        r = results[kind]
        rows.append(
            [
                labels[kind],
                r.seconds if r.ok else r.error[:40],
                rate[kind],
                fmt_x(ratio(rate["ours"], rate[kind])),
                r.cpu_s,
                cpu_rate[kind],
                fmt_x(ratio(cpu_rate["ours"], cpu_rate[kind])),
                r.rows,
                r.requests,
                mib(r.peak_rss_kb),
            ]
        )
    raw = results["raw"]
    vs_peer = ratio(rate["ours"], rate["rest_api_parquet"])
    vs_raw = ratio(rate["ours"], rate["raw"])
    targets.append(
        Target(
            "cpu: ours / rest_api-parquet runs/s",
            f">= {TARGET_CPU_VS_PEER}x",
            fmt_x(vs_peer),
            None if vs_peer is None else vs_peer >= TARGET_CPU_VS_PEER,
        )
    )
    lines = [
        f"1. CPU path: {n:,} runs, no latency, no rate limit"
        + (f" (fastest of {args.repeat})" if args.repeat > 1 else ""),
        table(
            [
                "contestant",
                "sync s",
                "runs/s",
                "ours vs",
                "CPU s",
                "runs/CPU-s",
                "ours vs",
                "rows",
                "requests",
                "peak MiB",
            ],
            rows,
        ),
        f"  ours / rest_api-parquet: {fmt_x(vs_peer)} runs/s (target >= {TARGET_CPU_VS_PEER}x);"
        f" {fmt_x(ratio(cpu_rate['ours'], cpu_rate['rest_api_parquet']))} per CPU second",
        f"  ours / rest_api (insert_values): {fmt_x(ratio(rate['ours'], rate['rest_api']))}",
        f"  ours / raw limit: {fmt_x(vs_raw)}"
        + (
            f" (raw: fetch {raw.extra.get('fetch_s', 0):.2f} s + read_json"
            f" {raw.extra.get('load_s', 0):.2f} s)"
            if raw.ok
            else ""
        ),
    ]
    wrong = [k for k, r in results.items() if r.ok and (r.rows != n or r.distinct_ids != n)]
    if results["ours"].ok:
        lines.append(
            f"  requests: ours {_cell(results['ours'].requests)}"
            f" in {_cell(results['ours'].extra.get('loads'))} load(s) for"
            f" {math.ceil(n / PAGE_SIZE):,} pages of data; the others one per page"
        )
    if "ours_budget" in rate:
        lines.append(
            f"  ours with all defaults: {_cell(rate['ours_budget'])} runs/s: its client-side"
            " limiter (Deck's 200 req / 10 s) caps any sync near"
            f" {200 * PAGE_SIZE / 10:,.0f} runs/s"
        )
    if wrong:
        lines.append(f"  WARNING: row count is not {n:,} for: {', '.join(wrong)}")
    return "\n".join(lines)


def section_backfill(
    tmp: Path, sizes: Sizes, args: argparse.Namespace, targets: List[Target]
) -> str:
    n = sizes.backfill_runs
    count, period = sizes.budget
    per_s = count / period
    ceiling = per_s * PAGE_SIZE  # runs/s the budget allows at full pages
    pages_needed = math.ceil(n / PAGE_SIZE)
    floor_s = pages_needed / per_s
    ours_options: Dict[str, Any] = {}
    if (count, period) != (200, 10.0):  # --quick: tell ours the scaled budget, as a user would
        ours_options = {"rate_limit_requests": count, "rate_limit_period_s": period}
    with Simulator(
        tmp, runs=n, seed=args.seed, latency=sizes.latency_s, rate_limit=sizes.budget
    ) as sim:
        ours = measure("ours", sim, tmp / "backfill-ours", options=ours_options)
        sim.cool_down()
        peer = measure("rest_api", sim, tmp / "backfill-rest_api", timeout=sizes.peer_timeout_s)
    ours_rate = ours.runs_per_s(n)
    peer_rate = peer.runs_per_s(n) if not peer.timed_out else None
    share = ratio(ours_rate, ceiling)
    speedup = ratio(peer.seconds, ours.seconds) if ours.ok else None
    speedup_text = fmt_x(speedup)
    if peer.timed_out and speedup is not None:
        speedup_text = f">= {speedup:.2f}x (peer timed out)"

    def row(label: str, r: Measured, rate: Optional[float]) -> List[Any]:
        status = "ok" if r.ok else ("TIMED OUT" if r.timed_out else "FAILED")
        return [label, r.seconds, rate, r.rows, r.requests, r.rate_limited, status]

    targets.append(
        Target(
            "backfill: ours / budget ceiling",
            f">= {TARGET_BUDGET_SHARE:.0%}",
            "n/a" if share is None else f"{share:.0%}",
            None if share is None else share >= TARGET_BUDGET_SHARE,
        )
    )
    targets.append(
        Target(
            "backfill: rest_api time / ours",
            f">= {TARGET_BACKFILL_VS_PEER}x",
            speedup_text,
            None if speedup is None else speedup >= TARGET_BACKFILL_VS_PEER,
        )
    )
    targets.append(
        Target(
            "backfill: 429s received by ours",
            "0",
            "n/a" if not ours.ok else str(ours.rate_limited),
            None if not ours.ok else ours.rate_limited == 0,
        )
    )
    lines = [
        f"2. Backfill: {n:,} runs, {sizes.latency_s * 1000:.0f} ms latency per request,"
        f" {count} requests / {period:g} s enforced with 429s",
        table(
            ["contestant", "wall s", "runs/s", "rows", "requests", "429s", "status"],
            [
                row(
                    "ours (defaults)" if not ours_options else "ours (budget set)", ours, ours_rate
                ),
                row("rest_api (defaults)", peer, peer_rate),
            ],
        ),
        f"  budget floor: {pages_needed:,} pages / {per_s:g} req/s = {floor_s:.1f} s;"
        f" ceiling {ceiling:,.0f} runs/s (the sliding window also allows an initial burst of"
        f" {count})",
        f"  ours: {n:,} runs in {_cell(ours.seconds)} s = {_cell(ours_rate)} runs/s ="
        f" {'n/a' if share is None else f'{share:.0%}'} of the ceiling"
        f" (target >= {TARGET_BUDGET_SHARE:.0%}); it sent {_cell(ours.requests)} requests"
        f" for {pages_needed:,} pages of data",
        f"  rest_api time / ours: {speedup_text} (target >= {TARGET_BACKFILL_VS_PEER}x);"
        f" peer timeout {sizes.peer_timeout_s:.0f} s",
    ]
    return "\n".join(lines)


def section_events(
    tmp: Path, sizes: Sizes, args: argparse.Namespace, targets: List[Target]
) -> str:
    """Runs and their events (`GET /events`, Deck's 30 days) in one sync under one budget."""
    n = sizes.events_runs
    count, period = sizes.budget
    per_s = count / period
    options: Dict[str, Any] = {"events": True}
    if (count, period) != (200, 10.0):
        options.update(rate_limit_requests=count, rate_limit_period_s=period)
    with Simulator(
        tmp, runs=n, seed=args.seed, latency=sizes.latency_s, rate_limit=sizes.budget
    ) as sim:
        ours = measure("ours", sim, tmp / "events-ours", options=options)
    events = ours.extra.get("new_events") if ours.ok else None
    pages_needed = math.ceil(n / PAGE_SIZE) + math.ceil((events or 0) / PAGE_SIZE)
    floor_s = pages_needed / per_s
    share = floor_s / ours.seconds if ours.ok and ours.seconds else None
    targets.append(
        Target(
            "events: ours / budget ceiling",
            f">= {TARGET_BUDGET_SHARE:.0%}",
            "n/a" if share is None else f"{share:.0%}",
            None if share is None else share >= TARGET_BUDGET_SHARE,
        )
    )
    targets.append(
        Target(
            "events: 429s received by ours",
            "0",
            "n/a" if not ours.ok else str(ours.rate_limited),
            None if not ours.ok else ours.rate_limited == 0,
        )
    )
    status = "ok" if ours.ok else ("TIMED OUT" if ours.timed_out else "FAILED")
    lines = [
        f"3. Events backfill: {n:,} runs and every event Deck keeps"
        f" (30 days), {sizes.latency_s * 1000:.0f} ms latency, {count} requests / {period:g} s",
        table(
            ["contestant", "wall s", "runs", "events", "loads", "requests", "429s", "status"],
            [[
                "ours (events on)", ours.seconds, ours.rows, events,
                ours.extra.get("loads"), ours.requests, ours.rate_limited, status,
            ]],
        ),
        f"  budget floor: {pages_needed:,} pages of runs and events / {per_s:g} req/s ="
        f" {floor_s:.1f} s; ours took {_cell(ours.seconds)} s ="
        f" {'n/a' if share is None else f'{share:.0%}'} of the ceiling"
        f" (target >= {TARGET_BUDGET_SHARE:.0%})",
    ]
    return "\n".join(lines)


def section_incremental(
    tmp: Path, sizes: Sizes, args: argparse.Namespace, targets: List[Target]
) -> str:
    n = sizes.incremental_runs
    new_runs = max(1, n // 100)
    with Simulator(tmp, runs=n, seed=args.seed) as sim:
        # 1. full syncs of the same data, fast (no latency): only the next sync is measured
        full_ours = measure("ours", sim, tmp / "inc-ours")
        full_peer = measure("rest_api", sim, tmp / "inc-rest_api")
        sim.command("truth", tmp / "truth-before.jsonl")
        # 2. the world moves on: new runs, open runs finish
        sim.command("advance", sizes.incremental_advance_s, new_runs)
        sim.command("truth", tmp / "truth-after.jsonl")
        # 3. the next sync, against Deck-like latency and budget
        sim.command("latency", sizes.latency_s)
        sim.command("rate_limit", *sizes.budget)
        sim.rate_limit = sizes.budget
        ours_options: Dict[str, Any] = {}
        if sizes.budget != (200, 10.0):
            ours_options = {
                "rate_limit_requests": sizes.budget[0],
                "rate_limit_period_s": sizes.budget[1],
            }
        inc_ours = measure("ours", sim, tmp / "inc-ours", options=ours_options)
        sim.cool_down()
        inc_peer = measure("rest_api", sim, tmp / "inc-rest_api", timeout=sizes.peer_timeout_s)
    before = truth_state(tmp / "truth-before.jsonl")
    after = truth_state(tmp / "truth-after.jsonl")
    changed_old = sum(1 for rid, s in before.items() if after.get(rid) != s)
    added = sum(1 for rid in after if rid not in before)
    open_before = sum(1 for s, _ in before.values() if s not in ("completed", "failed", "canceled"))

    def stale(r: Measured, workdir: Path) -> Optional[int]:
        if not r.ok:
            return None
        return disagreements(after, warehouse_state(workdir / "warehouse.duckdb"))

    stale_ours = stale(inc_ours, tmp / "inc-ours")
    stale_peer = stale(inc_peer, tmp / "inc-rest_api")

    def row(label: str, full: Measured, inc: Measured, stale_rows: Optional[int]) -> List[Any]:
        return [
            label,
            full.seconds if full.ok else full.error[:30],
            full.requests,
            inc.seconds if inc.ok else inc.error[:30],
            inc.requests,
            inc.rate_limited,
            inc.rows,
            stale_rows,
        ]

    targets.append(
        Target(
            "incremental: ours rows != ground truth",
            "0",
            "n/a" if stale_ours is None else str(stale_ours),
            None if stale_ours is None else stale_ours == 0,
        )
    )
    hours = sizes.incremental_advance_s / 3600
    lines = [
        f"4. Incremental: full sync of {n:,} runs ({open_before:,} open), then the clock moves"
        f" {hours:g} h: {added:,} new runs, {changed_old:,} existing runs changed status;"
        f" next sync at {sizes.latency_s * 1000:.0f} ms latency, {sizes.budget[0]} req /"
        f" {sizes.budget[1]:g} s",
        table(
            [
                "contestant",
                "full s",
                "full req",
                "next s",
                "next req",
                "429s",
                "rows",
                "stale/missing",
            ],
            [
                row("ours", full_ours, inc_ours, stale_ours),
                row("rest_api (defaults)", full_peer, inc_peer, stale_peer),
            ],
        ),
        f"  ground truth after the move: {len(after):,} runs; 'stale/missing' = warehouse rows"
        " whose status/updated_at differ from Deck's, or runs missing",
        f"  ours next sync (SyncResult): {inc_ours.extra.get('new_runs', 'n/a')} new,"
        f" {inc_ours.extra.get('updated_runs', 'n/a')} updated,"
        f" {inc_ours.extra.get('requests', 'n/a')} requests"
        f" ({inc_ours.extra.get('pages', 'n/a')} list pages,"
        f" {inc_ours.extra.get('open_rechecked', 'n/a')} runs fetched by id)",
    ]
    if stale_peer is not None:
        lines.append(
            f"  rest_api missed {stale_peer:,} of the {changed_old:,} changed runs: its"
            " created_after cursor never looks back at runs it already has"
        )
    return "\n".join(lines)


def section_load_sizes(
    tmp: Path, sizes: Sizes, args: argparse.Namespace, targets: List[Target]
) -> str:
    """One backfill at each load size: requests must follow the pages of data, not the loads
    (issue: a window bigger than a load was listed ahead in vain, then again cut to it)."""
    n = sizes.load_sizes_runs
    pages = math.ceil(n / PAGE_SIZE)
    rows = []
    with Simulator(tmp, runs=n, seed=args.seed) as sim:
        for per_load in LOAD_SIZES:
            r = measure(
                "ours", sim, tmp / f"loads-{per_load}", options={"max_runs_per_load": per_load}
            )
            loads = r.extra.get("loads") if r.ok else None
            search = r.start_searches
            bound = None if loads is None else 1.1 * pages + (loads - 1) + search + FIXED_REQUESTS
            met = None if bound is None or r.requests is None else r.requests <= bound
            rows.append([
                f"{per_load:,}", loads, r.requests, search, pages,
                None if not r.ok else round((r.requests - search) / pages, 2),
                None if bound is None else math.floor(bound), r.seconds,
                "ok" if r.ok else "FAILED",
            ])
            targets.append(Target(
                f"load size {per_load:,}: requests <= 1.1 x pages + boundaries + search"
                f" + {FIXED_REQUESTS}",
                "<= bound", "n/a" if met is None else f"{r.requests} of {math.floor(bound)}", met,
            ))
    return "\n".join([
        f"6. Requests at each load size: a backfill of {n:,} runs ({pages} pages), no latency,"
        " no rate limit, events off",
        table(
            ["max_runs_per_load", "loads", "requests", "search", "pages", "req/page",
             "bound", "wall s", "status"],
            rows,
        ),
        "  req/page: requests but the search for the start of history, per page of data",
        f"  bound: 1.1 x pages + one per load boundary + the search + {FIXED_REQUESTS} (key"
        " check, open-run re-check, the opening page)",
    ])


def section_memory(tmp: Path, sizes: Sizes, args: argparse.Namespace, targets: List[Target]) -> str:
    # The client-side limiter is off (no rate limit here): memory is the question, and at Deck's
    # 20 req/s a 500k backfill alone would take longer than this whole benchmark should.
    options = {"rate_limit_requests": 0}
    results: List[Tuple[int, Measured]] = []
    for n in sizes.memory_runs:
        with Simulator(tmp, runs=n, seed=args.seed) as sim:
            results.append((n, measure("ours", sim, tmp / f"mem-{n}", options=options)))
    (small_n, small), (large_n, large) = results
    mem_ratio = ratio(large.peak_rss_kb, small.peak_rss_kb) if small.ok and large.ok else None
    targets.append(
        Target(
            f"memory: peak RSS {large_n // 1000}k / {small_n // 1000}k runs",
            f"<= {TARGET_MEMORY_RATIO}x",
            fmt_x(mem_ratio),
            None if mem_ratio is None else mem_ratio <= TARGET_MEMORY_RATIO,
        )
    )
    rows = [
        [
            f"ours, {n:,} runs",
            r.seconds if r.ok else r.error[:40],
            r.runs_per_s(n),
            r.cpu_s,
            r.rows,
            r.extra.get("loads"),
            r.requests,
            math.ceil(n / PAGE_SIZE),
            mib(r.rss_before_kb),
            mib(r.peak_rss_kb),
        ]
        for n, r in results
    ]
    return "\n".join(
        [
            f"5. Memory: peak RSS of ours syncing {small_n:,} and {large_n:,} runs"
            " (no latency, client limiter off)",
            table(
                [
                    "scenario",
                    "sync s",
                    "runs/s",
                    "CPU s",
                    "rows",
                    "loads",
                    "requests",
                    "pages needed",
                    "RSS before MiB",
                    "peak MiB",
                ],
                rows,
            ),
            f"  peak RSS {large_n:,} / {small_n:,}: {fmt_x(mem_ratio)}"
            f" (target <= {TARGET_MEMORY_RATIO}x); peak = ru_maxrss of the sync's own process",
        ]
    )


# ------------------------------------------------------------------------------------------------


def summary(targets: List[Target], quick: bool) -> str:
    rows = []
    for t in targets:
        verdict = "n/a (failed)" if t.met is None else ("MET" if t.met else "NOT MET")
        rows.append([t.name, t.wanted, t.measured, verdict])
    note = " (--quick: small sizes, indicative only)" if quick else ""
    return "\n".join([f"SUMMARY{note}", table(["target", "wanted", "measured", "verdict"], rows)])


def load_average() -> str:
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "?"


def project_version() -> str:
    """The commit measured, and whether the package had uncommitted edits."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "pipelines/deck"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown commit"
    return f"commit {head}" + (" + uncommitted edits in pipelines/deck" if dirty else "")


def machine() -> str:
    try:
        with open("/proc/meminfo") as f:
            mem_kb = int(f.readline().split()[1])
        mem = f", {mem_kb / 1024 / 1024:.0f} GiB RAM"
    except (OSError, ValueError, IndexError):
        mem = ""
    try:
        import dlt

        dlt_version = dlt.__version__
    except Exception:
        dlt_version = "?"
    return (
        f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores{mem};"
        f" Python {platform.python_version()}, dlt {dlt_version}, duckdb {duckdb.__version__}"
    )


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Benchmarks of the Deck connector (not part of the test suite)."
    )
    parser.add_argument("--quick", action="store_true", help="small sizes: a 1-2 minute smoke run")
    parser.add_argument(
        "--sections",
        default=",".join(SECTIONS),
        help=f"comma-separated subset of {','.join(SECTIONS)} (default: all)",
    )
    parser.add_argument("--seed", type=int, default=7, help="simulator seed (same data each run)")
    parser.add_argument(
        "--repeat", type=int, default=1, help="cpu section: syncs per contestant (fastest kept)"
    )
    parser.add_argument("--cpu-runs", type=int, help="override the cpu section's size")
    parser.add_argument(
        "--cpu-with-limiter",
        action="store_true",
        help="cpu section: also run ours with every default (its 200 req/10 s limiter on)",
    )
    parser.add_argument("--backfill-runs", type=int, help="override the backfill section's size")
    parser.add_argument(
        "--incremental-runs", type=int, help="override the incremental section's size"
    )
    parser.add_argument(
        "--memory-runs", help="override the memory section's two sizes, e.g. 50000,500000"
    )
    parser.add_argument("--peer-timeout", type=float, help="cap on the rest_api peer's syncs (s)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument("--json", type=Path, help="also write the summary as JSON here")
    args = parser.parse_args(argv)
    chosen = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = [s for s in chosen if s not in SECTIONS]
    if unknown or not chosen:
        parser.error(f"unknown section(s) {unknown}; choose from {', '.join(SECTIONS)}")
    args.sections = [s for s in SECTIONS if s in chosen]
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    return args


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    base = QUICK if args.quick else FULL
    sizes = Sizes(**base.__dict__)
    if args.cpu_runs:
        sizes.cpu_runs = args.cpu_runs
    if args.backfill_runs:
        sizes.backfill_runs = args.backfill_runs
    if args.incremental_runs:
        sizes.incremental_runs = args.incremental_runs
    if args.memory_runs:
        small, large = (int(v) for v in args.memory_runs.split(","))
        sizes.memory_runs = (small, large)
    if args.peer_timeout:
        sizes.peer_timeout_s = args.peer_timeout

    tmp = Path(tempfile.mkdtemp(prefix="deck-bench-"))
    started = time.monotonic()
    print(f"Deck connector benchmarks{' (--quick)' if args.quick else ''}: {machine()}")
    print(f"project: {project_version()}; load average at start: {load_average()}")
    print(f"sections: {', '.join(args.sections)}; seed {args.seed}; scratch {tmp}", flush=True)
    runners = {
        "cpu": section_cpu,
        "backfill": section_backfill,
        "events": section_events,
        "incremental": section_incremental,
        "memory": section_memory,
        "load_sizes": section_load_sizes,
    }
    targets: List[Target] = []
    reports: List[str] = []
    try:
        for name in args.sections:
            log(f"section {name}")
            section_started = time.monotonic()
            try:
                report = runners[name](tmp, sizes, args, targets)
            except Exception as exc:  # one broken section must not hide the others
                report = f"{name}: FAILED ({type(exc).__name__}: {exc})"
            report += (
                f"\n  (section took {time.monotonic() - section_started:.0f} s;"
                f" load average now {load_average()})"
            )
            reports.append(report)
            print("\n" + report, flush=True)
    finally:
        if args.keep:
            print(f"\nkept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    print("\n" + summary(targets, args.quick))
    print(f"\ntotal {time.monotonic() - started:.0f} s", flush=True)
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "quick": args.quick,
                    "machine": machine(),
                    "targets": [t.__dict__ for t in targets],
                    "repeat": args.repeat,
                },
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
