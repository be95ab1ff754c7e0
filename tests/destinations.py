"""Destination-agnostic warehouses for the tests: DuckDB, a real PostgreSQL, Delta tables.

`DestinationWarehouse` has the same reading interface as conftest's DuckDB-only `Warehouse`
(`runs()`, `errors()`, `tables()`, `columns()`), so conftest's `assert_matches_ground_truth`
checks every destination with the very same assertions. SQL destinations are read through
`pipeline.sql_client()`; Delta tables through the `deltalake` reader (DuckDB's delta extension
would need a download), opened by dlt's own filesystem client so that remote buckets work too.

`PostgresServer` runs a throwaway PostgreSQL cluster on 127.0.0.1 as the `postgres` system user
(initdb refuses root), for one test session.
"""

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

import dlt
from conftest import make_pipeline, sync_from
from deck.runner import SyncResult
from deck_simulator import DeckSimulator

DATASET = "deck"
DESTINATIONS = ("duckdb", "postgres", "delta")

# Each destination's own name for the types the connector promises, and a common spelling.
NATIVE_TYPES = {
    "duckdb": {"bigint": "BIGINT", "timestamptz": "TIMESTAMP WITH TIME ZONE"},
    "postgres": {"bigint": "bigint", "timestamptz": "timestamp with time zone"},
    "delta": {"bigint": "long", "timestamptz": "timestamp"},  # Delta's `timestamp` is UTC-adjusted
}
_CANONICAL = {
    "bigint": "bigint",
    "long": "bigint",
    "int64": "bigint",
    "timestamp with time zone": "timestamptz",
    "timestamptz": "timestamptz",
    "timestamp": "timestamptz",  # Delta; its zone-less type is `timestamp_ntz`
    "timestamp_ntz": "timestamp",
    "timestamp without time zone": "timestamp",
    "varchar": "text",
    "character varying": "text",
    "text": "text",
    "string": "text",
    "double": "double",
    "double precision": "double",
    "boolean": "bool",
    "json": "json",
    "jsonb": "json",
}


def canonical_type(native: str) -> str:
    return _CANONICAL.get(native.lower(), native.lower())


# ------------------------------------------------------------------------------------------------
# PostgreSQL
# ------------------------------------------------------------------------------------------------


class PostgresUnavailable(RuntimeError):
    """The machine cannot run the test server; the message says what to install."""


SETUP_HINT = "Run `bash .ci/setup-postgres.sh` (installs Debian's postgresql package) first."


def find_postgres_bin() -> Path:
    """The folder holding initdb, pg_ctl and postgres (PATH first, then Debian's layout)."""
    candidates: List[Path] = []
    if os.environ.get("DECK_PG_BIN"):
        candidates.append(Path(os.environ["DECK_PG_BIN"]))
    found = shutil.which("initdb")
    if found:
        candidates.append(Path(os.path.realpath(found)).parent)
    candidates += [
        Path(p)
        for p in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version_key, reverse=True)
    ]
    for folder in candidates:
        if all((folder / tool).exists() for tool in ("initdb", "pg_ctl", "postgres")):
            return folder
    raise PostgresUnavailable(
        "PostgreSQL server binaries (initdb, pg_ctl, postgres) were not found on PATH, in"
        f" $DECK_PG_BIN or under /usr/lib/postgresql/*/bin. {SETUP_HINT}"
    )


def _version_key(path: str) -> Tuple[int, ...]:
    version = Path(path).parent.name
    return tuple(int(p) for p in version.split(".") if p.isdigit())


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class PostgresServer:
    """A PostgreSQL cluster in a temporary folder, listening on 127.0.0.1 only."""

    bin_dir: Path
    root: Path
    port: int
    user: str = "postgres"
    password: str = field(default_factory=lambda: uuid.uuid4().hex)
    run_as: Optional[str] = None  # the system user running the server when we are root
    _databases: int = 0

    @classmethod
    def start(cls) -> "PostgresServer":
        bin_dir = find_postgres_bin()
        run_as = None
        if os.geteuid() == 0:
            try:
                pwd.getpwnam("postgres")
            except KeyError:
                raise PostgresUnavailable(
                    "The tests run as root, which initdb refuses, and there is no `postgres`"
                    f" system user to run the server as. {SETUP_HINT}"
                ) from None
            if not shutil.which("runuser"):
                raise PostgresUnavailable("`runuser` (util-linux) is needed to start PostgreSQL.")
            run_as = "postgres"
        # Not under pytest's tmp_path (or a $TMPDIR) that may be private to root: the server runs
        # as postgres, which must reach its folder.
        base = os.environ.get("DECK_PG_TMP") or ("/tmp" if run_as else None)
        root = Path(tempfile.mkdtemp(prefix="deck-pg-", dir=base))
        server = cls(bin_dir=bin_dir, root=root, port=_free_port(), run_as=run_as)
        try:
            server._init_and_start()
        except BaseException:
            server.stop()
            raise
        return server

    def _cmd(self, *args: str) -> List[str]:
        command = [str(a) for a in args]
        return ["runuser", "-u", self.run_as, "--", *command] if self.run_as else command

    def _run(self, *args: str, timeout: float = 60) -> None:
        proc = subprocess.run(
            self._cmd(*args), capture_output=True, text=True, timeout=timeout, check=False
        )
        if proc.returncode != 0:
            log = self.root / "server.log"
            tail = log.read_text()[-2000:] if log.exists() else ""
            raise PostgresUnavailable(
                f"`{' '.join(args[:2])}` failed ({proc.returncode}):\n{proc.stdout}\n"
                f"{proc.stderr}\n{tail}"
            )

    def _init_and_start(self) -> None:
        if self.run_as:
            shutil.chown(self.root, user=self.run_as, group=None)
        pwfile = self.root / "pwfile"
        pwfile.write_text(self.password + "\n")
        if self.run_as:
            shutil.chown(pwfile, user=self.run_as, group=None)
        data = self.root / "data"
        self._run(
            self.bin_dir / "initdb",
            "-D", data, "-U", self.user, "-E", "UTF8", "--locale=C", "--no-sync",
            "--auth-local=trust", "--auth-host=scram-sha-256", f"--pwfile={pwfile}",
        )  # fmt: skip
        options = (
            f"-c listen_addresses=127.0.0.1 -p {self.port} -c unix_socket_directories={self.root}"
            " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
            " -c timezone=Europe/Berlin"  # not UTC, so a lost time zone would show
        )
        for attempt in range(3):
            try:
                self._run(
                    self.bin_dir / "pg_ctl", "start", "-D", data, "-w", "-t", "60",
                    "-l", self.root / "server.log", "-o", options,
                )  # fmt: skip
                return
            except PostgresUnavailable:
                if attempt == 2:
                    raise
                self.port = _free_port()  # the port was taken meanwhile

    @property
    def url(self) -> str:
        return self.database_url("postgres")

    def database_url(self, database: str) -> str:
        return f"postgresql://{self.user}:{self.password}@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        """A fresh database, so that every test starts from an empty warehouse."""
        import psycopg2

        self._databases += 1
        name = f"deck_test_{self._databases}_{uuid.uuid4().hex[:6]}"
        con = psycopg2.connect(self.url)
        try:
            con.autocommit = True
            with con.cursor() as cur:
                cur.execute(f'CREATE DATABASE "{name}"')
        finally:
            con.close()
        return name

    def stop(self) -> None:
        data = self.root / "data"
        if (data / "postmaster.pid").exists():
            with contextlib.suppress(Exception):
                self._run(self.bin_dir / "pg_ctl", "stop", "-D", data, "-m", "immediate", "-w")
        shutil.rmtree(self.root, ignore_errors=True)


def require_psycopg2() -> None:
    try:
        import psycopg2  # noqa: F401
    except ImportError:
        raise PostgresUnavailable(
            "psycopg2 is missing: dlt's postgres destination needs it. Reinstall the project"
            " (`make setup`, or `pip install -e '.[dev]'`: it depends on dlt[postgres]) or"
            " `pip install psycopg2-binary`."
        ) from None


# ------------------------------------------------------------------------------------------------
# warehouses
# ------------------------------------------------------------------------------------------------


@dataclass
class DestinationWarehouse:
    """A pipeline into one destination, plus destination-agnostic ways to read what landed."""

    kind: str
    destination: Any
    pipelines_dir: Path
    simulator: DeckSimulator
    pipeline_name: str = "deck_task_runs_test"

    def pipeline(self) -> dlt.Pipeline:
        return make_pipeline(self.pipeline_name, self.pipelines_dir, self.destination)

    def sync(self, **options: Any) -> SyncResult:
        return sync_from(self.simulator, self.pipeline(), **options)

    # ---- reading -------------------------------------------------------------------------------

    @property
    def is_delta(self) -> bool:
        return self.kind == "delta"

    def _sql(self, sql: str) -> List[Dict[str, Any]]:
        with self.pipeline().sql_client() as client:
            with client.execute_query(sql) as cursor:
                names = [d[0] for d in cursor.description]
                return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    @contextlib.contextmanager
    def _delta_client(self) -> Iterator[Any]:
        pipeline = self.pipeline()
        if not pipeline.default_schema_name:
            yield None
            return
        with pipeline.destination_client() as client:
            yield client

    def _delta_table(self, client: Any, table: str) -> Any:
        from dlt.common.destination.exceptions import DestinationUndefinedEntity

        if client is None or table not in client.schema.tables:
            return None
        try:
            return client.load_open_table("delta", table)
        except DestinationUndefinedEntity:
            return None

    def tables(self) -> List[str]:
        if self.is_delta:
            with self._delta_client() as client:
                if client is None:
                    return []
                names = [t["name"] for t in client.schema.data_tables()]
                return sorted(n for n in names if self._delta_table(client, n) is not None)
        rows = self._sql(
            "SELECT table_name FROM information_schema.tables"
            f" WHERE table_schema = '{DATASET}' AND table_type = 'BASE TABLE'"
        )  # not the SQL models' views
        return sorted(r["table_name"] for r in rows if not r["table_name"].startswith("_dlt"))

    def columns(self, table: str) -> Dict[str, str]:
        """Column name -> the destination's own type name."""
        if self.is_delta:
            with self._delta_client() as client:
                delta = self._delta_table(client, table)
                assert delta is not None, f"no Delta table {table}"
                return {f.name: _delta_type_name(f.type) for f in delta.schema().fields}
        rows = self._sql(
            "SELECT column_name, data_type FROM information_schema.columns"
            f" WHERE table_schema = '{DATASET}' AND table_name = '{table}'"
        )
        return {r["column_name"]: r["data_type"] for r in rows}

    def rows(self, table: str) -> List[Dict[str, Any]]:
        if self.is_delta:
            with self._delta_client() as client:
                delta = self._delta_table(client, table)
                return [] if delta is None else delta.to_pyarrow_table().to_pylist()
        if table not in self.tables():
            return []
        with self.pipeline().sql_client() as client:
            qualified = client.make_qualified_table_name(table)
        return self._sql(f"SELECT * FROM {qualified}")

    def runs(self) -> Dict[str, Dict[str, Any]]:
        by_id: Dict[str, Dict[str, Any]] = {}
        for row in self.rows("task_runs"):
            assert row["id"] not in by_id, f"duplicate row for {row['id']}"
            by_id[row["id"]] = row
        return by_id

    def child_rows(self, table: str) -> Dict[str, List[Dict[str, Any]]]:
        """Rows of a table nested directly in task_runs, by run id, in list order."""
        run_ids = {row["_dlt_id"]: run_id for run_id, row in self.runs().items()}
        out: Dict[str, List[Dict[str, Any]]] = defaultdict(list)
        orphans = []
        for row in sorted(self.rows(table), key=lambda r: r["_dlt_list_idx"]):
            parent = run_ids.get(row["_dlt_parent_id"])
            if parent is None:
                orphans.append(row)
                continue
            out[parent].append(row)
        assert not orphans, f"{len(orphans)} rows of {table} belong to no run, e.g. {orphans[:1]}"
        return dict(out)

    def errors(self) -> Dict[str, List[tuple]]:
        return {
            run_id: [(r["type"], r["code"], r["message"], r.get("field")) for r in rows]
            for run_id, rows in self.child_rows("task_runs__errors").items()
        }

    def count(self) -> Tuple[int, int]:
        """(rows, distinct ids) of task_runs."""
        ids = [row["id"] for row in self.rows("task_runs")]
        return len(ids), len(set(ids))


def _delta_type_name(delta_type: Any) -> str:
    name = getattr(delta_type, "type", None)
    return str(name if isinstance(name, str) else delta_type)


def make_warehouse(
    kind: str,
    tmp_path: Path,
    simulator: DeckSimulator,
    postgres: Optional[PostgresServer] = None,
) -> DestinationWarehouse:
    if kind == "duckdb":
        destination: Any = dlt.destinations.duckdb(str(tmp_path / "warehouse.duckdb"))
    elif kind == "postgres":
        assert postgres is not None
        destination = dlt.destinations.postgres(
            postgres.database_url(postgres.create_database())
        )
    elif kind == "delta":
        destination = dlt.destinations.filesystem((tmp_path / "lake").as_uri())
    else:
        raise ValueError(kind)
    return DestinationWarehouse(kind, destination, tmp_path / "dlt", simulator)

