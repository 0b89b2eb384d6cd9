"""Config validation and the device CLI's edges: clear one-line errors, no tracebacks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from device.control.config import load_config
from dxmacro.cli import main
from dxmacro.errors import DxmacroError

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "device" / "config.example.toml"


def test_the_example_config_loads():
    cfg = load_config(EXAMPLE)
    assert cfg.profile == "dx7" and cfg.byte_rate == pytest.approx(2500.0)
    assert [k.channel for k in cfg.knobs] == [0, 1, 2, 3]
    assert cfg.knobs[1].curve == "centre" and cfg.knobs[2].invert and cfg.knobs[3].range == (-2.0, 2.0)
    assert cfg.bank_file == EXAMPLE.parent / "voices.syx"
    assert cfg.buttons == {"next": 5, "previous": 6, "random": 13, "store": 19, "panic": 26}
    assert cfg.leds == {"link": 17, "activity": 27} and cfg.adc_addresses == (0x48,) and cfg.midi_api == "alsa"


@pytest.mark.parametrize("text,words", [
    ("[midi]\nprofile = 'dx8'", "[midi] profile must be one of dx7, dexed, cc, dexed_live, got 'dx8'"),
    ("[midi]\nbudget_fraction = 0.95", "at most 0.8"),
    ("[midi]\nchanel = 2", "unknown key 'chanel'"),
    ("[midi]\nchannel = 17", "[midi] channel must be in 1..16"),
    ("[midi]\nprofile = 'cc'", "needs a [midi.cc_map]"),
    ("[midi.cc_map]\nop7_output_level = 3", "not a DX7 voice parameter name"),
    ("[adc]\ndata_rate = 900", "data_rate must be one of"),
    ("[knob]\nchannel = 0", "[[knob]] tables"),
    ("[[knob]]\nchannel = 0\n[[knob]]\nchannel = 0", "same ADC channel"),
    ("[[knob]]\nchannel = 0\nrange = [1, 1]", "two different numbers"),
    ("[[knob]]\ncurve = 'wiggly'", "curve must be"),
    ("[model]\ndecoder = 'bundle'", "needs bundle"),
    ("[smoothing]\nbeta = 'fast'", "beta must be float"),
    ("[device]\nrate_hz = true", "rate_hz must be float"),
    ("[midi\nprofile = 1", "not valid TOML"),
    ("[midii]", "unknown section [midii]"),
    ("[display]\nkind = 'png'", "needs png"),
    ("[adc]\naddresses = [0x48, 0x48]", "addresses must be different chip addresses"),
    ("[adc]\naddress = 0x48\naddresses = [0x49]", "either address"),
    ("[adc]\nchannels = 5", "[adc] channels must be in 1..4"),
    ("[adc]\nfull_scale_v = 2.048", "below the pots' supply"),
    ("[adc]\nchip = 'ADS1015'\ndata_rate = 860", "data_rate must be one of 128, 250"),
    ("[midi]\napi = 'coreaudio'", "[midi] api must be one of alsa, jack, din"),
    ("[leds]\nlink = 5\n[buttons]\nnext = 5", "shares a GPIO pin"),
    ("[model]\nbundle = 'a.dxm'\nstore = 'st'", "either bundle"),
])
def test_bad_configs_are_refused_with_a_clear_message(tmp_path, text, words):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(DxmacroError) as exc:
        load_config(path)
    assert words in str(exc.value) and str(path) in str(exc.value) and "\n" not in str(exc.value)


def test_cli_bad_config_is_one_line_and_exit_1(tmp_path, capsys):
    path = tmp_path / "bad.toml"
    path.write_text("[midi]\nprofile = 'dx8'\n")
    assert main(["device", "run", "--config", str(path), "--simulate", "--duration", "1"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("dxmacro: error: ") and "Traceback" not in err and err.count("\n") == 1
    assert main(["device", "run", "--config", str(tmp_path / "missing.toml")]) == 1
    assert "config file not found" in capsys.readouterr().err


def test_cli_without_hardware_says_so(tmp_path, capsys):
    path = tmp_path / "ok.toml"
    path.write_text("")
    assert main(["device", "run", "--config", str(path), "--duration", "1"]) == 1
    assert "--simulate" in capsys.readouterr().err


def test_cli_simulated_run_as_a_process_logs_json_and_exits_0(tmp_path):
    import json

    perf = tmp_path / "perf.toml"
    perf.write_text("duration_s = 2\n[[move]]\nt = 0.1\nknob = 0\nto = 0.0\nover = 0.3\n[[move]]\nt = 0.5\n"
                    "knob = 0\nto = 1.0\nover = 0.5\n[[press]]\nt = 1.2\nbutton = 'store'\n")
    cfg = tmp_path / "dev.toml"
    cfg.write_text("[device]\nbank_file = 'bank.syx'\nstatus_file = 'status.json'\n"
                   "[display]\nkind = 'png'\npng = 'screen.png'\n"
                   "[midi]\nprofile = 'dexed'\n[simulate]\nscript = 'perf.toml'\n")
    proc = subprocess.run([sys.executable, "-m", "dxmacro", "device", "run", "--config", str(cfg), "--simulate",
                           "--duration", "2"], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    events = [json.loads(line)["event"] for line in proc.stderr.splitlines()]
    assert events[0] == "self_test" and "start" in events and "store" in events and events[-1] == "stop"
    assert "MIDI messages" in proc.stdout
    assert (tmp_path / "screen.png").stat().st_size > 100 and (tmp_path / "bank.syx").stat().st_size == 4104
    status = json.loads((tmp_path / "status.json").read_text())  # the flash service's view (docs/flashing.md)
    assert status["healthy"] is True and status["model"]["file"] == "linear" and status["midi"]["state"] == "connected"
    assert [k["name"] for k in status["knobs"]] == ["bright", "attack", "motion", "body"]
    assert 0 <= status["knobs"][0]["value"] <= 1 and status["last_tick"] <= status["monotonic"]


def test_bad_performance_script_is_a_clear_error(tmp_path, capsys):
    perf = tmp_path / "perf.toml"
    perf.write_text("duration_s = 2\n[[press]]\nt = 1\nbutton = 'explode'\n")
    cfg = tmp_path / "dev.toml"
    cfg.write_text("[simulate]\nscript = 'perf.toml'\n")
    assert main(["device", "run", "--config", str(cfg), "--simulate", "--duration", "1"]) == 1
    assert "button must be one of" in capsys.readouterr().err


def test_device_side_never_imports_the_host_stack():
    code = ("import sys, pkgutil, importlib, device\n"
            "names = [m.name for m in pkgutil.walk_packages(device.__path__, 'device.')]\n"
            "assert 'device.control.loop' in names and 'device.bench.demo' in names, names\n"
            "for name in names: importlib.import_module(name)\n"
            "import dxmacro.commands.device, dxmacro.commands.bench\n"
            "bad = [m for m in ('torch', 'tensorflow', 'dexed', 'host_training', 'matplotlib') if m in sys.modules]\n"
            "print(bad); sys.exit(1 if bad else 0)")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
