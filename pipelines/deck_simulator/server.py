"""The HTTP side: a threaded loopback server that writes the answers (or misbehaves).

The answer itself comes from the backend (the DeckSimulator facade); this module only parses
requests, sleeps the configured latency, and writes normally, truncated, trickled, hung or not
at all. The ``Date`` header tells the simulated clock, as Deck's would tell its own (skewed on the
answers a test chose, or absent with ``omit_date``).
"""

from __future__ import annotations

import email.utils
import logging
import math
import socket
import threading
import time
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

from .api import Response
from .faults import HANG_STEP

logger = logging.getLogger("deck.simulator")
"""The name it had inside the connector package: ``--demo --debug`` shows these lines."""


class Backend(Protocol):
    """What the server asks of the simulator."""

    latency: float
    date_header: str | None
    omit_date: bool
    connections_opened: int

    @property
    def now(self) -> datetime: ...

    def answer(
        self,
        method: str,
        path: str,
        params: dict[str, list[str]],
        auth: str | None,
        raw_path: str,
        received: float,
    ) -> Response | None: ...


class Serving:
    """Start and stop the server thread; the stop event wakes every sleeping handler."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self._port = port
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.stopping = threading.Event()

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def port(self) -> int:
        """The bound port (the requested one before start())."""
        return self._server.server_address[1] if self._server is not None else self._port

    def start(self, backend: Backend) -> None:
        if self._server is not None:
            return
        self.stopping.clear()
        server = _Server((self.host, self._port), _Handler)
        server.backend = backend
        server.stopping = self.stopping
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},  # stop() waits at most one poll interval
            name="deck-simulator",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop serving, wake sleeping handlers and close open keep-alive connections."""
        server = self._server
        if server is None:
            return
        self.stopping.set()
        server.shutdown()
        server.close_connections()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def sleep(self, seconds: float) -> bool:
        """Interruptible sleep; False if the simulator is stopping."""
        if seconds <= 0:
            return not self.stopping.is_set()
        return not self.stopping.wait(seconds)


class _Server(ThreadingHTTPServer):
    """Threaded server that can close its keep-alive connections on stop()."""

    daemon_threads = True
    block_on_close = False
    request_queue_size = 128
    backend: Backend
    stopping: threading.Event

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._connections: set[socket.socket] = set()
        self._conn_lock = threading.Lock()
        super().__init__(*args, **kwargs)

    def finish_request(self, request: Any, client_address: Any) -> None:
        with self._conn_lock:
            self._connections.add(request)
            self.backend.connections_opened += 1
        try:
            super().finish_request(request, client_address)
        finally:
            with self._conn_lock:
                self._connections.discard(request)

    def close_connections(self) -> None:
        with self._conn_lock:
            conns = list(self._connections)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class _Handler(BaseHTTPRequestHandler):
    """Parses a request, asks the backend for the answer, and writes it (or misbehaves)."""

    protocol_version = "HTTP/1.1"
    server: _Server
    date_skew = 0.0
    """Seconds the Date header of the answer being written is off the simulated clock."""

    def setup(self) -> None:
        super().setup()
        try:
            self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s - %s", self.address_string(), format % args)

    def date_time_string(self, timestamp: float | None = None) -> str:
        """The `Date` header tells the simulated clock (Deck's clock, as a client sees it)."""
        backend = self.server.backend
        if backend.date_header is not None:
            return backend.date_header
        now = backend.now
        if self.date_skew:
            now += timedelta(seconds=self.date_skew)
        return email.utils.format_datetime(now, usegmt=True)

    def send_response(self, code: int, message: str | None = None) -> None:
        """As the base class, without the Date header when the backend omits it."""
        if not self.server.backend.omit_date:
            super().send_response(code, message)
            return
        self.log_request(code)
        self.send_response_only(code, message)
        self.send_header("Server", self.version_string())

    def do_GET(self) -> None:
        self._serve("GET")

    def do_HEAD(self) -> None:
        self._serve("HEAD")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def do_PATCH(self) -> None:
        self._serve("PATCH")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def _serve(self, method: str) -> None:
        backend = self.server.backend
        stopping = self.server.stopping
        received = time.monotonic()
        split = urlsplit(self.path)
        params = parse_qs(split.query, keep_blank_values=True)
        auth = self.headers.get("Authorization")
        length = self.headers.get("Content-Length")
        if length and length.isdigit() and int(length) > 0:
            self.rfile.read(int(length))  # keep the connection usable
        response = backend.answer(method, split.path, params, auth, self.path, received)
        if response is None or _interrupted(stopping, backend.latency):
            self.close_connection = True
            return
        if response.mode == "drop":
            self.close_connection = True
            return
        if response.mode == "hang":
            deadline = time.monotonic() + response.hang_for if response.hang_for > 0 else math.inf
            while not stopping.is_set():
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                stopping.wait(min(HANG_STEP, left))
            self.close_connection = True
            return
        self.date_skew = response.date_skew
        if response.mode in ("trickle", "trickle_headers"):
            self._trickle(response)
            return
        self._write(response, head_only=(method == "HEAD"))

    def _trickle(self, response: Response) -> None:
        """Send the answer one byte every ``trickle_every`` seconds (the headers at once unless
        the mode is ``trickle_headers``), until done, the client leaves or the simulator stops."""
        stopping = self.server.stopping
        self.close_connection = True
        self.send_response(response.status)
        if response.content_type:
            self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        if response.request_id:
            self.send_header("X-Request-Id", response.request_id)
        self.send_header("Connection", "close")
        head = b"".join(self._headers_buffer) + b"\r\n"
        self._headers_buffer = []
        data = response.body
        try:
            if response.mode == "trickle":
                self.wfile.write(head)
            else:
                data = head + data
            for i in range(len(data)):
                if stopping.wait(response.trickle_every):
                    return
                self.wfile.write(data[i : i + 1])
        except OSError:  # the client gave up (its deadline) and closed the connection
            return

    def _write(self, response: Response, *, head_only: bool) -> None:
        try:
            self.send_response(response.status)
            if response.content_type:
                self.send_header("Content-Type", response.content_type)
            self.send_header("Content-Length", str(len(response.body)))
            if response.request_id:
                self.send_header("X-Request-Id", response.request_id)
            for name, value in response.headers:
                self.send_header(name, value)
            if response.mode == "truncate":
                self.send_header("Connection", "close")
                self.close_connection = True
            body = response.body
            if head_only:
                body = b""
            elif response.mode == "truncate":
                body = body[: len(body) // 2]
            # headers and body in one write: no Nagle/delayed-ACK stall between them
            self._headers_buffer.append(b"\r\n" + body)
            self.flush_headers()
        except OSError:  # the client went away (e.g. it timed out)
            self.close_connection = True


def _interrupted(stopping: threading.Event, seconds: float) -> bool:
    """Sleep the latency before an answer; True if the simulator stopped meanwhile."""
    if seconds <= 0:
        return stopping.is_set()
    return stopping.wait(seconds)
