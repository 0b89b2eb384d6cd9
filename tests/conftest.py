"""Shared test fixtures: where the development data lives, and skips that say why."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session", autouse=True)
def _own_cache(tmp_path_factory) -> None:
    """The user's cache (the retrieval's pooled features, `play`'s bundles) in a folder of the
    test session's, so that tests neither read what another run left nor fill ~/.cache."""
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("cache"))


def shared_dx7_dir() -> Path | None:
    """``$DXMACRO_SHARED_DX7`` or ``../shared/dx7`` beside the checkout, if present."""
    env = os.environ.get("DXMACRO_SHARED_DX7")
    path = Path(env) if env else REPO.parent / "shared" / "dx7"
    return path if (path / "corpus").is_dir() else None


@pytest.fixture(scope="session")
def shared_dx7() -> Path:
    path = shared_dx7_dir()
    if path is None:
        pytest.skip("development data ../shared/dx7 is absent (set DXMACRO_SHARED_DX7 to point at it)")
    return path


@pytest.fixture(scope="session")
def corpus_files(shared_dx7: Path) -> list[Path]:
    files = sorted((shared_dx7 / "corpus").glob("*.syx"))
    if not files:
        pytest.skip(f"no .syx files in {shared_dx7 / 'corpus'}")
    return files


def pytest_addoption(parser: pytest.Parser) -> None:
    """HIL suite against a real synth instead of the emulated DX7 (tests/hil/test_device_hil.py)."""
    group = parser.getgroup("hil", "hardware-in-the-loop against a real synth")
    group.addoption("--hil-port", default=None, help="the synth's MIDI input port (default: the emulated DX7)")
    group.addoption("--hil-reply-port", default=None, help="the synth's MIDI output (dump-request replies)")
    group.addoption("--hil-loopback", default=None, help="an input port that sees what the synth receives")
    group.addoption("--hil-api", default="alsa", choices=("alsa", "jack"), help="MIDI API of --hil-port")
    group.addoption("--hil-channel", type=int, default=1, help="the synth's receive channel 1..16")
