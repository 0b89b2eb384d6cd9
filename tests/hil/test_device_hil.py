"""Issue 8, parts 3-4: the device's real control loop against a synth on a real MIDI port.

By default the synth is the emulated DX7 (its own process, its own JACK ports); with
``--hil-port NAME`` (and ``--hil-reply-port``, ``--hil-loopback``, ``--hil-api``, ``--hil-channel``)
the same checks (device/bench/hil.py, also ``dxmacro hil``) run against a real one."""

from __future__ import annotations

import threading
import time

import pytest

from device.bench import hil
from dx7 import Voice

pytestmark = [pytest.mark.hil]


@pytest.fixture
def target(request) -> hil.Target:
    opt = request.config.getoption
    if opt("--hil-port"):
        return hil.Target(opt("--hil-port"), opt("--hil-channel"), opt("--hil-api"),
                          reply_port=opt("--hil-reply-port"), loopback=opt("--hil-loopback"))
    make = request.getfixturevalue("emulator_factory")
    return hil.Target.of_emulator(make(channel=3))


def verdict(res: hil.CheckResult) -> hil.CheckResult:
    print(f"\n{res.name}: {res.status} {res.detail} {res.figures} ({res.seconds} s)")
    if res.status == hil.SKIP:
        pytest.skip(res.detail)
    assert res.status == hil.PASS, res.detail
    return res


@pytest.mark.timeout(30)
def test_a_voice_dump_arrives_and_reads_back_identical(target):
    verdict(hil.check_voice_dump(target, seed=4))


@pytest.mark.timeout(120)
def test_a_60_second_performance_leaves_the_synth_holding_the_intended_voice(target):
    """Real time, dx7 profile, over the real port: byte-for-byte identical voice at the end, every
    message received as sent and valid, the sender within the 2500 B/s budget and the receiver
    under DIN's 3125 B/s in every 1-s window."""
    res = verdict(hil.check_performance(target, duration_s=60.0))
    assert res.figures["messages"] > 100 and res.figures["sender_busiest_second_bytes"] <= 2500


@pytest.mark.timeout(60)
def test_knob_to_receiver_latency_and_jitter(target):
    res = verdict(hil.check_latency(target))
    lat = res.figures["knob_to_receiver_ms"]
    # Expected: one ADC scan (4.8 ms) + the loop + one JACK period (21.3 ms at 1024 frames / 48 kHz);
    # measured p50 16.7 ms on a quiet machine (`dxmacro hil --emulate --report`, docs/hil.md). This
    # machine is shared, so the test only catches a pump that holds messages back by a large
    # multiple (it saw 45 ms under a parallel TensorFlow job): the figure itself is a benchmark's.
    assert 0 < lat["p50"] < 250 and res.figures["answered"] >= 18


@pytest.mark.timeout(60)
def test_the_device_recovers_when_the_port_vanishes_and_returns(target):
    verdict(hil.check_recovery(target))


@pytest.mark.timeout(120)
def test_audio_from_the_synths_voice_equals_the_intended_voices(target):
    pytest.importorskip("dexed", reason="rendering needs dexed-py (the host extra)")
    from host_training.audio.render import DexedRenderer

    renderer = DexedRenderer(44100)
    verdict(hil.check_audio(target, renderer=renderer))
    # the synth now holds the check's own voice: another intended voice must sound different
    other = Voice.init().replace({"algorithm": 31, "op1_freq_coarse": 3}, name="NOT HELD")
    assert hil.check_audio(target, intended=other, renderer=renderer).status == hil.FAIL
    assert hil.check_audio(target).status == hil.SKIP  # no renderer passed in: said, not failed


@pytest.mark.timeout(60)
def test_killing_jack_mid_check_fails_loudly_and_does_not_hang(request, jack, emulator_factory):
    if request.config.getoption("--hil-port"):
        pytest.skip("kills the private JACK server: emulation only")
    target = hil.Target.of_emulator(emulator_factory(channel=1))
    results: list[hil.CheckResult] = []
    worker = threading.Thread(target=lambda: results.append(hil.check_performance(target, duration_s=4.0)))
    t0 = time.monotonic()
    worker.start()
    time.sleep(1.5)
    jack.expected_death = True
    jack.kill()
    worker.join(timeout=20)
    assert not worker.is_alive(), "the check hung after jackd died"
    (res,) = results
    assert res.status == hil.FAIL and ("JACK" in res.detail or "gone" in res.detail), res.detail
    assert time.monotonic() - t0 < 4.0 + 0.3 + 10


@pytest.mark.timeout(60)
def test_dxmacro_hil_writes_a_report(request, emulator_factory, tmp_path, capsys):
    import json

    from dxmacro.cli import main

    if request.config.getoption("--hil-port"):
        pytest.skip("runs against the emulated DX7")
    emu = emulator_factory(channel=2)
    report = tmp_path / "hil.json"
    code = main(["hil", "--port", emu.input_port, "--reply-port", emu.output_port, "--api", "jack", "--channel", "2",
                 "--duration", "5", "--only", "voice_dump", "--only", "performance", "--report", str(report)])
    out = capsys.readouterr().out
    assert code == 0, out
    doc = json.loads(report.read_text())
    assert doc["passed"] and [c["name"] for c in doc["checks"]] == ["voice_dump", "performance"]
    assert all(c["status"] == "pass" for c in doc["checks"]) and "PASS" in out
    # a port that is not there: every check fails with the reason, exit 1, no traceback
    code = main(["hil", "--port", "no-such-synth", "--api", "jack", "--only", "voice_dump", "--report", str(report)])
    assert code == 1 and "no MIDI port 'no-such-synth'" in json.loads(report.read_text())["checks"][0]["detail"]
    assert main(["hil"]) == 1 and "either --port" in capsys.readouterr().err
