"""dlt's dashboard on the demo pipeline, looked at in a real browser: `make dashboard-check`.

What a person would do, done by headless Chromium over the DevTools protocol:

1. write the demo warehouse in a scratch folder (its own DLT_DATA_DIR, so no earlier demo's state
   is reused) with `python pipelines/task_runs.py --demo`;
2. start `dlt pipeline deck_task_runs_demo show` there, as the README says, and wait for the URL
   that marimo prints;
3. open it, click "Load row counts", then run two queries in the dashboard's SQL box: the latest
   runs from `task_runs`, and `open_task_runs` (a SQL view) by status;
4. check what the page shows against the DuckDB file itself: the pipeline's name, every loaded
   table with its row count, the latest run's id, the view's counts; and save screenshots.

Exit status 0 when every check passed, 1 with the reason otherwise. The screenshots (and the page
text, for grepping) are written to --out; look at them. Needs `chromium` (Debian:
`apt-get install chromium`) and the dashboard's packages: `dlt[hub]`, `marimo`, `ibis-framework`
(`make dashboard-check` installs them into the venv without changing any version already there).
Not part of `make test`: CI does not install a browser or dltHub's packages.
"""

import argparse
import base64
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb

logger = logging.getLogger("deck.dashboard_check")  # the project's "deck" logger

ROOT = Path(__file__).resolve().parents[1]
PIPELINE = "deck_task_runs_demo"
DATASET = "deck"
WIDTH, HEIGHT = 1400, 4000
# The dashboard is a marimo app: every cell runs on the server after the page loads, so the
# checks poll the page until what they look for is there (or this many seconds pass).
WAIT_S = 120.0

# The page's text, through the shadow roots marimo's widgets render into (innerText stops there).
PAGE_TEXT_JS = """
(() => { const out = [];
  const walk = (n) => {
    if (n.nodeType === Node.TEXT_NODE) { out.push(n.textContent); return; }
    if (n.shadowRoot) walk(n.shadowRoot);
    for (const c of n.childNodes) walk(c);
  };
  walk(document.body);
  return out.join(' ').replace(/\\s+/g, ' ');
})()
"""
# Every element, shadow roots included, as a JS array `all` (put where the functions below say
# __ALL__; Browser.apply calls them).
ALL_ELEMENTS_JS = """
const all = [];
const walk = (n) => {
  if (n.nodeType === Node.ELEMENT_NODE) all.push(n);
  if (n.shadowRoot) walk(n.shadowRoot);
  for (const c of n.children || []) walk(c);
};
walk(document.body);
"""
CLICK_BUTTON_JS = """(label) => {__ALL__
  const b = all.find(e => e.tagName === 'BUTTON' && e.textContent.trim() === label);
  if (!b) return false;
  b.scrollIntoView({block: 'center'}); b.click(); return true;
}"""
FOCUS_EDITOR_JS = """() => {__ALL__
  const editor = all.find(e => e.classList && e.classList.contains('cm-content'));
  if (!editor) return false;
  editor.scrollIntoView({block: 'center'}); editor.focus(); return true;
}"""
BLUR_EDITOR_JS = """() => {__ALL__
  const editor = all.find(e => e.classList && e.classList.contains('cm-content'));
  if (editor) editor.blur();
  return !!editor;
}"""
# The page rectangle from the element whose own text is `first` to the bottom of the element
# whose own text is `last` (both headings or buttons), for a screenshot of one section.
SECTION_RECT_JS = """(first, last) => {__ALL__
  const own = (e) => Array.from(e.childNodes).filter(n => n.nodeType === Node.TEXT_NODE)
    .map(n => n.textContent).join('').trim();
  const a = all.find(e => own(e) === first);
  if (!a) return null;
  const ra = a.getBoundingClientRect();
  // the first `last` below `first` (the page's side menu repeats the section names)
  const b = all.find(e => own(e) === last && e.getBoundingClientRect().top > ra.bottom);
  if (!b) return null;
  const rb = b.getBoundingClientRect();
  return {x: 0, y: ra.top + window.scrollY - 10, width: window.innerWidth,
          height: rb.bottom - ra.top + 20};
}"""


class CheckFailed(Exception):
    """What the dashboard did not show."""


def warehouse_truth(path: Path) -> dict[str, Any]:
    """What the page must show, read from the DuckDB file directly (not through dlt)."""
    with duckdb.connect(str(path), read_only=True) as con:
        tables = [
            r[0]
            for r in con.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = ?"
                " AND table_type = 'BASE TABLE' AND table_name NOT LIKE '\\_dlt\\_%' ESCAPE '\\'"
                " ORDER BY 1",
                [DATASET],
            ).fetchall()
        ]
        counts = {
            t: con.execute(f'SELECT count(*) FROM {DATASET}."{t}"').fetchone()[0] for t in tables
        }
        views = [
            r[0]
            for r in con.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = ?"
                " AND table_type = 'VIEW' ORDER BY 1",
                [DATASET],
            ).fetchall()
        ]
        latest = con.execute(
            f"SELECT id FROM {DATASET}.task_runs ORDER BY created_at DESC, id LIMIT 1"
        ).fetchone()[0]
        open_by_status = dict(
            con.execute(
                f"SELECT status, count(*) FROM {DATASET}.open_task_runs GROUP BY 1"
            ).fetchall()
        )
    return {"counts": counts, "views": views, "latest": latest, "open": open_by_status}


def write_demo(workdir: Path, env: dict[str, str]) -> Path:
    logger.info("Writing the demo warehouse in %s", workdir)
    done = subprocess.run(
        [sys.executable, str(ROOT / "pipelines" / "task_runs.py"), "--demo"],
        cwd=workdir, env=env, capture_output=True, text=True, timeout=600,
    )
    if done.returncode != 0:
        raise CheckFailed(f"the demo sync failed:\n{done.stderr[-2000:]}")
    return workdir / f"{PIPELINE}.duckdb"


@contextmanager
def dashboard(workdir: Path, env: dict[str, str], log: Path) -> Iterator[str]:
    """`dlt pipeline <demo> show` running in workdir; yields the URL it serves."""
    dlt_cli = shutil.which("dlt", path=env["PATH"])
    if dlt_cli is None:
        raise CheckFailed("no `dlt` command on PATH (the venv's bin must be on PATH)")
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [dlt_cli, "pipeline", PIPELINE, "show"], cwd=workdir, env=env, stdout=out,
            stderr=subprocess.STDOUT, start_new_session=True,
        )
    try:
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            text = log.read_text()
            found = re.search(r"URL: (http://\S+)", text)
            if found:
                yield found.group(1)
                return
            if proc.poll() is not None:
                raise CheckFailed(
                    f"`dlt pipeline {PIPELINE} show` exited ({proc.returncode}) without serving"
                    f" the dashboard. It printed:\n{text.strip()}\n(without `dlt[hub]` it only"
                    " warns; without marimo/ibis-framework it names them: `make dashboard-check`"
                    " installs them)"
                )
            time.sleep(0.5)
        raise CheckFailed(f"the dashboard printed no URL in {WAIT_S:.0f} s:\n{log.read_text()}")
    finally:
        # Its own process group (start_new_session): dlt, the marimo server it started, nothing
        # else.
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


class Browser:
    """Headless Chromium driven over the DevTools protocol (one page)."""

    def __init__(self, executable: str, profile: Path) -> None:
        from websockets.sync.client import connect  # installed with marimo

        self.proc = subprocess.Popen(
            [executable, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
             f"--window-size={WIDTH},{HEIGHT}", f"--user-data-dir={profile}",
             "--remote-debugging-port=0", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not (port_file.exists() and port_file.read_text().strip()):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.close()
                raise CheckFailed(f"{executable} did not start (no DevToolsActivePort)")
            time.sleep(0.2)
        port = int(port_file.read_text().split()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json") as answer:
            page = next(t for t in json.load(answer) if t["type"] == "page")
        self.ws = connect(page["webSocketDebuggerUrl"], max_size=None)
        self.next_id = 0
        self.call("Page.enable")
        self.call("Emulation.setDeviceMetricsOverride", width=WIDTH, height=HEIGHT,
                  deviceScaleFactor=1, mobile=False)

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv(timeout=WAIT_S))
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise CheckFailed(f"{method}: {message['error']}")
                return message["result"]

    def js(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result["result"].get("value")

    def apply(self, function: str, *args: Any) -> Any:
        """Call one of the JS functions above (with every element in `all`) on JSON args."""
        body = function.replace("__ALL__", ALL_ELEMENTS_JS)
        return self.js(f"({body})({', '.join(json.dumps(a) for a in args)})")

    def text(self) -> str:
        return self.js(PAGE_TEXT_JS) or ""

    def wait_for(self, what: str, test: Any) -> str:
        """Poll the page's text until test(text) holds; CheckFailed with `what` otherwise."""
        deadline = time.monotonic() + WAIT_S
        while True:
            text = self.text()
            if test(text):
                return text
            if time.monotonic() > deadline:
                raise CheckFailed(f"the dashboard never showed {what}; it shows:\n{text[:3000]}")
            time.sleep(1.0)

    def click(self, label: str) -> None:
        if not self.apply(CLICK_BUTTON_JS, label):
            raise CheckFailed(f"no button {label!r} on the page")

    def type_query(self, sql: str) -> None:
        """Replace the SQL box's text, as typing would (select all, type, leave the box)."""
        if not self.apply(FOCUS_EDITOR_JS):
            raise CheckFailed("no SQL box on the page")
        for kind in ("rawKeyDown", "keyUp"):
            self.call("Input.dispatchKeyEvent", type=kind, key="a", code="KeyA",
                      windowsVirtualKeyCode=65, modifiers=2)  # Ctrl+A
        self.call("Input.insertText", text=sql)
        self.apply(BLUR_EDITOR_JS)  # the box sends its value when it loses focus

    def screenshot(self, path: Path, section: tuple[str, str] | None = None) -> None:
        params: dict[str, Any] = {"format": "png"}
        if section is not None:
            rect = self.apply(SECTION_RECT_JS, *section)
            if rect and rect["height"] > 0:
                params["clip"] = {**rect, "scale": 1}
            else:
                logger.info("Section %s..%s not found: the whole page instead", *section)
        data = self.call("Page.captureScreenshot", **params)["data"]
        path.write_bytes(base64.b64decode(data))
        logger.info("Screenshot %s", path)

    def close(self) -> None:
        if getattr(self, "ws", None) is not None:
            self.ws.close()
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=20)


def shown_count(text: str, table: str) -> int | None:
    """The row count the table list shows beside `table` (row: name, row_count, resource...)."""
    found = re.search(rf"(?:^|\s){re.escape(table)} ([\d,]+) ", text)
    return int(found.group(1).replace(",", "")) if found else None


def check(out: Path, browser_executable: str) -> list[str]:
    """Run every step; return what was seen (one line each). CheckFailed on the first miss."""
    seen = []
    workdir = out / "work"
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SOURCES__", "DESTINATION__"))}
    env["DLT_DATA_DIR"] = str(workdir / "dlt-data")
    env["DLT_LOCAL_DIR"] = str(workdir)  # the demo file too, not the checkout's own demo
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    truth = warehouse_truth(write_demo(workdir, env))

    with dashboard(workdir, env, out / "dashboard.log") as url:
        seen.append(f"dashboard served at {url}")
        browser = Browser(browser_executable, Path(tempfile.mkdtemp(prefix="chromium-")))
        try:
            browser.call("Page.navigate", url=f"{url}/?sections=overview")
            browser.wait_for(
                "the pipeline and its tables",
                lambda t: f"Pipeline {PIPELINE}" in t and "Load row counts" in t
                and all(f" {name} " in t for name in truth["counts"]),
            )
            seen.append(f"pipeline {PIPELINE} and its tables {sorted(truth['counts'])} listed")
            browser.screenshot(out / "1-pipeline.png")

            browser.click("Load row counts")
            text = browser.wait_for(
                "the row counts of the loaded tables",
                lambda t: all(shown_count(t, name) is not None for name in truth["counts"]),
            )
            shown = {name: shown_count(text, name) for name in truth["counts"]}
            if shown != truth["counts"]:
                raise CheckFailed(f"row counts shown {shown}, the warehouse has {truth['counts']}")
            seen.append(f"row counts match the warehouse: {shown}")
            listed_views = [v for v in truth["views"] if f" {v} " in text.split("Query Result")[0]]
            seen.append(
                f"SQL views in the table list: {listed_views or 'none'} (the dataset has"
                f" {len(truth['views'])}: {', '.join(truth['views'])})"
            )
            browser.screenshot(out / "2-tables-with-row-counts.png",
                               ("Dataset: Browse Data and State", "Run Query"))

            browser.type_query(
                "SELECT id, status, result, agent_id, created_at FROM task_runs"
                " ORDER BY created_at DESC, id LIMIT 10"
            )
            browser.click("Run Query")
            browser.wait_for(f"the latest run {truth['latest']} in the query result",
                             lambda t: truth["latest"] in t.split("Query Result", 1)[-1])
            seen.append(f"data shown: the latest run {truth['latest']} in the query result")
            browser.screenshot(out / "3-latest-runs.png", ("Query Result", "Pipeline Info"))

            browser.type_query(
                "SELECT status, count(*) AS runs FROM open_task_runs GROUP BY 1 ORDER BY 2 DESC"
            )
            browser.click("Run Query")
            expected = [f"{status} {n:,}" for status, n in truth["open"].items()]
            expected_plain = [f"{status} {n}" for status, n in truth["open"].items()]
            browser.wait_for(
                f"open_task_runs by status {truth['open']}",
                lambda t: all(a in t or b in t for a, b in zip(expected, expected_plain,
                                                               strict=True)),
            )
            seen.append(f"the view open_task_runs answers in the SQL box: {truth['open']}")
            browser.screenshot(out / "4-view-in-sql-box.png", ("Query Result", "Pipeline Info"))
            browser.screenshot(out / "5-whole-page.png")
            (out / "page.txt").write_text(browser.text())
        finally:
            browser.close()
    return seen


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "dashboard",
                        help="where the screenshots go (default: build/dashboard)")
    parser.add_argument("--browser", default=None,
                        help="Chromium's executable (default: chromium, chromium-browser)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    browser = args.browser or shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        logger.error("dashboard check: no Chromium found; Debian: apt-get install chromium")
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    try:
        seen = check(args.out.resolve(), browser)
    except CheckFailed as failure:
        logger.error("dashboard check FAILED: %s", failure)
        return 1
    for line in seen:
        logger.info("ok  %s", line)
    logger.info("dashboard check passed; screenshots in %s/ (look at them)", args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
