"""The flash service under a bounded loopback attack (issue 36): a crowd of slow clients and a
trickling authorised upload must not starve a legitimate flash or a rollback; threads stay
bounded; hang-ups leave no traceback; refusals cannot push the install history off the log."""

from __future__ import annotations

import os
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from device.flashing import flash_service
from tests.flash_fixtures import Bundles
from tests.flash_server import REPO, TOKEN, Service


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


def _closed_by_server(c: socket.socket) -> bool:
    c.settimeout(0.5)
    try:
        return c.recv(100) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


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
    s = Service(tmp_path, bundles, max_connections=20)
    base = threading.active_count()
    try:
        slow = _slow_clients(s, 60)
        time.sleep(0.3)
        assert threading.active_count() <= base + 20 + 2  # no thread per connection
        assert s.server.open_connections == 20
        assert all(_closed_by_server(c) for c in slow[20:])  # 40 were closed at once
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
        assert s.request("GET", "/api/status")[0] == 200  # and the service is there again
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
    events = service.request("GET", "/api/status")[1]["events"]
    history = [e["message"] for e in events if "refused" not in e["message"]]
    assert any("installed decoder-1.0.0" in m for m in history)
    assert any("installed decoder-1.1.0" in m for m in history)
    assert any(m.startswith("rolled back from decoder-1.1.0") for m in history)
    assert sum("refused" in e["message"] for e in events) <= 50  # refusals: bounded, apart
    out, err = capfd.readouterr()
    assert "Traceback" not in out + err and "ConnectionResetError" not in out + err


MEMORY_BOUND_MIB = 48  # growth of the service's peak RSS over its idle RSS under the attack below


def _vm_kib(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak RSS) of a process, in KiB, from /proc/PID/status."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return {k: int(fields[k].split()[0]) for k in ("VmRSS", "VmHWM")}


def _upload_raw(port: int, token: str, body: bytes, piece: int = 256 * 1024) -> bytes:
    """An upload sent as fast as loopback takes it; the answer's status line (b"" if cut off)."""
    with socket.create_connection(("127.0.0.1", port), timeout=60) as c:
        c.sendall(b"POST /api/upload?filename=big.dxm HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + token.encode()
                  + f"\r\nContent-Length: {len(body)}\r\n\r\n".encode())
        try:
            for i in range(0, len(body), piece):
                c.sendall(body[i:i + piece])
        except OSError:
            pass  # refused early (401): the service stops reading after its lingering close
        reply = b""
        try:
            while b"\r\n" not in reply and (chunk := c.recv(4096)):
                reply += chunk
        except OSError:
            pass
        return reply.split(b"\r\n", 1)[0]


def test_memory_stays_bounded_under_attack(tmp_path):
    """The real ``dxmacro flash-service serve`` process (default 8 MiB limit) while 100 slow clients,
    one trickling upload, 4 authorised and 4 wrong-token max-size uploads are connected at once:
    bodies stream to the store's temp files, never into memory, so the peak RSS grows by little
    more than the verifier's reads (at most WORKERS at a time). ``pytest -s`` prints the figures."""
    from conversion import keys

    _, public = keys.generate(tmp_path / "signing")
    (tmp_path / "token").write_text(TOKEN)
    conf = tmp_path / "flash.toml"
    conf.write_text(f'store = "{tmp_path / "store"}"\ntoken_file = "{tmp_path / "token"}"\n'
                    f'public_key = "{public}"\nhost = "127.0.0.1"\nport = 0\n')
    proc = subprocess.Popen([sys.executable, "-m", "dxmacro", "flash-service", "serve", "--config", str(conf),
                             "--no-health-check"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
    socks: list[socket.socket] = []
    stop = threading.Event()
    try:
        line = proc.stdout.readline()
        assert "flash service on http://127.0.0.1:" in line, line
        port = int(line.split("http://127.0.0.1:", 1)[1].split("/", 1)[0])
        time.sleep(0.5)
        idle = _vm_kib(proc.pid)["VmRSS"]
        t0 = time.monotonic()
        for _ in range(100):
            c = socket.create_connection(("127.0.0.1", port), timeout=10)
            c.sendall(b"GET /api/status HTTP/1.1\r\nHo")
            socks.append(c)
        trickle = socket.create_connection(("127.0.0.1", port), timeout=10)
        socks.append(trickle)
        trickle.sendall(b"POST /api/upload HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + TOKEN.encode()
                        + b"\r\nContent-Length: 100000\r\n\r\n")
        threading.Thread(target=lambda: [trickle.send(b"x") for _ in iter(lambda: stop.wait(0.2), True)],
                         daemon=True).start()
        big = os.urandom(8 * 1024 * 1024)  # the default max_bytes
        answers: list[bytes] = []
        uploads = [threading.Thread(target=lambda t=t: answers.append(_upload_raw(port, t, big)))
                   for t in [TOKEN] * 4 + ["wrong-token-wrong-token"] * 4]
        for u in uploads:
            u.start()
        peak_rss = idle
        while any(u.is_alive() for u in uploads):
            peak_rss = max(peak_rss, _vm_kib(proc.pid)["VmRSS"])
            time.sleep(0.02)
        took = time.monotonic() - t0
        vm = _vm_kib(proc.pid)
        print(f"\nflash service memory: idle RSS {idle / 1024:.1f} MiB; under 100 slow clients, 1 trickle, "
              f"4 + 4 max-size uploads: sampled RSS peak {peak_rss / 1024:.1f} MiB, VmHWM {vm['VmHWM'] / 1024:.1f} MiB "
              f"(+{(vm['VmHWM'] - idle) / 1024:.1f} MiB) in {took:.1f} s")
        codes = sorted(a.split(b" ", 2)[1] for a in answers)
        assert codes[:4] == [b"401"] * 4 and set(codes[4:]) <= {b"409", b"422"}, answers  # not a bundle, or busy
        assert vm["VmHWM"] - idle < MEMORY_BOUND_MIB * 1024
        assert took < 60
    finally:
        stop.set()
        for c in socks:
            c.close()
        proc.terminate()
        _, err = proc.communicate(timeout=10)
    assert err == "", err  # hang-ups and refusals leave nothing in the journal
