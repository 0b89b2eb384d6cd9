"""The evaluation's foreign sounds play like an instrument: at the note asked, louder with
velocity, quieter after note-off, the same every time."""

import numpy as np
import pytest

from host_training.audio.foreign_sounds import KINDS, ForeignSound, sounds
from host_training.audio.pitch import sounding_note
from host_training.audio.sound import SILENCE_DB, level_db

RATE, HOLD, DURATION = 22050, 1.5, 2.0


def play(sound: ForeignSound, note: int = 60, velocity: int = 100) -> np.ndarray:
    return sound.play(note, velocity, HOLD, DURATION, RATE).astype(np.float64)


def test_every_kind_is_drawn_and_each_draw_is_repeatable():
    drawn = sounds(10, 3)
    assert [s.kind for s in drawn[:len(KINDS)]] == list(KINDS) and len({s.name for s in drawn}) == 10
    assert np.array_equal(play(drawn[0]), play(sounds(10, 3)[0]))
    assert not np.allclose(play(drawn[0]), play(drawn[len(KINDS)]))  # same kind, another instrument


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("note", [48, 60, 72])
def test_a_note_sounds_within_full_scale_and_stops_after_note_off(kind, note):
    audio = play(ForeignSound(kind, 11), note)
    assert audio.shape == (int(DURATION * RATE),) and np.all(np.isfinite(audio)) and np.abs(audio).max() <= 1.0
    assert level_db(audio) > SILENCE_DB
    held = audio[int(0.2 * RATE):int(HOLD * RATE)]
    tail = audio[int((HOLD + 0.3) * RATE):]
    assert level_db(tail) < level_db(held) - 10


@pytest.mark.parametrize("kind", [k for k in KINDS if k != "bell"])  # a bell's partials are inharmonic
@pytest.mark.parametrize("note", [48, 60, 72])
def test_a_harmonic_sound_is_heard_at_the_note_played(kind, note):
    """Up to an octave: an organ with its 16' drawbar pulled sounds an octave under the key."""
    off = sounding_note(play(ForeignSound(kind, 5), note), RATE) - note
    assert abs(off - 12 * round(off / 12)) < 0.5 and abs(off) <= 12.5


def test_velocity_is_a_gain():
    s = ForeignSound("organ", 2)
    assert np.allclose(play(s, velocity=60), play(s, velocity=100) * 60 / 100, atol=1e-6)
