"""A throwaway PostgreSQL server for the tests: one per test session (per xdist worker).

`PostgresServer` runs a cluster in a temporary folder on 127.0.0.1 (a free port, retried if taken
meanwhile) as the `postgres` system user when the tests run as root (initdb refuses root). Every
test gets its own database (`create_database`), optionally with its own session time zone, so
that one server serves every test file.
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
from dataclasses import dataclass, field
from pathlib import Path


class PostgresUnavailable(RuntimeError):
    """The machine cannot run the test server; the message says what to install."""


SETUP_HINT = "Run `bash .ci/setup-postgres.sh` (installs Debian's postgresql package) first."


def find_postgres_bin() -> Path:
    """The folder holding initdb, pg_ctl and postgres (PATH first, then Debian's layout)."""
    candidates: list[Path] = []
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


def _version_key(path: str) -> tuple[int, ...]:
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
    run_as: str | None = None  # the system user running the server when we are root
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

    def _cmd(self, *args: str) -> list[str]:
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

    def create_database(self, timezone: str | None = None, icu_locale: str | None = None) -> str:
        """A fresh database, so that every test starts from an empty warehouse. `timezone`
        sets the session time zone of every connection to it (the server's is Europe/Berlin);
        `icu_locale` (e.g. "en-US") makes its default collation ICU's for that locale instead of
        the cluster's byte-order "C"."""
        import psycopg2

        self._databases += 1
        name = f"deck_test_{self._databases}_{uuid.uuid4().hex[:6]}"
        con = psycopg2.connect(self.url)
        try:
            con.autocommit = True
            with con.cursor() as cur:
                if icu_locale:
                    cur.execute(
                        f'CREATE DATABASE "{name}" TEMPLATE template0 LOCALE_PROVIDER icu'
                        " ICU_LOCALE %s LOCALE 'C'",
                        (icu_locale,),
                    )
                else:
                    cur.execute(f'CREATE DATABASE "{name}"')
                if timezone:
                    cur.execute(f'ALTER DATABASE "{name}" SET timezone = %s', (timezone,))
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


