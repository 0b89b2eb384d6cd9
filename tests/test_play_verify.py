"""``dxmacro play --bundle`` verifies the bundle as the device does: with --public-key or the
config's [model] public_key, and plays it unverified only with --allow-unsigned."""

from __future__ import annotations

from pathlib import Path

import pytest

from conversion import bundle, keys
from dxmacro.cli import main
from dxmacro.errors import DxmacroError
from tests.test_conversion_bundle import MANIFEST, _members

PORTS = ["--controller", "no controller", "--synth", "no synth"]


@pytest.fixture()
def signed(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A bundle signed with one key, that key's public half and another key's."""
    private, public = keys.generate(tmp_path / "signing")
    _, other = keys.generate(tmp_path / "other")
    path = tmp_path / "model.dxm"
    bundle.write(path, MANIFEST, _members(), keys.load_private_key(private))
    return path, public, other


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.startswith("dxmacro: error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    return err


def test_an_unverified_bundle_is_refused_in_one_line(signed, capsys):
    path, _, _ = signed
    assert main(["play", *PORTS, "--bundle", str(path)]) == 1
    err = _one_line_error(capsys)
    assert "would play unverified" in err and "--public-key" in err and "--allow-unsigned" in err


def test_a_bundle_signed_with_another_key_is_refused(signed, tmp_path, capsys):
    path, _, other = signed
    assert main(["play", *PORTS, "--bundle", str(path), "--public-key", str(other)]) == 1
    assert "signature" in _one_line_error(capsys)
    config = tmp_path / "device.toml"  # the config's key, relative to its folder, as the device reads it
    config.write_text('[model]\npublic_key = "other.pub"\n')
    assert main(["play", *PORTS, "--bundle", str(path), "--config", str(config)]) == 1
    assert "signature" in _one_line_error(capsys)


def test_which_key_play_verifies_with(signed, tmp_path, monkeypatch, capsys):
    import device.runtime

    path, public, _ = signed
    seen: list[Path | None] = []

    def loader(b: Path, key: Path | None = None):
        seen.append(key)
        raise DxmacroError("stop here")

    monkeypatch.setattr(device.runtime, "load_bundle_decoder", loader)
    config = tmp_path / "device.toml"
    config.write_text('[model]\npublic_key = "signing.pub"\n')
    for extra in (["--public-key", str(public)], ["--config", str(config)], ["--allow-unsigned"]):
        assert main(["play", *PORTS, "--bundle", str(path), *extra]) == 1
        assert "stop here" in _one_line_error(capsys)
    assert seen == [public, public.resolve(), None]
