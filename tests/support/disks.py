"""Faulty disks for real: a read-only folder and a small filesystem that fills up.

Permissions cannot make a folder read-only for root (tests may run as root), and a full disk
cannot be faked by a file mode. So the faults are made the way they happen on a machine, with
mounts: a read-only bind mount of a folder (`EROFS` for every user, root included) and a small
`tmpfs` (`ENOSPC` once it is full). The mounts live in a private mount namespace held open by a
helper process (`unshare --mount`, plus a user namespace when not root: no privilege is needed
where the kernel allows unprivileged user namespaces), so nothing on this machine outside the
test sees them and they vanish with the helper, even when the test process is killed: the
helper waits on its stdin, which closes when this process ends.

Commands run inside the namespace with `nsenter`; the test reads what they wrote through
`/proc/<helper pid>/root`, the namespace's view of the filesystem.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path


class MountNamespaceUnavailable(Exception):
    """This machine does not let this user make a mount namespace (the reason is the text)."""


class MountNamespace:
    """A private mount namespace; `run` runs a command in it, `path` reads its files."""

    def __init__(self) -> None:
        unshare, nsenter = shutil.which("unshare"), shutil.which("nsenter")
        if not unshare or not nsenter:
            raise MountNamespaceUnavailable("util-linux's unshare and nsenter are not installed")
        as_user = os.geteuid() != 0  # an unprivileged user maps itself to root in a user ns
        command = [unshare, "--mount", "--propagation", "private"]
        if as_user:
            command += ["--user", "--map-root-user"]
        self._proc = subprocess.Popen(
            [*command, "sh", "-c", "echo ready && read _"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        ready = self._proc.stdout.readline()  # type: ignore[union-attr]
        if ready.strip() != "ready":
            error = self._proc.stderr.read().strip()  # type: ignore[union-attr]
            self._proc.wait()
            raise MountNamespaceUnavailable(f"{' '.join(command)} failed: {error}")
        self._enter = [nsenter, "--target", str(self._proc.pid), "--mount"]
        if as_user:
            self._enter += ["--user", "--preserve-credentials"]

    def run(
        self, command: list[str], *, cwd: Path | None = None, **kwargs: object
    ) -> subprocess.CompletedProcess:
        """`command` inside the namespace, in `cwd` (subprocess.run's keyword arguments).
        Entering a mount namespace moves a process to its root: nsenter goes back to `cwd`."""
        where = [f"--wd={cwd}"] if cwd is not None else []
        return subprocess.run([*self._enter, *where, *command], **kwargs)  # type: ignore[call-overload]

    def _mount(self, *args: str) -> None:
        done = self.run(["mount", *args], capture_output=True, text=True)
        if done.returncode != 0:
            raise MountNamespaceUnavailable(f"mount {' '.join(args)} failed: {done.stderr}")

    def make_read_only(self, folder: Path) -> None:
        """`folder` read-only inside the namespace (a read-only bind mount of itself)."""
        self._mount("--bind", str(folder), str(folder))
        self._mount("-o", "remount,bind,ro", str(folder))

    def small_disk(self, folder: Path, size_kb: int) -> None:
        """A fresh, empty `size_kb` filesystem at `folder` inside the namespace."""
        folder.mkdir(parents=True, exist_ok=True)
        self._mount("-t", "tmpfs", "-o", f"size={size_kb}k,mode=0755", "tmpfs", str(folder))

    def path(self, path: Path) -> Path:
        """`path` as the namespace sees it, readable from this process."""
        return Path(f"/proc/{self._proc.pid}/root") / Path(path).relative_to("/")

    def close(self) -> None:
        if self._proc.poll() is None:
            self._proc.stdin.close()  # type: ignore[union-attr]
            self._proc.wait()


def fill(disk: Path, leave_kb: int = 0) -> Path:
    """Fill the filesystem at `disk` (a path as this process sees it) up to `leave_kb` free;
    returns the filler file, whose removal frees the space again."""
    filler = disk / "filler"
    chunk = b"\0" * 4096
    with open(filler, "wb") as handle:
        try:
            while shutil.disk_usage(disk).free > leave_kb * 1024:
                handle.write(chunk)
                handle.flush()
        except OSError:  # full before the margin: what was written stays
            pass
    return filler
