"""The device's flash service: HTTP in front of :class:`device.flashing.flasher.Flasher`.

A process separate from the control loop: a crash here never stops the music. Every endpoint but
the page itself needs ``Authorization: Bearer <token>`` (compared in constant time, checked before
a byte of the body is read): writes the flash token, reads (``/api/status``, ``/api/models``,
``/api/banks``) the flash token or, when the config names one, a read-only token for a status
screen at the side of the stage. The page (``/``, ``/status.js``) holds no data; it asks for a
token once and keeps it in the tab's sessionStorage. The real protection of the controller is the
bundle signature; the token decides who may see the controller and who may swap between genuine
models.

Why aiohttp (issue 36 moved the service off the standard library's ``http.server``): a maintained
HTTP/1.1 server with limits on the request line and the headers' size and count; request bodies
streamed with back-pressure (read as the handler asks, never buffered whole); one asyncio loop, so
a crowd of slow clients costs a small object each instead of a thread each; an idle deadline that
cuts a connection whose request line and headers are not in within ``HEADER_TIMEOUT_S`` however
slowly they trickle (its ``keepalive_timeout``, which also bounds keep-alive idling); a lingering
close after an early answer (401, 413), so the answer is not destroyed by a reset; handlers that a
disconnect does not cancel (a flash that has begun installing finishes); aarch64 wheels for the
Pi. uvicorn + starlette (tried first) and aiohttp both drop a connection when the client
half-closes it (``shutdown(SHUT_WR)``); no real client of ours does that (curl and ``dxmacro
flash`` keep their side open until the answer; a client that dies closes both sides and hears
nothing either way), but aiohttp lets :class:`_Connection` keep the write side open with public
API (asyncio's ``eof_received``), so a client that ends a short upload that way still hears its
422 "upload truncated" instead of nothing.

The bounds on top of aiohttp's: at most ``MAX_CONNECTIONS`` open connections (more are closed at
once); blocking work (checks, self-test, fsyncs, the store) in ``WORKERS`` threads; an upload's
body received into the store's temp file in full, within max(30 s, its size at 32 KiB/s) and with
no stall over ``READ_TIMEOUT_S``, before the store is locked (a trickling upload never blocks a
flash or a rollback); clients that hang up are forgotten without a word to the journal; refusals
go to the event log apart from the install and rollback history (flasher.EventLog).

Endpoints (JSON unless noted):
    GET  /                 status page (device/flashing/web/status.html), /status.js its script
    GET  /api/status       store, control-loop heartbeat, health check, recent events
    GET  /api/models       installed models
    GET  /api/banks        installed voice banks, the active one and whether it applies
    POST /api/auth         checks the token and nothing else (clients call it before a big upload)
    POST /api/upload       body = the .dxm bytes (Content-Length required); ?force=1, ?wait=1
    POST /api/activate     {"name": "<installed model name>"}; ?wait=1
    POST /api/rollback
    POST /api/usb-import   imports the configured USB folder; ?force=1, ?wait=1
    POST /api/banks/upload      body = the .dxb bytes (Content-Length required); ?activate=0 installs only
    POST /api/banks/activate    {"name": "<installed bank name>"}
    POST /api/banks/deactivate  back to the model's anchors
    POST /api/banks/delete      {"name": "<installed bank name>"} (not the active one)
    POST /api/learn        {"knob": N} or {"cancel": true}: MIDI learn in the control loop (learn.js)
"""

from __future__ import annotations

import asyncio
import functools
import hmac
import json
import signal
import socket
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from aiohttp import web
from aiohttp.streams import StreamReader

from device.flashing.bundle_check import BundleRejected
from device.flashing.flasher import Flasher, Upload, UploadTooLarge
from device.flashing.store import StoreBusy, StoreError
from dxmacro.errors import DxmacroError

WEB = Path(__file__).with_name("web")
STATIC = {"/": ("status.html", "text/html; charset=utf-8"),
          "/status.js": ("status.js", "text/javascript; charset=utf-8"),
          "/learn.js": ("learn.js", "text/javascript; charset=utf-8")}
MAX_JSON = 4096
MAX_CONNECTIONS = 128  # open connections at most; one technician needs a handful
WORKERS = 4  # threads for blocking work; flashes take the store lock one at a time anyway
HEADER_TIMEOUT_S = 10.0  # request line and headers, from the connection's start or its last answer
READ_TIMEOUT_S = 10.0  # an upload that sends nothing for this long is refused
LINGER_S = 2.0  # after an early answer, unread body is drained this long before the close
UPLOAD_MIN_S, UPLOAD_MIN_RATE = 30.0, 32 * 1024  # an upload gets max(30 s, its size at 32 KiB/s)
HEADERS = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}

Route = Callable[[web.BaseRequest], Awaitable[tuple[int, dict]]]


class FlashHTTPServer:
    """The service bound to ``address`` at construction (port 0 picks one: ``server_address``);
    ``serve_forever`` runs it on an asyncio loop in the calling thread until ``shutdown``."""

    def __init__(self, address: tuple[str, int], flasher: Flasher, token: str, usb_dir: Path | None = None, *,
                 read_token: str | None = None, max_connections: int = MAX_CONNECTIONS) -> None:
        for what, value in (("flash token", token), ("read token", read_token)):
            if value is not None and len(value) < 16:
                raise DxmacroError(f"the {what} must be at least 16 characters")
        self.flasher = flasher
        self.token = token.encode()
        self.read_token = read_token.encode() if read_token else None
        self.usb_dir = usb_dir
        self.max_connections = max_connections
        self.open_connections = 0  # admitted and not yet closed (changed on the loop's thread only)
        self.header_timeout_s = HEADER_TIMEOUT_S
        family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self._sock = socket.create_server(address, family=family, backlog=64)
        self.server_address = self._sock.getsockname()
        self._pool = ThreadPoolExecutor(WORKERS, thread_name_prefix="flash-worker")
        self._reads: dict[str, Callable[[], dict]] = {
            "/api/status": flasher.status,
            "/api/models": lambda: {"models": flasher.store.summary()["models"]},
            "/api/banks": flasher.banks.summary}
        self._writes: dict[str, Route] = {
            "/api/auth": self._auth, "/api/upload": self._upload, "/api/activate": self._activate,
            "/api/rollback": self._rollback, "/api/usb-import": self._usb_import,
            "/api/banks/upload": self._bank_upload, "/api/banks/activate": self._bank_activate,
            "/api/banks/deactivate": self._bank_deactivate, "/api/banks/delete": self._bank_delete,
            "/api/learn": self._learn}
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._stopping = threading.Event()
        self._idle = threading.Event()
        self._idle.set()

    # ---- lifecycle (the stdlib server's names, so the CLI and the tests drive it the same way) ----

    def serve_forever(self) -> None:
        if self._stopping.is_set():
            return
        self._idle.clear()
        try:
            asyncio.run(self._serve())
        finally:
            self._idle.set()

    async def _serve(self) -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        with self._lock:
            self._loop, self._stop = loop, stop
            if self._stopping.is_set():
                stop.set()
        if threading.current_thread() is threading.main_thread():
            # SIGTERM (systemd's stop) and Ctrl-C end the loop as shutdown() does, not by an
            # exception raised wherever the main thread happens to be: stopped that way, the
            # process hung at exit once in some 35 stops on a loaded machine
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, stop.set)
        http = web.Server(self._handle)
        options = {"loop": loop, "keepalive_timeout": self.header_timeout_s, "lingering_time": LINGER_S,
                   "access_log": None}
        server = await loop.create_server(lambda: _Connection(http, self, **options), sock=self._sock)
        try:
            await stop.wait()
        finally:
            with self._lock:
                self._loop = self._stop = None  # a later shutdown() has no loop to wake
            server.close()
            await http.shutdown(1.0)

    def shutdown(self) -> None:
        """Stop ``serve_forever`` (called from another thread) and wait until it has returned."""
        self._stopping.set()
        with self._lock:
            if self._loop is not None and self._stop is not None:
                self._loop.call_soon_threadsafe(self._stop.set)
        self._idle.wait()

    def server_close(self) -> None:
        self._sock.close()
        self._pool.shutdown(wait=False)

    # ---- one request ---------------------------------------------------------------------------

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        conn = request.protocol
        assert isinstance(conn, _Connection)
        conn.body = request.content
        if conn.half_closed:  # the client shut its side before this request's turn came
            request.content.feed_eof()
        try:
            response = await self._answer(request)
        finally:
            conn.body = None
        if conn.half_closed:
            response.force_close()
        return response

    async def _answer(self, request: web.BaseRequest) -> web.StreamResponse:
        path = request.path
        if request.method in ("GET", "HEAD"):
            if path in STATIC:
                name, ctype = STATIC[path]
                return web.Response(body=(WEB / name).read_bytes(), headers=HEADERS | {"Content-Type": ctype})
            read = self._reads.get(path)
            if read is None:
                return _error(404, f"no such page {path}")
            if not self._authorized(request, write=False):
                return self._unauthorized(request)
            return _json(200, await self._work(read))
        if request.method not in ("POST", "PUT"):
            return _error(405, f"method {request.method} not allowed")
        route = self._writes.get(path)
        if route is None:
            return _error(404, f"no such endpoint {path}")
        if not self._authorized(request, write=True):
            return self._unauthorized(request)
        try:
            code, doc = await route(request)
        except Exception as exc:  # noqa: BLE001 - mapped to a status code
            return self._refusal(path, exc)
        return _json(code, {"ok": True} | doc)

    def _authorized(self, request: web.BaseRequest, *, write: bool) -> bool:
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer":
            return False
        given_bytes = given.strip().encode("utf-8", "replace")
        ok = hmac.compare_digest(given_bytes, self.token)
        if not write and self.read_token is not None:
            ok = hmac.compare_digest(given_bytes, self.read_token) or ok
        return ok

    def _unauthorized(self, request: web.BaseRequest) -> web.Response:
        self.flasher.log.add(f"{request.method} {request.path} from {request.remote} refused: missing or wrong token",
                             refused=True)
        return _error(401, "missing or wrong token (Authorization: Bearer <token>)",
                      {"WWW-Authenticate": 'Bearer realm="dxmacro"'})

    def _refusal(self, path: str, exc: Exception) -> web.Response:
        if isinstance(exc, UploadTooLarge):
            return _error(413, str(exc))
        if isinstance(exc, StoreBusy):
            return _error(409, str(exc))
        if isinstance(exc, (BundleRejected, StoreError)):
            return _error(422, str(exc))
        if isinstance(exc, DxmacroError):
            return _error(400, str(exc))
        self.flasher.log.add(f"internal error on {path}: {exc!r}", error=True)  # one bad request never ends the service
        return _error(500, f"internal error: {exc}")

    async def _work(self, fn: Callable, *args, **kw):
        """``fn`` in the worker threads: the loop keeps answering while a flash verifies and fsyncs."""
        return await asyncio.get_running_loop().run_in_executor(self._pool, functools.partial(fn, *args, **kw))

    # ---- bodies ----------------------------------------------------------------------------------

    async def _json_body(self, request: web.BaseRequest) -> dict:
        n = request.content_length
        if not n:
            return {}
        if n > MAX_JSON:
            raise BundleRejected("request body is not a small JSON object")
        try:
            async with asyncio.timeout(READ_TIMEOUT_S):
                raw = await request.content.readexactly(n)
            doc = json.loads(raw)
        except (ValueError, asyncio.IncompleteReadError, TimeoutError, OSError):
            raise BundleRejected("request body is not JSON") from None
        if not isinstance(doc, dict):
            raise BundleRejected("request body is not a JSON object")
        return doc

    def _upload_head(self, request: web.BaseRequest, what: str, noun: str, limit: int) -> tuple[str, int]:
        """(source for the log, Content-Length) of an upload, refused before its body is read when
        the file name holds a path, the length is missing, or over ``limit``."""
        name = request.query.get("filename", "")
        source = f"{what} {name}".strip()
        if name and ("/" in name or "\\" in name or name.startswith(".") or "\0" in name):
            self.flasher.log.add(f"{what} refused: file name {name!r} contains a path", refused=True)
            raise BundleRejected(f"file name {name!r} contains a path; send the bare file name")
        length = request.content_length
        if length is None:
            raise BundleRejected("Content-Length is required (no chunked uploads)")
        if length > limit:
            self.flasher.log.add(f"{source} refused: {length} bytes is over the limit", refused=True)
            raise UploadTooLarge(f"{noun} is {length} bytes; the limit is {limit} bytes")
        return source, length

    async def _receive(self, request: web.BaseRequest, source: str, length: int, limit: int) -> Path:
        """The whole body into the store's temp file (before any lock), as it arrives."""
        try:
            upload = self.flasher.upload(length, limit, time.monotonic() + max(UPLOAD_MIN_S, length / UPLOAD_MIN_RATE))
            try:
                while upload.wanted():
                    chunk = await _piece(request.content, upload)
                    if not chunk:
                        break
                    upload.add(chunk)
                return await self._work(upload.finish)
            except BaseException:
                upload.discard()
                raise
        except DxmacroError as exc:
            self.flasher.log.add(f"{source} refused: {exc}", error=True, refused=True)
            raise

    # ---- write routes ----------------------------------------------------------------------------

    async def _auth(self, request: web.BaseRequest) -> tuple[int, dict]:
        return 200, {}

    async def _upload(self, request: web.BaseRequest) -> tuple[int, dict]:
        flasher = self.flasher
        source, length = self._upload_head(request, "upload", "bundle", flasher.cfg.max_bytes)
        await self._work(flasher.check_idle)
        tmp = await self._receive(request, source, length, flasher.cfg.max_bytes)
        result = await self._work(flasher.flash_received, tmp, force=_flag(request, "force"), source=source)
        return 200, await self._maybe_wait(request, result)

    async def _bank_upload(self, request: web.BaseRequest) -> tuple[int, dict]:
        from conversion.voice_bank import MAX_BANK_BYTES

        limit = min(MAX_BANK_BYTES, self.flasher.cfg.max_bytes)
        source, length = self._upload_head(request, "bank upload", "voice bank", limit)
        tmp = await self._receive(request, source, length, limit)
        activate = request.query.get("activate", "1").lower() not in ("0", "false", "no", "off")
        return 200, await self._work(self.flasher.flash_bank_received, tmp, source=source, activate=activate)

    async def _activate(self, request: web.BaseRequest) -> tuple[int, dict]:
        name = str((await self._json_body(request)).get("name", ""))
        return 200, await self._maybe_wait(request, await self._work(self.flasher.activate, name))

    async def _rollback(self, request: web.BaseRequest) -> tuple[int, dict]:
        await self._json_body(request)
        return 200, await self._work(self.flasher.rollback)

    async def _usb_import(self, request: web.BaseRequest) -> tuple[int, dict]:
        await self._json_body(request)
        if self.usb_dir is None:
            raise DxmacroError("no USB folder configured for this service (usb_dir)")
        result = await self._work(self.flasher.import_folder, self.usb_dir, force=_flag(request, "force"))
        return 200, await self._maybe_wait(request, result)

    async def _bank_activate(self, request: web.BaseRequest) -> tuple[int, dict]:
        name = str((await self._json_body(request)).get("name", ""))
        return 200, await self._work(self.flasher.activate_bank, name)

    async def _bank_deactivate(self, request: web.BaseRequest) -> tuple[int, dict]:
        await self._json_body(request)
        return 200, await self._work(self.flasher.deactivate_bank)

    async def _bank_delete(self, request: web.BaseRequest) -> tuple[int, dict]:
        name = str((await self._json_body(request)).get("name", ""))
        return 200, await self._work(self.flasher.delete_bank, name)

    async def _learn(self, request: web.BaseRequest) -> tuple[int, dict]:
        """MIDI learn for the control loop, left in the store (device.control.learn_service)."""
        from device.control.learn_service import request_from_body

        return 200, await self._work(request_from_body, self.flasher.store.root, await self._json_body(request))

    async def _maybe_wait(self, request: web.BaseRequest, result: dict) -> dict:
        """With ?wait=1, the answer waits for the health check (polled: no worker thread waits)."""
        if _flag(request, "wait") and result.get("health") == "pending":
            while self.flasher.health_pending():
                await asyncio.sleep(0.1)
            result = result | {"health": self.flasher.wait_health(0)}
        return result


class _Connection(web.RequestHandler):
    """aiohttp's connection with two additions: the service's cap on open connections, and an
    answer for a client that half-closes in the middle of a request."""

    def __init__(self, manager: web.Server, service: FlashHTTPServer, **options) -> None:
        super().__init__(manager, **options)
        self.service = service
        self.admitted = False
        self.half_closed = False
        self.body: StreamReader | None = None  # the body of the request being answered

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        if self.service.open_connections >= self.service.max_connections:
            self.force_close()  # the client sees the connection end and may retry
            return
        self.admitted = True
        self.service.open_connections += 1

    def connection_lost(self, exc: BaseException | None) -> None:
        if self.admitted:
            self.admitted = False
            self.service.open_connections -= 1
        super().connection_lost(exc)

    def eof_received(self) -> bool:
        """The client shut its sending side (``shutdown(SHUT_WR)``): what came is all the body
        there is, and the write side stays open for the answer, sent with ``Connection: close``.
        (aiohttp closes at once; a half-closed connection that asks nothing more is closed at
        the header deadline like any idle one.)"""
        self.half_closed = True
        if self.body is not None:
            self.body.feed_eof()
        return True


async def _piece(content: StreamReader, upload: Upload) -> bytes:
    """The next piece of an upload's body, b"" at its end; refused past its deadline, after a
    stall of READ_TIMEOUT_S, or when the client goes away."""
    to_deadline = upload.deadline - time.monotonic() if upload.deadline is not None else READ_TIMEOUT_S
    try:
        async with asyncio.timeout(max(0.0, min(READ_TIMEOUT_S, to_deadline))):
            return await content.readany()
    except TimeoutError:
        if to_deadline <= READ_TIMEOUT_S:
            raise BundleRejected(f"upload too slow: {upload.got} bytes in the time allowed") from None
        raise BundleRejected(f"upload stalled: received {upload.got} of {upload.length} bytes, then nothing "
                             f"for {READ_TIMEOUT_S:g} s") from None
    except (OSError, web.RequestPayloadError) as exc:
        raise BundleRejected(f"upload interrupted after {upload.got} bytes: {exc}") from None


def _flag(request: web.BaseRequest, name: str) -> bool:
    return request.query.get(name, "0").lower() in ("1", "true", "yes", "on")


def _json(code: int, doc: dict, headers: dict[str, str] | None = None) -> web.Response:
    response = web.json_response(doc, status=code, headers=HEADERS | (headers or {}))
    if code >= 400:
        response.force_close()  # the body may be unread: drained (LINGER_S), never parsed as a request
    return response


def _error(code: int, reason: str, headers: dict[str, str] | None = None) -> web.Response:
    return _json(code, {"ok": False, "error": reason}, headers)

