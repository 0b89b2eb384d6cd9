"""A recording's note-off (release start) read from its sound (host_training.audio.release), on
voices rendered by Dexed's engine at known holds: sustained, decaying while held (piano-like),
slow and long releases, no release; the release kept in the file or cut; loud and 40 dB down."""

import numpy as np
import pytest

from dx7 import Voice
from dx7.params import param
from host_training.audio.release import read_note_off

pytest.importorskip("dexed", reason="dexed-py (the renderer) is not installed")
from host_training.audio.render import DexedRenderer, Note  # noqa: E402
from host_training.jobs.timing import fast_logmel  # noqa: E402

RATE = 22050
HOLDS = (0.3, 1.0, 1.5, 3.0)
TOL_S = 0.02  # the read note-off is this close to the one played (under one STFT hop, 23 ms)


def voice(**eg: int) -> Voice:
    """The init voice (one sine carrier) with its envelope's rates and levels set."""
    p = Voice.init().parameters.copy()
    for name, value in eg.items():
        p[param(f"op1_{name}").index] = value
    return Voice.from_parameters(p, "T")


HEARD = {  # voices whose release the sound shows
    "sustained, instant release": voice(),
    "sustained, slow release": voice(eg_rate4=45),
    "decaying while held, faster release": voice(eg_rate2=45, eg_level2=90, eg_rate3=35, eg_level3=0, eg_rate4=60),
    "decaying while held, slow release": voice(eg_rate2=50, eg_level2=90, eg_rate3=30, eg_level3=0, eg_rate4=45),
}


def render(v: Voice, hold: float, length: float, gain_db: float = 0.0) -> np.ndarray:
    return DexedRenderer(RATE).render(v, Note(60, 100, hold, length)).astype(np.float64) * 10 ** (gain_db / 20)


@pytest.mark.parametrize("kind", list(HEARD))
@pytest.mark.parametrize("gain_db", [0.0, -40.0])
def test_the_release_start_is_read_at_any_hold_and_level(kind, gain_db):
    for hold in HOLDS:
        off = read_note_off(render(HEARD[kind], hold, hold + 0.5, gain_db), RATE)
        assert off.ended == "release" and abs(off.hold - hold) <= TOL_S, (hold, off)


@pytest.mark.parametrize("kind", list(HEARD))
def test_a_file_cut_at_the_note_off_has_no_release_to_read(kind):
    """Cut at the note-off: nothing is heard, and the note is judged held to the end."""
    for hold in HOLDS:
        off = read_note_off(render(HEARD[kind], hold, hold), RATE)
        assert off.hold is None and off.ended == "held", (hold, off)


def test_a_release_read_in_a_noise_floor_under_the_note():
    audio = render(HEARD["sustained, slow release"], 1.0, 2.0, -20.0)
    noisy = audio + np.random.default_rng(0).normal(0, 10 ** (-80 / 20), audio.size)
    off = read_note_off(noisy, RATE, noise_db=-80.0)
    assert off.ended == "release" and abs(off.hold - 1.0) <= TOL_S


@pytest.mark.parametrize("rate4", [0, 30])
def test_a_release_too_slow_to_hear_is_not_read(rate4):
    """No release (rate 0: it sustains after the key is let go) or one slower than about 10 dB/s:
    the sound does not show the note-off and none is claimed (`match` judges it held to the end)."""
    v = voice(eg_rate4=rate4)
    for hold in (0.3, 1.5):
        off = read_note_off(render(v, hold, hold + 0.5), RATE)
        assert off.hold is None and off.ended == "held"
        if rate4 == 0:  # ... which is nearly the same sound (rate 0 still falls a little: 0.7 dB measured)
            played, judged = (fast_logmel(render(v, h, hold + 0.5), RATE) for h in (hold, hold + 0.5))
            assert float(np.mean(np.abs(played - judged))) < 1.0


def test_a_note_that_dies_while_held_shows_no_note_off():
    """A percussive voice silent long before the note-off: "died" (match then judges it held to the end)."""
    v = voice(eg_rate1=99, eg_rate2=60, eg_level2=0, eg_level3=0, eg_rate4=99)
    off = read_note_off(render(v, 2.0, 2.5), RATE)
    assert off.hold is None and off.ended == "died" and off.sounding_s < 1.5


CORPUS = __import__("pathlib").Path(__file__).resolve().parents[1] / ".." / "shared" / "dx7" / "corpus"


def corpus_voices(n: int, seed: int = 0) -> list[Voice]:
    from dx7.files import read_voice_file

    files = sorted(CORPUS.glob("*.syx"))
    picked = np.random.default_rng(seed).choice(len(files), n, replace=False)
    return [read_voice_file(files[int(i)]).voices[int(i) % 32].voice for i in picked]


@pytest.mark.skipif(not CORPUS.is_dir(), reason="../shared/dx7/corpus (development data) is not present")
def test_the_note_off_of_real_voices_is_read_or_does_not_matter():
    """48 corpus voices (one a file, drawn), note 60, held 0.3 / 1.0 / 3.0 s, the release kept
    (0.5 s) or cut: the hold read is within 25 ms, or the voice itself judged at the hold read
    is within 0.25 dB of the recording (the note died while held, a release as slow as the
    decay). Measured: 80 % of the 286 cases that sound (scripts/hold_bench.py measures the data set's)."""
    r = DexedRenderer(RATE)
    right = []
    for v in corpus_voices(48):
        for hold in (0.3, 1.0, 3.0):
            for length in (hold + 0.5, hold):
                audio = r.render(v, Note(60, 100, hold, length)).astype(np.float64)
                if 10 * np.log10(np.mean(audio ** 2) + 1e-24) < -60:
                    continue
                off = read_note_off(audio, RATE)
                read = length if off.hold is None else off.hold
                judged = float(np.mean(np.abs(fast_logmel(r.render(v, Note(60, 100, read, length)), RATE)
                                              - fast_logmel(audio, RATE))))
                right.append(abs(read - hold) <= 0.025 or judged <= 0.25)
    assert len(right) >= 250 and np.mean(right) >= 0.75, np.mean(right)
