"""The dxmacro command: real files in, real files out, one-line errors."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dx7 import Voice, read_voice_file
from dx7.files import encode_banks
from dxmacro.cli import main


@pytest.fixture
def bank(tmp_path: Path) -> Path:
    voices = [Voice.init().replace({"algorithm": i % 32, "op1_output_level": 60 + i}, name=f"CLI {i}") for i in range(32)]
    voices[5] = voices[4].replace(name="COPY")
    path = tmp_path / "bank.syx"
    path.write_bytes(encode_banks(voices))
    return path


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_inspect_text_and_json(capsys, bank):
    code, out, _ = run(capsys, "voices", "inspect", str(bank))
    assert code == 0 and "32 voices, 31 distinct, 0 clamped" in out and "CLI 7" in out
    code, out, _ = run(capsys, "voices", "inspect", "--json", str(bank))
    doc = json.loads(out)
    assert doc["voices"] == 32 and doc["list"][3]["name"].strip() == "CLI 3" and doc["list"][3]["algorithm"] == 4


def test_convert_bank_json_singles_round_trip(capsys, bank, tmp_path):
    js, singles, back = tmp_path / "v.json", tmp_path / "s.syx", tmp_path / "back.syx"
    assert run(capsys, "voices", "convert", str(bank), "--out", str(js))[0] == 0
    assert run(capsys, "voices", "convert", str(js), "--out", str(singles), "--to", "singles")[0] == 0
    assert singles.stat().st_size == 32 * 163
    assert run(capsys, "voices", "convert", str(singles), "--out", str(back))[0] == 0
    assert back.read_bytes() == bank.read_bytes()
    code, out, _ = run(capsys, "voices", "convert", str(bank), "--out", str(tmp_path / "d.json"), "--dedupe")
    assert code == 0 and "31 voices" in out and "1 duplicates dropped" in out


def test_render_writes_a_wav(capsys, bank, tmp_path):
    pytest.importorskip("dexed", reason="dexed-py is not installed")
    from host_training.audio.render import read_wav

    wav = tmp_path / "x.wav"
    code, out, _ = run(capsys, "render", "--voices", str(bank), "--index", "3", "--note", "60", "--velocity", "100",
                       "--hold", "0.75", "--duration", "1.0", "--rate", "44100", "--out", str(wav))
    assert code == 0 and "CLI 3" in out
    audio, rate = read_wav(str(wav))
    assert rate == 44100 and len(audio) == 44100 and abs(audio).max() > 0.001


@pytest.mark.parametrize("cut", [0, 4, 11, 30, 50])
def test_a_wav_cut_short_is_one_error_naming_it(tmp_path, cut):
    from scipy.io import wavfile

    from dxmacro.errors import DxmacroError
    from host_training.audio.render import read_wav

    whole = tmp_path / "whole.wav"
    wavfile.write(whole, 22050, np.zeros(100, np.int16))
    wav = tmp_path / "cut.wav"
    wav.write_bytes(whole.read_bytes()[:cut])
    with pytest.raises(DxmacroError, match=f"{wav}: cannot read WAV"):
        read_wav(str(wav))


@pytest.mark.parametrize("argv, fragment", [
    (["voices", "inspect", "{missing}"], "cannot read"),
    (["voices", "inspect", "{corrupt}"], "checksum"),
    (["render", "--voices", "{bank}", "--index", "40", "--out", "{out}"], "out of range"),
    (["render", "--voices", "{bank}", "--note", "200", "--out", "{out}"], "note must be"),
    (["voices", "convert", "{bank}", "--out", "{nodir}"], "does not exist"),
    # outputs that cannot be written, refused before any slow work
    (["voices", "convert", "{bank}", "--out", "{folder}"], "is a folder"),
    (["evaluate", "--run", "{folder}", "--data", "{folder}", "--out", "{file}/report"], "exists and is not a folder"),
    (["train", "--data", "{folder}", "--out", "{file}"], "exists and is not a folder"),
    (["dataset", "build", "--voices", "{bank}", "--out", "{file}/data"], "exists and is not a folder"),
])
def test_bad_input_is_one_line_and_nonzero(capsys, bank, tmp_path, argv, fragment):
    corrupt = tmp_path / "corrupt.syx"
    data = bytearray(bank.read_bytes())
    data[4102] ^= 0x01
    corrupt.write_bytes(bytes(data))
    (tmp_path / "afile").write_text("not a folder")
    names = {"missing": tmp_path / "none.syx", "corrupt": corrupt, "bank": bank, "out": tmp_path / "o.wav",
             "nodir": tmp_path / "no" / "such" / "x.syx", "folder": tmp_path, "file": tmp_path / "afile"}
    code, out, err = run(capsys, *[a.format(**{k: str(v) for k, v in names.items()}) for a in argv])
    assert code == 1 and fragment in err and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "o.wav").exists()


def test_usage_errors_and_entry_point(bank):
    proc = subprocess.run([sys.executable, "-m", "dxmacro", "render", "--voices", str(bank)], capture_output=True,
                          text=True)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "--out" in proc.stderr
    proc = subprocess.run([sys.executable, "-m", "dxmacro", "voices", "inspect", str(bank)], capture_output=True,
                          text=True)
    assert proc.returncode == 0 and "32 voices" in proc.stdout
    assert len(read_voice_file(bank).voices) == 32


def test_synth_writes_valid_banks(capsys, tmp_path):
    pytest.importorskip("dexed", reason="dexed-py is not installed")
    out = tmp_path / "syn.syx"
    code, text, _ = run(capsys, "voices", "synth", "-n", "40", "--seed", "2", "--out", str(out))
    assert code == 0 and out.stat().st_size == 2 * 4104
    voices = read_voice_file(out).voices
    assert len({lv.voice.content_key() for lv in voices[:40]}) == 40 and not any(lv.dirty for lv in voices)


def test_what_the_file_system_refuses_is_one_line_naming_the_path():
    """OSError reaches the CLI edge as one line (cli.main catches it): the rename's target, not
    its temporary file, and what is in the way."""
    from dxmacro.cli import os_error_message

    renamed = IsADirectoryError(21, "Is a directory", "/t/.bank.syx.x1.tmp", None, "/t/bank.syx")
    assert os_error_message(renamed) == "/t/bank.syx: Is a directory (a folder is where a file goes)"
    assert os_error_message(FileExistsError(17, "File exists", "/t/report")) == \
        "/t/report: File exists (a file is where a folder goes)"
    assert os_error_message(PermissionError(13, "Permission denied", "/t/in.syx")) == "/t/in.syx: Permission denied"
    assert os_error_message(OSError(28, "No space left on device")) == "No space left on device"
