"""The device's flash service: HTTP in front of :class:`device.flashing.flasher.Flasher`.

stdlib ``http.server.ThreadingHTTPServer``, hardened against starving (issue 36): at most
``MAX_CONNECTIONS`` connections at once (more are closed at once: threads and memory stay bounded),
a deadline for each request's line and headers (a slow or idle client is cut off after
``HEADER_TIMEOUT_S``, however it trickles), a deadline for each upload's body (which is received
in full before the store is locked, so a trickling upload never blocks a flash or a rollback),
and clients that hang up are forgotten without a word to the journal. A process separate from the
control loop: a crash here never stops the music. Every write endpoint needs ``Authorization: Bearer <token>`` (compared
in constant time, checked before a byte of the body is read). Reads are open: the status page is
for anyone at the side of the stage. The real protection of the controller is the bundle
signature; the token only decides who may swap between genuine models.

Endpoints (JSON unless noted):
    GET  /                 status page (device/flashing/web/status.html), /status.js its script
    GET  /api/status       store, control-loop heartbeat, health check, recent events
    GET  /api/models       installed models
    POST /api/auth         checks the token and nothing else (clients call it before a big upload)
    POST /api/upload       body = the .dxm bytes (Content-Length required); ?force=1, ?wait=1
    POST /api/activate     {"name": "<installed model name>"}; ?wait=1
    POST /api/rollback
    POST /api/usb-import   imports the configured USB folder; ?force=1, ?wait=1
    GET  /api/banks        installed voice banks, the active one and whether it applies
    POST /api/banks/upload      body = the .dxb bytes (Content-Length required); ?activate=0 installs only
    POST /api/banks/activate    {"name": "<installed bank name>"}
    POST /api/banks/deactivate  back to the model's anchors
    POST /api/banks/delete      {"name": "<installed bank name>"} (not the active one)
"""

from __future__ import annotations

import hmac
import json
import socket
import sys
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from device.flashing.bundle_check import BundleRejected
from device.flashing.flasher import Flasher, UploadTooLarge
from device.flashing.store import StoreBusy, StoreError
from dxmacro.errors import DxmacroError

WEB = Path(__file__).with_name("web")
STATIC = {"/": ("status.html", "text/html; charset=utf-8"),
          "/status.js": ("status.js", "text/javascript; charset=utf-8")}
MAX_JSON = 4096
MAX_CONNECTIONS = 128  # threads (and their buffers) at most; one technician needs a handful
HEADER_TIMEOUT_S = 10.0  # request line and headers, from the connection's first byte or its last answer
UPLOAD_MIN_S, UPLOAD_MIN_RATE = 30.0, 32 * 1024  # an upload gets max(30 s, its size at 32 KiB/s)
QUIET = (ConnectionError, TimeoutError, socket.timeout)  # a client that went away: nothing to report


class FlashHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, address: tuple[str, int], flasher: Flasher, token: str,
                 usb_dir: Path | None = None, *, max_connections: int = MAX_CONNECTIONS) -> None:
        if len(token) < 16:
            raise DxmacroError("the flash token must be at least 16 characters")
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, Handler)
        self.flasher = flasher
        self.token = token.encode()
        self.usb_dir = usb_dir
        self.slots = threading.BoundedSemaphore(max_connections)
        self.deadlines: dict[Handler, float] = {}  # handlers waiting for a request line and headers
        self.deadlines_lock = threading.Lock()
        self._closed = threading.Event()
        threading.Thread(target=self._watch_deadlines, name="flash-deadlines", daemon=True).start()

    def _watch_deadlines(self) -> None:
        """One thread for every connection's header deadline (a timer each would double the threads)."""
        while not self._closed.wait(0.2):
            now = time.monotonic()
            with self.deadlines_lock:
                late = [h for h, t in self.deadlines.items() if t <= now]
                for h in late:
                    del self.deadlines[h]
            for h in late:
                h.cut_off()

    def server_close(self) -> None:
        self._closed.set()
        super().server_close()

    def process_request(self, request, client_address) -> None:  # type: ignore[override]
        """A thread per connection, up to ``max_connections``; past that the connection is closed
        at once (the client sees a reset and may retry), so a crowd of idle clients cannot grow the
        threads or the memory without bound."""
        if not self.slots.acquire(blocking=False):
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self.slots.release()
            raise

    def process_request_thread(self, request, client_address) -> None:  # type: ignore[override]
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()

    def handle_error(self, request, client_address) -> None:  # type: ignore[override]
        """A client that hung up is no news; anything else is one line in the event log, never a
        traceback in the journal."""
        exc = sys.exc_info()[1]
        if isinstance(exc, QUIET):
            return
        self.flasher.log.add(f"connection from {client_address[0]} failed: {exc!r}", error=True)


class Handler(BaseHTTPRequestHandler):
    server: FlashHTTPServer
    server_version = "dxmacro-flash"
    protocol_version = "HTTP/1.1"
    timeout = 10  # any single read: a stalled upload frees its thread after this long

    def handle_one_request(self) -> None:
        """The request line and headers within HEADER_TIMEOUT_S: the server's watcher shuts the
        socket when they are not in by then, however slowly the client trickles them (or idles on
        keep-alive)."""
        with self.server.deadlines_lock:
            self.server.deadlines[self] = time.monotonic() + HEADER_TIMEOUT_S
        try:
            super().handle_one_request()
        finally:
            self._headers_in()

    def parse_request(self) -> bool:
        ok = super().parse_request()  # the request line and every header are in
        self._headers_in()
        return ok

    def _headers_in(self) -> None:
        with self.server.deadlines_lock:
            self.server.deadlines.pop(self, None)

    def cut_off(self) -> None:
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - stdlib signature
        pass  # the event log records what matters; per-request lines would flood the journal

    # ---- plumbing ------------------------------------------------------------------------------

    def _send(self, code: int, body: bytes, ctype: str, extra: dict[str, str] | None = None) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, code: int, doc: dict, extra: dict[str, str] | None = None) -> None:
        self._send(code, json.dumps(doc).encode(), "application/json", extra)

    def _error(self, code: int, reason: str, extra: dict[str, str] | None = None) -> None:
        self._json(code, {"ok": False, "error": reason}, extra)

    def _query(self) -> dict[str, str]:
        return {k: v[-1] for k, v in parse_qs(urlsplit(self.path).query).items()}

    def _flag(self, name: str) -> bool:
        return self._query().get(name, "0").lower() in ("1", "true", "yes", "on")

    def _authorized(self) -> bool:
        header = self.headers.get("Authorization", "")
        scheme, _, given = header.partition(" ")
        ok = scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), self.server.token)
        if not ok:
            self.server.flasher.log.add(f"{self.command} {urlsplit(self.path).path} from {self.client_address[0]} "
                                        "refused: missing or wrong token", refused=True)
            self.close_connection = True  # the body (if any) stays unread
            self._error(HTTPStatus.UNAUTHORIZED, "missing or wrong token (Authorization: Bearer <token>)",
                        {"WWW-Authenticate": 'Bearer realm="dxmacro"'})
        return ok

    def _length(self) -> int | None:
        raw = self.headers.get("Content-Length")
        if raw is None:
            return None
        try:
            n = int(raw)
        except ValueError:
            return -1
        return n if n >= 0 else -1

    def _json_body(self) -> dict:
        n = self._length()
        if n is None or n == 0:
            return {}
        if n < 0 or n > MAX_JSON:
            raise BundleRejected("request body is not a small JSON object")
        try:
            doc = json.loads(self.rfile.read(n) or b"{}")
        except ValueError:
            raise BundleRejected("request body is not JSON") from None
        if not isinstance(doc, dict):
            raise BundleRejected("request body is not a JSON object")
        return doc

    # ---- routes --------------------------------------------------------------------------------

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        path = urlsplit(self.path).path
        flasher = self.server.flasher
        if path in STATIC:
            name, ctype = STATIC[path]
            self._send(HTTPStatus.OK, (WEB / name).read_bytes(), ctype)
        elif path == "/api/status":
            self._json(HTTPStatus.OK, flasher.status())
        elif path == "/api/models":
            self._json(HTTPStatus.OK, {"models": flasher.store.summary()["models"]})
        elif path == "/api/banks":
            self._json(HTTPStatus.OK, flasher.banks.summary())
        else:
            self._error(HTTPStatus.NOT_FOUND, f"no such page {path}")

    def do_HEAD(self) -> None:  # noqa: N802
        self.do_GET()

    def do_PUT(self) -> None:  # noqa: N802
        self.do_POST()

    def do_POST(self) -> None:  # noqa: N802
        path = urlsplit(self.path).path
        routes = {"/api/auth": lambda: (HTTPStatus.OK, {}), "/api/upload": self._upload, "/api/activate": self._activate,
                  "/api/rollback": self._rollback, "/api/usb-import": self._usb_import,
                  "/api/banks/upload": self._bank_upload, "/api/banks/activate": self._bank_activate,
                  "/api/banks/deactivate": self._bank_deactivate, "/api/banks/delete": self._bank_delete}
        route = routes.get(path)
        if route is None:
            self.close_connection = True
            self._error(HTTPStatus.NOT_FOUND, f"no such endpoint {path}")
            return
        if not self._authorized():
            return
        try:
            code, doc = route()
        except QUIET:
            raise  # the client went away: nothing to answer, nothing to log (server.handle_error)
        except Exception as exc:  # noqa: BLE001 - mapped to a status code below
            self.close_connection = True  # the body may be unread: never parse it as the next request
            self._handle_error(path, exc)
        else:
            self._json(code, {"ok": True} | doc)

    def _handle_error(self, path: str, exc: Exception) -> None:
        if isinstance(exc, UploadTooLarge):
            self._error(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, str(exc))
        elif isinstance(exc, StoreBusy):
            self._error(HTTPStatus.CONFLICT, str(exc))
        elif isinstance(exc, (BundleRejected, StoreError)):
            self._error(HTTPStatus.UNPROCESSABLE_ENTITY, str(exc))
        elif isinstance(exc, DxmacroError):
            self._error(HTTPStatus.BAD_REQUEST, str(exc))
        else:  # one bad request must not end the service
            self.server.flasher.log.add(f"internal error on {path}: {exc!r}", error=True)
            self._error(HTTPStatus.INTERNAL_SERVER_ERROR, f"internal error: {exc}")

    def finish(self) -> None:
        """Lingering close: after an early answer (401, 413, refusal) the client may still be
        sending; closing with unread data makes the kernel send RST, which can destroy our answer
        before the client reads it. So stop writing, then discard input for a bounded while."""
        super().finish()
        if not self.close_connection:
            return
        try:
            self.connection.shutdown(socket.SHUT_WR)
            self.connection.settimeout(2.0)
            deadline = time.monotonic() + 2.0
            while time.monotonic() < deadline and self.connection.recv(65536):
                pass
        except OSError:
            pass

    def _maybe_wait(self, result: dict) -> dict:
        if self._flag("wait") and result.get("health") == "pending":
            result = result | {"health": self.server.flasher.wait_health()}
        return result

    def _upload_head(self, what: str, noun: str, limit: int) -> tuple[str, int]:
        """(source for the log, Content-Length) of an upload, refused before its body is read when
        the file name holds a path, the length is missing or bad, or over ``limit``."""
        name = self._query().get("filename", "")
        flasher = self.server.flasher
        source = f"{what} {name}".strip()
        if name and ("/" in name or "\\" in name or name.startswith(".") or "\0" in name):
            flasher.log.add(f"{what} refused: file name {name!r} contains a path", refused=True)
            raise BundleRejected(f"file name {name!r} contains a path; send the bare file name")
        length = self._length()
        if length is None:
            raise BundleRejected("Content-Length is required (no chunked uploads)")
        if length < 0:
            raise BundleRejected("bad Content-Length")
        if length > limit:
            flasher.log.add(f"{source} refused: {length} bytes is over the limit", refused=True)
            raise UploadTooLarge(f"{noun} is {length} bytes; the limit is {limit} bytes")
        return source, length

    def _upload(self) -> tuple[int, dict]:
        flasher = self.server.flasher
        source, length = self._upload_head("upload", "bundle", flasher.cfg.max_bytes)
        result = flasher.flash_stream(_Reader(self.rfile), length, force=self._flag("force"), source=source,
                                      deadline=_upload_deadline(length))
        return HTTPStatus.OK, self._maybe_wait(result)

    def _bank_upload(self) -> tuple[int, dict]:
        from conversion.voice_bank import MAX_BANK_BYTES

        flasher = self.server.flasher
        source, length = self._upload_head("bank upload", "voice bank", min(MAX_BANK_BYTES, flasher.cfg.max_bytes))
        activate = self._query().get("activate", "1").lower() not in ("0", "false", "no", "off")
        return HTTPStatus.OK, flasher.flash_bank_stream(_Reader(self.rfile), length, source=source, activate=activate,
                                                        deadline=_upload_deadline(length))

    def _bank_activate(self) -> tuple[int, dict]:
        return HTTPStatus.OK, self.server.flasher.activate_bank(str(self._json_body().get("name", "")))

    def _bank_deactivate(self) -> tuple[int, dict]:
        self._json_body()
        return HTTPStatus.OK, self.server.flasher.deactivate_bank()

    def _bank_delete(self) -> tuple[int, dict]:
        return HTTPStatus.OK, self.server.flasher.delete_bank(str(self._json_body().get("name", "")))

    def _activate(self) -> tuple[int, dict]:
        name = str(self._json_body().get("name", ""))
        return HTTPStatus.OK, self._maybe_wait(self.server.flasher.activate(name))

    def _rollback(self) -> tuple[int, dict]:
        self._json_body()
        return HTTPStatus.OK, self.server.flasher.rollback()

    def _usb_import(self) -> tuple[int, dict]:
        self._json_body()
        if self.server.usb_dir is None:
            raise DxmacroError("no USB folder configured for this service (usb_dir)")
        return HTTPStatus.OK, self._maybe_wait(self.server.flasher.import_folder(self.server.usb_dir,
                                                                                 force=self._flag("force")))


def _upload_deadline(length: int) -> float:
    return time.monotonic() + max(UPLOAD_MIN_S, length / UPLOAD_MIN_RATE)


class _Reader:
    """The request body read as it arrives (one recv at a time), so the flasher checks the upload's
    deadline between trickled bytes instead of waiting for a whole chunk."""

    def __init__(self, rfile) -> None:
        self.rfile = rfile

    def read(self, n: int = -1) -> bytes:
        return self.rfile.read1(n)


def serve(server: FlashHTTPServer, ready: threading.Event | None = None) -> None:
    if ready is not None:
        ready.set()
    server.serve_forever(poll_interval=0.2)
