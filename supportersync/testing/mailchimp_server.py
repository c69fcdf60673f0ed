"""Serve an in-process `httpx` handler over real loopback HTTP.

Each connection gets its own thread, so the simulator sees genuinely concurrent
requests (that is what the simultaneous-connection limit needs to be tested).
"""

from __future__ import annotations

import threading
import traceback
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType

import httpx

Handler = Callable[[httpx.Request], httpx.Response]

# Hop-by-hop and length headers are the server's business, not the handler's.
_SKIPPED_HEADERS = {"content-length", "transfer-encoding", "connection", "keep-alive"}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # The default backlog of 5 makes the 11th simultaneous connect wait for a SYN retry.
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], app: Handler) -> None:
        super().__init__(address, _RequestHandler)
        self.app = app


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as httpx expects
    server: _Server

    def _relay(self) -> None:
        body = self._read_body()
        host = self.headers.get("Host") or "%s:%s" % self.server.server_address[:2]
        headers = [(k, v) for k, v in self.headers.items() if k.lower() not in _SKIPPED_HEADERS]
        request = httpx.Request(self.command, f"http://{host}{self.path}", headers=headers, content=body)
        try:
            response = self.server.app(request)
        except Exception:  # a simulator bug should be visible, not a dropped connection
            response = httpx.Response(500, text=traceback.format_exc())
        content = response.content
        self.send_response(response.status_code)
        for name, value in response.headers.multi_items():
            if name.lower() not in _SKIPPED_HEADERS:
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(content)))
        self.end_headers()
        self.wfile.write(content)

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _relay

    def log_message(self, format: str, *args: object) -> None:
        pass  # the simulator keeps its own request log


class RunningServer:
    """A loopback server in a daemon thread; stop it, or use it as a context manager."""

    def __init__(self, app: Handler, host: str = "127.0.0.1", port: int = 0) -> None:
        self._server = _Server((host, port), app)
        self.host, self.port = self._server.server_address[:2]
        self.url = f"http://{self.host}:{self.port}"
        self.api_url = self.url + "/3.0"
        self._thread = threading.Thread(target=self._server.serve_forever, name="mailchimp-sim", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> RunningServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
