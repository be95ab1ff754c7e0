"""One measured sync, run by `benchmarks/run.py` in a fresh process of its own.

    python benchmarks/worker.py KIND --base-url URL --api-key KEY --workdir DIR [--options JSON]

KIND is one of:

- `ours`              this project: `deck.sync(pipeline, **options)` into DuckDB (its defaults,
                      runs only: `events=False`, like the baselines)
- `rest_api`          dlt's generic `rest_api_source` configured for `GET /task-runs` as a typical
                      user would, dlt's defaults (insert_values into DuckDB)
- `rest_api_parquet`  the same with `loader_file_format="parquet"`
- `raw`               plain `requests` walking every page to NDJSON, then one DuckDB `read_json`

The pipeline (state, load packages) and the DuckDB file live in `--workdir`, so a second call with
the same workdir is an incremental sync. The last line on stdout is `BENCH_RESULT {json}` with the
wall time of the sync alone (imports excluded), the CPU seconds it used (user + system, all
threads), this process's peak RSS (ru_maxrss, which covers the whole life of the process) and the
RSS before the sync started.
"""

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any, Dict

PIPELINE_NAME = "bench"
DATASET = "deck"


def _rss_kb_now() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def _cpu_s() -> float:
    """CPU seconds (user + system, all threads) this process has used so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _pipeline(workdir: Path):
    import dlt

    return dlt.pipeline(
        pipeline_name=PIPELINE_NAME,
        pipelines_dir=str(workdir / "pipelines"),
        destination=dlt.destinations.duckdb(str(workdir / "warehouse.duckdb")),
        dataset_name=DATASET,
    )


def run_ours(args: argparse.Namespace, options: Dict[str, Any]) -> Dict[str, Any]:
    from deck import sync

    pipeline = _pipeline(args.workdir)
    # Runs only unless asked (the events section): the baselines (rest_api, raw) list
    # GET /task-runs alone, so the comparisons stay like for like.
    options = {"events": False, **options}
    rss_before = _rss_kb_now()
    cpu_start = _cpu_s()
    started = time.perf_counter()
    result = sync(pipeline, api_key=args.api_key, base_url=args.base_url, **options)
    seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "rss_before_kb": rss_before,
        "cpu_start": cpu_start,
        "new_runs": result.new_runs,
        "new_events": result.new_events,
        "updated_runs": result.updated_runs,
        "requests": result.requests,
        "pages": result.pages,
        "retries": result.retries,
        "loads": result.loads,
        "open_rechecked": result.open_rechecked,
    }


def rest_api_config(base_url: str, api_key: str) -> Dict[str, Any]:
    """`GET /task-runs` for dlt's rest_api source, the way its documentation shows it."""
    from dlt.sources.helpers.rest_client.paginators import JSONResponseCursorPaginator

    return {
        "client": {
            "base_url": base_url.rstrip("/") + "/",
            "auth": {"type": "bearer", "token": api_key},
        },
        "resources": [
            {
                "name": "task_runs",
                "primary_key": "id",
                "write_disposition": "merge",
                "endpoint": {
                    "path": "task-runs",
                    "data_selector": "data",
                    "paginator": JSONResponseCursorPaginator(
                        cursor_path="next_cursor",
                        cursor_param="cursor",
                        has_more_path="has_more",
                    ),
                    "params": {
                        "limit": 100,
                        "created_after": {
                            "type": "incremental",
                            "cursor_path": "created_at",
                            "initial_value": "1970-01-01T00:00:00Z",
                        },
                    },
                },
            }
        ],
    }


def run_rest_api(args: argparse.Namespace, parquet: bool) -> Dict[str, Any]:
    from dlt.sources.rest_api import rest_api_source

    pipeline = _pipeline(args.workdir)
    source = rest_api_source(rest_api_config(args.base_url, args.api_key), name="deck_rest_api")
    rss_before = _rss_kb_now()
    cpu_start = _cpu_s()
    started = time.perf_counter()
    if parquet:
        info = pipeline.run(source, loader_file_format="parquet")
    else:
        info = pipeline.run(source)
    seconds = time.perf_counter() - started
    info.raise_on_failed_jobs()
    rows = pipeline.last_trace.last_normalize_info.row_counts.get("task_runs", 0)
    return {
        "seconds": seconds,
        "rss_before_kb": rss_before,
        "cpu_start": cpu_start,
        "new_runs": rows,
    }


def run_raw(args: argparse.Namespace) -> Dict[str, Any]:
    """The floor: sequential GETs following the cursor, NDJSON on disk, one bulk read_json."""
    import duckdb
    import orjson
    import requests

    args.workdir.mkdir(parents=True, exist_ok=True)
    ndjson = args.workdir / "task_runs.ndjson"
    rss_before = _rss_kb_now()
    cpu_start = _cpu_s()
    started = time.perf_counter()
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {args.api_key}"
    url = args.base_url.rstrip("/") + "/task-runs"
    params: Dict[str, Any] = {"limit": 100}
    pages = rows = 0
    with open(ndjson, "wb") as out:
        while True:
            response = session.get(url, params=params, timeout=(10, 60))
            response.raise_for_status()
            body = orjson.loads(response.content)
            pages += 1
            for run in body["data"]:
                out.write(orjson.dumps(run))
                out.write(b"\n")
            rows += len(body["data"])
            if not body.get("has_more") or not body.get("next_cursor"):
                break
            params = {"limit": 100, "cursor": body["next_cursor"]}
    fetched = time.perf_counter()
    con = duckdb.connect(str(args.workdir / "warehouse.duckdb"))
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {DATASET}")
    con.execute(
        f"CREATE OR REPLACE TABLE {DATASET}.task_runs AS"
        " SELECT * FROM read_json(?, format = 'newline_delimited')",
        [str(ndjson)],
    )
    con.close()
    seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "fetch_s": fetched - started,
        "load_s": seconds - (fetched - started),
        "rss_before_kb": rss_before,
        "cpu_start": cpu_start,
        "new_runs": rows,
        "requests": pages,
        "pages": pages,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=("ours", "rest_api", "rest_api_parquet", "raw"))
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--api-key", required=True)
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--options", default="{}", help="JSON: source options for `ours`")
    args = parser.parse_args()
    if args.kind == "ours":
        out = run_ours(args, json.loads(args.options))
    elif args.kind == "raw":
        out = run_raw(args)
    else:
        out = run_rest_api(args, parquet=args.kind == "rest_api_parquet")
    out["cpu_s"] = _cpu_s() - out.pop("cpu_start")
    out["peak_rss_kb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    out["kind"] = args.kind
    sys.stdout.write("BENCH_RESULT " + json.dumps(out) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
    main()
