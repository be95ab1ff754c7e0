"""What the suite builds once per session is built once, whatever the number of xdist workers.

`support.shared` is how: a lock file and a folder in the temporary root every worker shares. It
replaced `xdist_group` marks, which pytest-xdist 3.8 silently ignores under pytest 9.2 (the group
suffix it adds to node ids is lost), so every "shared" session fixture was built on every
worker. These tests fail if sharing stops working the same silent way.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from support.shared import builds

SUPPORT = Path(__file__).resolve().parent

# Two tests asking for one shared folder; `--dist each` runs both on every worker, so with two
# workers four tests ask for it while it is built once.
TWO_WORKERS = '''
import os
from pathlib import Path

import pytest
from support.shared import shared


@pytest.fixture(scope="session")
def built(tmp_path_factory):
    def build(folder: Path) -> str:
        with open(os.environ["BUILDS_SEEN"], "a") as seen:
            seen.write(os.environ.get("PYTEST_XDIST_WORKER", "master") + "\\n")
        (folder / "made").write_text("once")
        return "built"

    return shared(tmp_path_factory, "one", build)


@pytest.mark.parametrize("n", [1, 2])
def test_reads_the_shared_folder(built, n):
    folder, value = built
    assert value == "built" and (folder / "made").read_text() == "once"
'''


def test_a_shared_folder_is_built_once_for_all_xdist_workers(tmp_path):
    (tmp_path / "test_two_workers.py").write_text(TWO_WORKERS)
    seen = tmp_path / "builds-seen"
    env = {**os.environ, "BUILDS_SEEN": str(seen), "PYTHONPATH": str(SUPPORT)}

    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-n", "2", "--dist", "each",
         "-q", "--rootdir", str(tmp_path), "--basetemp", str(tmp_path / "basetemp"),
         "test_two_workers.py"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )

    assert done.returncode == 0, done.stdout + done.stderr
    assert "4 passed" in done.stdout, done.stdout
    assert len(seen.read_text().splitlines()) == 1, seen.read_text()


def test_no_shared_folder_of_this_session_was_built_twice(
    tmp_path_factory: pytest.TempPathFactory,
):
    # whatever this session built so far (the log of support.shared), each once
    names = builds(tmp_path_factory)
    assert len(names) == len(set(names)), sorted(names)
