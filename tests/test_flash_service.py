"""The flash service over real HTTP: refusals with reasons, the token on every write endpoint,
self-test and health-check failures rolled back, USB import, and the host-side CLI."""

from __future__ import annotations

import socket
import time
import urllib.request
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from dxmacro.cli import main as cli
from tests.flash_fixtures import Bundles
from device.flashing.status_file import read_status
from tests.flash_server import TOKEN, RealLoop, Service

WRITE_ENDPOINTS = ["/api/auth", "/api/upload", "/api/activate", "/api/rollback", "/api/usb-import"]
READ_ENDPOINTS = ["/api/status", "/api/models", "/api/banks"]


@pytest.fixture()
def bundles(tmp_path: Path) -> Bundles:
    return Bundles(tmp_path / "bundles")


@pytest.fixture()
def service(tmp_path, bundles):
    usb = tmp_path / "usb"
    usb.mkdir()
    s = Service(tmp_path, bundles, usb_dir=usb)
    yield s
    s.close()


def store_state(s: Service) -> tuple:
    root = s.root / "store"
    return (s.flasher.store.active_name(), sorted(p.name for p in (root / "models").iterdir()),
            sorted(p.name for p in root.glob(".*.tmp")))


def test_every_write_endpoint_needs_the_token(service, bundles):
    code, r = service.upload(bundles.make("decoder", "1.0.0"))
    assert code == 200 and r["active"] == r["installed"]
    before = store_state(service)
    body = bundles.make("decoder", "2.0.0").read_bytes()
    for path in WRITE_ENDPOINTS:
        for token in (None, "wrong-token-wrong-token-wrong", TOKEN[:-1], TOKEN + "x", ""):
            for method in ("POST", "PUT"):
                code, r = service.request(method, path, body, token)
                assert code == 401, (path, token, method)
                assert "token" in r["error"]
    assert store_state(service) == before
    code, r = service.request("POST", "/api/auth", None)
    assert code == 200 and r["ok"]
    # reads need the token too (issue 36); the page itself holds no data and is open
    for path in READ_ENDPOINTS:
        for token in (None, "wrong-token-wrong-token-wrong", TOKEN[:-1], ""):
            code, r = service.request("GET", path, token=token)
            assert code == 401 and "token" in r["error"], (path, token)
    assert service.request("GET", "/api/status")[0] == 200
    assert service.request("GET", "/api/models")[1]["models"][0]["active"] is True
    for page in ("/", "/status.js"):
        with urllib.request.urlopen(service.url + page, timeout=10) as r:
            assert r.status == 200


def test_a_read_token_reads_and_changes_nothing(tmp_path, bundles):
    """A status screen at the side of the stage gets the read token, never the flash token."""
    read_token = "read-only-token-for-the-stage-screen"
    s = Service(tmp_path, bundles, read_token=read_token)
    try:
        assert s.upload(bundles.make("decoder", "1.0.0"))[0] == 200
        for path in READ_ENDPOINTS:
            assert s.request("GET", path, token=read_token)[0] == 200, path
            assert s.request("GET", path)[0] == 200, path  # the flash token reads as well
        before = store_state(s)
        for path in WRITE_ENDPOINTS:
            assert s.request("POST", path, bundles.make("decoder", "2.0.0").read_bytes(), read_token)[0] == 401
        assert store_state(s) == before
    finally:
        s.close()


def test_refusals_have_clear_reasons_and_change_nothing(service, bundles, tmp_path):
    code, first = service.upload(bundles.make("decoder", "1.0.0"))
    assert code == 200
    good = bundles.make("decoder", "1.1.0").read_bytes()
    other_key = Ed25519PrivateKey.generate()
    cases = {
        "unsigned": (b"\x00" * 4096, 422, "not a dxmacro bundle"),
        "wrongly signed": (bundles.make("decoder", "1.2.0", key=other_key).read_bytes(), 422, "signature"),
        "tampered": (good[:-100] + bytes(b ^ 0xFF for b in good[-100:]), 422, "tampered"),
        "truncated": (good[: len(good) // 2], 422, "truncated"),
        "header only": (good[:20], 422, "truncated"),
        "oversized": (good + b"\x00" * (1 << 20), 413, "limit"),
        "empty": (b"", 422, "empty"),
        "path in model id": (bundles.make("../../etc/cron.d/x", "1.0.0", name="evil.dxm").read_bytes(), 422,
                             "not a safe file name"),
        "path in version": (bundles.make("decoder", "1.0/../../x", name="evil2.dxm").read_bytes(), 422,
                            "not a safe file name"),
        "format version": (bundles.make("decoder", "1.3.0", format_version=99).read_bytes(), 422,
                           "format 99 is not supported"),
        "downgrade": (bundles.make("decoder", "0.9.0").read_bytes(), 422, "downgrade"),
    }
    before = store_state(service)
    for what, (body, want_code, reason) in cases.items():
        code, r = service.request("POST", "/api/upload?wait=1", body, headers={"Content-Type": "x/y"})
        assert (code, r["ok"]) == (want_code, False), what
        assert reason in r["error"], (what, r["error"])
        assert store_state(service) == before, what
    code, r = service.request("POST", "/api/upload?filename=../../etc/passwd", good)
    assert code == 422 and "contains a path" in r["error"]
    code, r = service.request("POST", "/api/activate", b'{"name": "../store/active"}',
                              headers={"Content-Type": "application/json"})
    assert code == 422 and "not a model name" in r["error"]
    assert store_state(service) == before
    # the forced downgrade is the one way to go back in version
    code, r = service.request("POST", "/api/upload?force=1", cases["downgrade"][0])
    assert code == 200 and r["active"].startswith("decoder-0.9.0-")
    events = service.request("GET", "/api/status")[1]["events"]
    assert sum(e["level"] == "error" for e in events) >= len(cases) + 1


def test_chunked_or_lying_uploads_are_refused(service, bundles):
    host, port = service.server.server_address[:2]
    good = bundles.make("decoder", "1.0.0").read_bytes()
    for head, body, want in [
        (b"Transfer-Encoding: chunked\r\n", b"10\r\n" + good[:16] + b"\r\n0\r\n\r\n", b"Content-Length is required"),
        (f"Content-Length: {len(good)}\r\n".encode(), good[:1000], b"truncated: received 1000"),
    ]:
        with socket.create_connection((host, port), timeout=10) as c:
            c.sendall(b"POST /api/upload HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + TOKEN.encode() + b"\r\n"
                      + head + b"\r\n" + body)
            if b"truncated" in want:
                c.shutdown(socket.SHUT_WR)  # the client hangs up mid-upload
            reply = b""
            while chunk := c.recv(65536):
                reply += chunk
        assert reply.startswith(b"HTTP/1.1 422") and want in reply, reply
    assert service.flasher.store.active_name() is None
    assert not list((service.root / "store").glob(".*.tmp"))


def test_self_test_failure_is_never_installed(service, bundles):
    code, r = service.upload(bundles.make("decoder", "1.0.0"))
    before = store_state(service)
    code, r = service.upload(bundles.make("decoder", "1.1.0", self_test_ok=False))
    assert code == 422 and r["error"].startswith("self-test failed")
    assert store_state(service) == before


def test_health_check_failures_roll_back_within_10_s(tmp_path, bundles):
    """The device's real control loop (simulated knobs and synth) on the other side of the contract."""
    status = tmp_path / "run" / "status.json"
    status.parent.mkdir()
    s = Service(tmp_path, bundles, status_file=status, health_window_s=3.0, stale_s=1.5)
    loop = None
    try:
        code, r = s.upload(bundles.make("decoder", "1.0.0"))
        assert code == 200 and r["health"] == "not checked"  # the first model has nothing to roll back to
        old = r["active"]
        loop = RealLoop(tmp_path / "store", status, bundles, hang_versions=("1.3.0",))
        # a good model: the loop picks it up and ticks healthily through the window
        t0 = time.monotonic()
        code, r = s.upload(bundles.make("decoder", "1.1.0"))
        assert code == 200 and r["health"]["state"] == "confirmed", r
        good = r["active"]
        assert time.monotonic() - t0 >= 3.0 and s.flasher.store.trial() is None
        doc = read_status(status)
        assert doc["model"] == {"file": good, "id": "decoder", "version": "1.1.0"} and doc["healthy"] is True
        assert [k["name"] for k in doc["knobs"]] == ["bright", "attack", "motion", "body"]
        assert doc["anchor"]["name"] == "INIT VOICE" and doc["midi"]["state"] == "connected"

        # a model the loop cannot play (2 latent dims, 4 knobs): it reports unhealthy -> rollback
        t0 = time.monotonic()
        code, r = s.upload(bundles.make("decoder", "1.2.0", latent_size=2))
        rollback_s = time.monotonic() - t0
        assert code == 200 and r["health"]["state"] == "rolled back", r
        assert "but the model has 2 latent dimensions" in r["health"]["reason"]
        assert s.flasher.store.active_name() == good and rollback_s < 10
        unhealthy_s = r["health"]["seconds"]
        time.sleep(0.8)  # the loop follows the pointer back and says so
        doc = read_status(status)
        assert doc["model"]["file"] == good and doc["healthy"] is True

        # the new model hangs the loop on its first decode: it stops ticking -> rollback when stale
        t0 = time.monotonic()
        code, r = s.upload(bundles.make("decoder", "1.3.0"))
        stale_rollback_s = time.monotonic() - t0
        assert r["health"]["state"] == "rolled back" and "not ticked" in r["health"]["reason"], r
        assert s.flasher.store.active_name() == good and stale_rollback_s < 10
        print(f"\nrollback after swap (the real loop): unhealthy report {unhealthy_s:.2f} s, stalled loop "
              f"{r['health']['seconds']:.2f} s (window 3 s, stale 1.5 s); whole request {rollback_s:.2f} s / "
              f"{stale_rollback_s:.2f} s")
        assert old != good
    finally:
        if loop is not None:
            loop.close()
        s.close()


def test_reboot_inside_the_health_window_checks_again(tmp_path, bundles):
    """The service dies right after a swap (trial marker on disk), no loop is running: on restart
    the pending swap is judged again and rolled back."""
    status = tmp_path / "status.json"
    s = Service(tmp_path, bundles, status_file=None)
    s.upload(bundles.make("decoder", "1.0.0"))
    old = s.flasher.store.active_name()
    s.flasher.cfg.status_file = status
    code, r = s.upload(bundles.make("decoder", "1.1.0"), query="wait=0")
    assert r["health"] == "pending" and s.flasher.store.trial() is not None
    s.close()
    s2 = Service(tmp_path, bundles, status_file=status, health_window_s=2.0, stale_s=1.0)
    try:
        h = s2.flasher.wait_health(10)
        assert h["state"] == "rolled back" and s2.flasher.store.active_name() == old
    finally:
        s2.close()


def test_usb_folder_import_runs_the_same_checks(service, bundles, tmp_path):
    usb = tmp_path / "usb"
    (usb / "a.dxm").write_bytes(bundles.make("decoder", "1.0.0").read_bytes())
    (usb / "b.dxm").write_bytes(bundles.make("decoder", "1.4.0").read_bytes())
    (usb / "c.dxm").write_bytes(bundles.make("decoder", "1.5.0", key=Ed25519PrivateKey.generate()).read_bytes())
    (usb / "d.dxm").write_bytes(bundles.make("decoder", "1.6.0").read_bytes()[:300])
    code, r = service.request("POST", "/api/usb-import", None)
    assert code == 200, r
    assert [x["version"] for x in r["installed"]] == ["1.0.0", "1.4.0"]
    assert {x["file"]: x["reason"] for x in r["refused"]}.keys() == {"c.dxm", "d.dxm"}
    assert "signature" in r["refused"][0]["reason"] and "truncated" in r["refused"][1]["reason"]
    assert r["active"].startswith("decoder-1.4.0-")


def test_cli_flash_list_rollback(service, bundles, capsys, tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    dev = ["--device", service.url, "--token-file", str(token_file)]
    assert cli(["flash", str(bundles.make("decoder", "1.0.0")), *dev]) == 0
    assert cli(["flash", str(bundles.make("decoder", "1.1.0")), *dev]) == 0
    out = capsys.readouterr().out
    assert "installed  decoder-1.1.0-" in out and "self-test  vectors 8" in out and "health     not checked" in out
    assert cli(["flash", "--list", "--device", service.url]) == 1  # reads need the token (issue 36)
    assert "401" in capsys.readouterr().err
    assert cli(["flash", "--list", *dev]) == 0
    listing = capsys.readouterr().out.splitlines()
    assert len(listing) == 2 and listing[1].startswith("* decoder-1.1.0-")
    assert cli(["flash", "--rollback", *dev]) == 0
    assert "active decoder-1.0.0-" in capsys.readouterr().out
    # refusals are one line and exit 1
    assert cli(["flash", str(bundles.make("decoder", "0.5.0")), *dev]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("dxmacro: error: device refused (422):") and "downgrade" in err and "\n" not in err
    assert cli(["flash", str(bundles.make("decoder", "2.0.0")), "--device", service.url, "--token", "nope"]) == 1
    assert "401" in capsys.readouterr().err
    assert cli(["flash", "--rollback", "--device", "http://127.0.0.1:9", "--token", "x"]) == 1
    assert "cannot reach" in capsys.readouterr().err
    big = tmp_path / "big.dxm"
    big.write_bytes(b"\0" * (2 << 20))
    assert cli(["flash", str(big), *dev]) == 1
    assert "accepts at most" in capsys.readouterr().err
