"""The flash service under a bounded loopback attack (issue 36): a crowd of slow clients and a
trickling authorised upload must not starve a legitimate flash or a rollback; threads stay
bounded; hang-ups leave no traceback; refusals cannot push the install history off the log."""

from __future__ import annotations

import socket
import struct
import threading
import time

import pytest

from device.flashing import flash_service
from tests.flash_fixtures import Bundles
from tests.flash_server import TOKEN, Service


@pytest.fixture
def bundles(tmp_path):
    return Bundles(tmp_path / "bundles")


@pytest.fixture
def service(tmp_path, bundles):
    s = Service(tmp_path, bundles)
    yield s
    s.close()


def _slow_clients(service: Service, n: int) -> list[socket.socket]:
    """``n`` connections that send half a request line and then nothing."""
    host, port = service.server.server_address[:2]
    socks = []
    for _ in range(n):
        c = socket.create_connection((host, port), timeout=10)
        c.sendall(b"GET /api/status HTTP/1.1\r\nHo")
        socks.append(c)
    return socks


def _trickle(service: Service, body: bytes, stop: threading.Event) -> threading.Thread:
    """An authorised upload that sends one byte every 0.2 s until told to stop."""
    host, port = service.server.server_address[:2]

    def run() -> None:
        with socket.create_connection((host, port), timeout=30) as c:
            c.sendall(b"POST /api/upload HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + TOKEN.encode()
                      + f"\r\nContent-Length: {len(body)}\r\n\r\n".encode())
            for b in body:
                if stop.wait(0.2):
                    return
                try:
                    c.sendall(bytes([b]))
                except OSError:
                    return

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def test_a_flash_and_a_rollback_get_through_100_slow_clients_and_a_trickling_upload(service, bundles):
    assert service.upload(bundles.make("decoder", "1.0.0"))[0] == 200
    slow = _slow_clients(service, 100)
    stop = threading.Event()
    trickler = _trickle(service, bundles.make("decoder", "3.0.0").read_bytes(), stop)
    try:
        time.sleep(1.0)  # the trickle is under way
        t0 = time.monotonic()
        code, r = service.upload(bundles.make("decoder", "2.0.0"), query="")
        assert code == 200 and r["active"].startswith("decoder-2.0.0-"), r
        code, r = service.request("POST", "/api/rollback", b"{}", headers={"Content-Type": "application/json"})
        took = time.monotonic() - t0
        assert code == 200 and service.flasher.store.active_name().startswith("decoder-1.0.0-"), r
        assert took < 10.0, took
        # the crowd costs a thread each, never more than the cap
        assert threading.active_count() <= flash_service.MAX_CONNECTIONS + 10
    finally:
        stop.set()
        for c in slow:
            c.close()
        trickler.join(5)


def test_connections_past_the_cap_are_closed_and_slow_ones_cut_off(tmp_path, bundles, monkeypatch):
    monkeypatch.setattr(flash_service, "HEADER_TIMEOUT_S", 1.5)
    s = Service(tmp_path, bundles)
    s.server.slots = threading.BoundedSemaphore(20)
    base = threading.active_count()
    try:
        slow = _slow_clients(s, 60)
        time.sleep(0.3)
        assert threading.active_count() <= base + 20 + 2  # 40 were closed at once
        t0 = time.monotonic()
        for c in slow[:20]:  # the admitted ones: cut off at the header deadline, however patient
            try:
                assert c.recv(100) == b""
            except ConnectionResetError:
                pass
        assert time.monotonic() - t0 < 1.5 + 3.0
        for c in slow:
            c.close()
        time.sleep(0.3)
        assert s.request("GET", "/api/status", token=None)[0] == 200  # and the service is there again
    finally:
        s.close()


def test_hang_ups_and_wrong_tokens_flood_neither_journal_nor_history(service, bundles, capfd):
    assert service.upload(bundles.make("decoder", "1.0.0"))[0] == 200
    assert service.upload(bundles.make("decoder", "1.1.0"))[0] == 200
    assert service.request("POST", "/api/rollback", b"{}")[0] == 200
    host, port = service.server.server_address[:2]
    body = bundles.make("decoder", "2.0.0").read_bytes()
    for _ in range(60):  # a wrong token and a reset before reading the answer
        c = socket.create_connection((host, port), timeout=10)
        c.sendall(b"POST /api/upload HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer wrong\r\n"
                  + f"Content-Length: {len(body)}\r\n\r\n".encode() + body[:1000])
        c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        c.close()
    for _ in range(60):
        assert service.request("POST", "/api/rollback", b"{}", token="wrong-token-wrong-token")[0] == 401
    time.sleep(0.5)
    events = service.request("GET", "/api/status", token=None)[1]["events"]
    history = [e["message"] for e in events if "refused" not in e["message"]]
    assert any("installed decoder-1.0.0" in m for m in history)
    assert any("installed decoder-1.1.0" in m for m in history)
    assert any(m.startswith("rolled back from decoder-1.1.0") for m in history)
    assert sum("refused" in e["message"] for e in events) <= 50  # refusals: bounded, apart
    out, err = capfd.readouterr()
    assert "Traceback" not in out + err and "ConnectionResetError" not in out + err
