"""ScriptedAPI: a real HTTP server with scripted answers, for breaches the simulator never makes."""

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse


class ScriptedAPI:
    """A real HTTP server answering `GET /v2/task-runs` with scripted pages, for contract breaches
    the simulator never commits (a missing or repeating cursor, records without ids) and for
    error statuses it has no switch for. `answer` returns a body (HTTP 200) or (status, body)."""

    def __init__(self, answer: Callable[[dict[str, list[str]]], Any]) -> None:
        outer = self
        self.requests: list[dict[str, list[str]]] = []

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                url = urlparse(self.path)
                params = parse_qs(url.query)
                outer.requests.append(params)
                status = 200
                if url.path.endswith("/test"):
                    body: Any = {"status": "ready", "environment": "live"}
                else:
                    body = answer(params)
                    if isinstance(body, tuple):
                        status, body = body
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}/v2"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
