"""systemd units pass ``systemd-analyze verify`` without a warning; install.sh lays them out."""

from __future__ import annotations

import configparser
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
UNITS = ["dxmacro-device.service", "dxmacro-flash.service"]


def _unit(name: str) -> configparser.ConfigParser:
    c = configparser.ConfigParser(strict=False, interpolation=None)
    c.optionxform = str
    c.read_string((REPO / "systemd" / name).read_text())
    return c


def test_units_verify_clean(tmp_path):
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (Debian package systemd)")
    # ExecStart must name an executable that exists here: point it at this checkout's CLI.
    exe = Path(sys.executable).with_name("dxmacro")
    if not os.access(exe, os.X_OK):
        pytest.skip(f"no dxmacro executable beside {sys.executable} to stand in for /opt/dxmacro/venv/bin/dxmacro")
    for name in UNITS:
        text = (REPO / "systemd" / name).read_text().replace("/opt/dxmacro/venv/bin/dxmacro", str(exe))
        (tmp_path / name).write_text(text)
    proc = subprocess.run([analyze, "verify", *(str(tmp_path / n) for n in UNITS)], capture_output=True, text=True,
                          timeout=60)
    noise = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == 0 and not noise, proc.stderr  # warnings (typos, bad values) print but exit 0
    # verify really parses them: a broken copy is reported
    (tmp_path / "broken.service").write_text(text.replace("Restart=on-failure", "Restart=sometimes"))
    bad = subprocess.run([analyze, "verify", str(tmp_path / "broken.service")], capture_output=True, text=True)
    assert "restart specifier" in bad.stderr and "sometimes" in bad.stderr


def test_unit_settings_the_issue_asks_for():
    dev = _unit("dxmacro-device.service")["Service"]
    assert dev["Type"] == "notify" and dev["WatchdogSec"] and dev["Restart"] == "always"
    assert dev["User"] == "dxmacro" and set(dev["SupplementaryGroups"].split()) == {"i2c", "gpio", "audio", "dialout"}
    assert dev["ProtectSystem"] == "strict" and dev["NoNewPrivileges"] == "yes" and dev["DevicePolicy"] == "closed"
    assert dev["RestrictAddressFamilies"] == "AF_UNIX" and dev["RuntimeDirectory"] == "dxmacro"
    flash = _unit("dxmacro-flash.service")["Service"]
    assert flash["User"] != dev["User"] and flash["Group"] == dev["Group"]
    assert flash["ProtectSystem"] == "strict" and flash["NoNewPrivileges"] == "yes" and flash["PrivateDevices"] == "yes"
    assert "flash-service serve" in flash["ExecStart"]


def test_install_script_stages_units_config_and_token(tmp_path):
    key = tmp_path / "signing.pub"
    key.write_bytes(os.urandom(32))
    stage = tmp_path / "root"
    run = lambda: subprocess.run(["bash", str(REPO / "systemd" / "install.sh"), "--stage", str(stage),  # noqa: E731
                                  "--public-key", str(key), "--port", "8181"], capture_output=True, text=True)
    p = run()
    assert p.returncode == 0, p.stderr
    for name in UNITS:
        assert (stage / "etc/systemd/system" / name).read_text() == (REPO / "systemd" / name).read_text()
    token = (stage / "etc/dxmacro/flash.token")
    assert len(token.read_text().strip()) >= 32 and token.stat().st_mode & 0o777 == 0o600
    assert "port = 8181" in (stage / "etc/dxmacro/flash.toml").read_text()
    device = tomllib.loads((stage / "etc/dxmacro/device.toml").read_text())  # what dxmacro-device.service reads
    assert device["model"] == {"decoder": "bundle", "store": "/var/lib/dxmacro/store",
                               "public_key": "/etc/dxmacro/signing.pub"}
    assert device["device"]["status_file"] == "/run/dxmacro/status.json"
    first = token.read_text()
    assert run().returncode == 0 and token.read_text() == first  # re-running keeps the token
    # and the staged config is one the service accepts
    from dxmacro.commands.flash_service import settings

    import argparse
    args = argparse.Namespace(config=str(stage / "etc/dxmacro/flash.toml"), no_health_check=False)
    conf = settings(args)
    assert conf["port"] == 8181 and conf["store"] == "/var/lib/dxmacro/store"
    missing = subprocess.run(["bash", str(REPO / "systemd" / "install.sh"), "--stage", str(stage)],
                             capture_output=True, text=True)
    assert missing.returncode == 1 and "--public-key" in missing.stderr


def test_service_config_errors_are_one_line(tmp_path, capsys):
    from dxmacro.cli import main as cli

    bad = tmp_path / "flash.toml"
    bad.write_text('port = "eighty"\n')
    assert cli(["flash-service", "status", "--config", str(bad)]) == 1
    assert capsys.readouterr().err.strip() == f"dxmacro: error: {bad}: port must be a int"
    bad.write_text("colour = 1\n")
    assert cli(["flash-service", "status", "--config", str(bad)]) == 1
    assert "unknown setting(s) colour" in capsys.readouterr().err
    good = tmp_path / "ok.toml"
    good.write_text(f'store = "{tmp_path / "store"}"\npublic_key = "{tmp_path / "missing.pub"}"\n')
    assert cli(["flash-service", "status", "--config", str(good)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("dxmacro: error: public key") and "does not exist" in err


def test_self_test_runs_in_a_child_and_reports_failure(tmp_path):
    """The separate-process plumbing: a non-bundle fails with one reason, never hangs or raises
    anything but BundleRejected."""
    from device.flashing.bundle_check import BundleRejected, run_self_test

    junk = tmp_path / "junk.dxm"
    junk.write_bytes(b"not a bundle")
    key = tmp_path / "k.pub"
    key.write_bytes(b"\0" * 32)
    with pytest.raises(BundleRejected, match="^self-test"):
        run_self_test(junk, key, timeout=60)
