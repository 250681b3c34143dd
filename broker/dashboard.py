"""The broker's web dashboard: /, /api/status and /metrics served from the latest published snapshot.

Thread rule: the HTTP threads never touch the broker core or its socket. The broker loop
calls `publish()` with a frozen StatusReply; handlers read that one reference and render it.
"""

from __future__ import annotations

import ipaddress
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from broker.metrics import CONTENT_TYPE as METRICS_TYPE, render_metrics
from broker.page import CSP, PAGE
from protocol.messages import StatusReply
from protocol.status import status_json
from protocol.version import VERSION
from rake_common.endpoints import parse_http_addr


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False   # a name: it might resolve anywhere


def open_dashboard(addr: str | None, insecure: bool, source: str = "--http") -> "Dashboard | None":
    """The dashboard `--http` (or `source`) asks for, bound but not started; None without.

    ValueError: a bad address, or a non-loopback one without `insecure` (a usage error).
    OSError: the address cannot be bound.
    """
    if addr is None:
        return None
    try:
        host, port = parse_http_addr(addr)
    except ValueError as e:
        raise ValueError(f"{source} {addr}: {e}") from None
    if not is_loopback(host) and not insecure:
        raise ValueError(f"{source} {addr} is not a loopback address; the dashboard has no "
                         "authentication, so add --insecure to serve it there anyway")
    try:
        return Dashboard(host, port)
    except OSError as e:
        raise OSError(f"cannot serve --http on {addr}: {e.strerror}") from e


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    dashboard: "Dashboard"

    def handle_error(self, request, client_address) -> None:
        pass   # a browser that went away mid-reply is not worth a traceback in the broker's log


class _Server6(_Server):
    address_family = socket.AF_INET6


class Dashboard:
    """Owns the HTTP server and its thread; `snapshot` is replaced whole, never changed."""

    def __init__(self, host: str, port: int):
        self.snapshot: StatusReply | None = None
        self.loopback = is_loopback(host)
        self.server = (_Server6 if ":" in host else _Server)((host, port), _Handler)
        self.server.dashboard = self
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.5,),
                                       name="rake-http", daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"

    def start(self) -> None:
        self.thread.start()

    def publish(self, snapshot: StatusReply) -> None:
        self.snapshot = snapshot   # one reference assignment: readers see the old or the new

    def close(self) -> None:
        if self.thread.is_alive():
            self.server.shutdown()
        self.server.server_close()


def _host_allowed(header: str | None) -> bool:
    """On loopback, only loopback Host names: a web page elsewhere cannot rebind a DNS name
    to 127.0.0.1 and read the cluster's commands."""
    if not header:
        return False
    host = urlsplit(f"//{header}").hostname or ""
    return is_loopback(host)


class _Handler(BaseHTTPRequestHandler):
    server_version = f"rake-broker/{VERSION}"
    timeout = 10          # a client that stalls mid-request loses its thread after this
    protocol_version = "HTTP/1.0"

    def do_GET(self) -> None:
        self._serve(send_body=True)

    def do_HEAD(self) -> None:
        self._serve(send_body=False)

    def _refuse_method(self) -> None:
        self._reply(405, "text/plain; charset=utf-8", b"only GET and HEAD\n", True, {"Allow": "GET, HEAD"})

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _refuse_method

    def log_message(self, format, *args) -> None:
        pass   # the broker's log is for the cluster, not for page views

    def _serve(self, send_body: bool) -> None:
        dashboard = self.server.dashboard
        if dashboard.loopback and not _host_allowed(self.headers.get("Host")):
            return self._reply(403, "text/plain; charset=utf-8", b"use a loopback address\n", send_body)
        path = urlsplit(self.path).path
        if path == "/":
            return self._reply(200, "text/html; charset=utf-8", PAGE, send_body, {"Content-Security-Policy": CSP})
        if path not in ("/api/status", "/metrics"):
            return self._reply(404, "text/plain; charset=utf-8", b"not found\n", send_body)
        snapshot = dashboard.snapshot
        if snapshot is None:
            return self._reply(503, "text/plain; charset=utf-8", b"starting\n", send_body)
        if path == "/metrics":
            return self._reply(200, METRICS_TYPE, render_metrics(snapshot).encode(), send_body)
        body = json.dumps(status_json(snapshot), ensure_ascii=False).encode()
        self._reply(200, "application/json", body, send_body)

    def _reply(self, code: int, ctype: str, body: bytes, send_body: bool, extra: dict | None = None) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if send_body:
            self.wfile.write(body)
