"""Another process with the DuckDB file open: an analyst's `duckdb -readonly` session, a
notebook kernel keeping its connection. A real process, because DuckDB's file lock is per
process: a connection in the test's own process would share the sync's database instead.
"""

import os
import subprocess
import sys
from pathlib import Path

from support.cli import SAFETY_TIMEOUT_S

# Opens the file (retrying while a sync has it open for writing), says "holding", keeps the
# connection until a line arrives on stdin, then closes it and says "released".
_HOLDER = """
import sys, time
import duckdb
path, read_only = sys.argv[1], sys.argv[2] == "read_only"
while True:
    try:
        con = duckdb.connect(path, read_only=read_only)
        break
    except duckdb.IOException as exc:
        if "lock" not in str(exc):
            raise
        time.sleep(0.01)  # the sync has it open: try again, as a reader would
print("holding", flush=True)
sys.stdin.readline()
con.close()
print("released", flush=True)
"""


class FileHolder:
    """A process holding `path` open (read-only by default) until `release()`."""

    def __init__(self, path: Path, read_only: bool = True) -> None:
        if not path.exists():  # a read-only connection needs the file: create it, empty
            import duckdb

            duckdb.connect(str(path)).close()
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _HOLDER, str(path), "read_only" if read_only else "write"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        line = self.proc.stdout.readline()  # type: ignore[union-attr]
        if line.strip() != "holding":
            self.proc.kill()
            raise AssertionError(f"the holder did not open {path}: {self.proc.stderr.read()}")

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def program(self) -> str:
        """The holder's executable as DuckDB names it in its lock error (the resolved path)."""
        return os.path.basename(os.path.realpath(sys.executable))

    def release(self) -> None:
        """Close the connection and end the process."""
        if self.proc.poll() is None:
            self.proc.stdin.write("\n")  # type: ignore[union-attr]
            self.proc.stdin.flush()  # type: ignore[union-attr]
            assert self.proc.stdout.readline().strip() == "released"  # type: ignore[union-attr]
            self.proc.wait(timeout=SAFETY_TIMEOUT_S)

    def __enter__(self) -> "FileHolder":
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
