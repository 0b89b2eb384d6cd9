"""`dxmacro match` reads a recording from its note (onset, noise floor, level, pitch), on real renders."""

from dataclasses import replace

import numpy as np
import pytest

from dx7 import Voice
from dx7.params import param
from host_training.audio.onset import ONSET_FRAME_S, find_onset
from host_training.jobs.match import _note_mel, one_octave, prepare
from host_training.audio.sound import RenderSettings, features_of

pytest.importorskip("dexed", reason="dexed-py (the renderer) is not installed")
from host_training.audio.render import DexedRenderer, Note  # noqa: E402

RATE = 22050
SETTINGS = RenderSettings(((60, 100),), RATE, 1.5, 2.0)
FRAME = int(round(RATE * ONSET_FRAME_S))
LEAD = int(0.4 * RATE)


def render(attack_rate: int) -> np.ndarray:
    """The init voice (one sine carrier) with its attack rate set: 99 is instant, 30 takes a second."""
    p = Voice.init().parameters.copy()
    p[param("op1_eg_rate1").index] = attack_rate
    return DexedRenderer(RATE).render(Voice.from_parameters(p, "A"), Note(60, 100, 1.5, 2.0)).astype(np.float64)


def mae(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean(np.abs(a - b)))


@pytest.mark.parametrize("attack", [99, 50, 30])
def test_a_render_that_begins_at_note_on_is_not_cut(attack):
    onset = find_onset(render(attack), RATE)
    assert onset.start == 0 and onset.noise_db is None


@pytest.mark.parametrize("attack", [99, 50])
def test_leading_silence_is_skipped(attack):
    audio = render(attack)
    recording = np.concatenate([np.zeros(LEAD), audio])
    onset = find_onset(recording, RATE)
    assert LEAD - FRAME < onset.start <= LEAD and onset.noise_db is None
    clean = prepare(audio, RATE, SETTINGS).features
    rec = prepare(recording, RATE, SETTINGS)
    assert abs(rec.skipped_s - 0.4) < ONSET_FRAME_S and rec.noise_db is None
    uncut = features_of(recording[: len(audio)].astype(np.float32), RATE)[0]
    assert mae(rec.features, clean) < 0.5 < 5.0 < mae(uncut, clean)


@pytest.mark.parametrize("hum", [False, True])
def test_a_noise_floor_before_the_note_is_heard_and_taken_out(hum):
    audio = render(50)
    recording = np.concatenate([np.zeros(LEAD), audio])
    noise = np.random.default_rng(0).normal(0, 10 ** (-80 / 20), recording.size)
    if hum:  # mains hum 6 dB over the hiss
        noise += 10 ** (-74 / 20) * np.sin(2 * np.pi * 50 * np.arange(recording.size) / RATE)
    rec = prepare(recording + noise, RATE, SETTINGS)
    assert abs(rec.skipped_s - 0.4) < 2 * ONSET_FRAME_S
    assert rec.noise_db is not None and abs(rec.noise_db - (-75.2 if hum else -80.0)) < 1.0
    clean = prepare(audio, RATE, SETTINGS).features
    start = int(round(rec.skipped_s * RATE))
    note = (recording + noise)[start:start + len(audio)]
    left_in = features_of(np.pad(note, (0, len(audio) - len(note))).astype(np.float32), RATE)[0]
    # measured: 5.2-5.5 dB from the clean features with the floor taken out, 11.9-12.4 dB with it left in
    assert mae(rec.features, clean) < 0.5 * mae(left_in, clean)


def test_noise_without_a_lead_in_is_left_in():
    """A recording that starts with the note gives no noise floor to measure: nothing is taken out."""
    audio = render(99)
    noisy = audio + np.random.default_rng(1).normal(0, 10 ** (-80 / 20), audio.size)
    rec = prepare(noisy, RATE, SETTINGS)
    assert rec.noise_db is None and rec.skipped_s == 0.0
    assert np.array_equal(rec.features, features_of(noisy.astype(np.float32), RATE)[0].astype(np.float32))


@pytest.mark.parametrize("rate", [RATE, 44100])
def test_a_dc_offset_before_the_note_is_read_there_and_taken_out(rate):
    """An interface's DC offset (here 1 % of full scale, -40 dBFS) under the whole recording:
    the note is still found where it starts, and the features are those of the clean note."""
    audio = render(50)
    recording = np.concatenate([np.zeros(LEAD), audio, np.zeros(RATE // 2)]) + 0.01
    if rate != RATE:
        from scipy.signal import resample_poly
        recording = resample_poly(recording - 0.01, 2, 1) + 0.01  # recorded at 44.1 kHz with the same offset
    assert abs(find_onset(recording, rate).start / rate - 0.4) < 2 * ONSET_FRAME_S
    rec = prepare(recording, RATE if rate == RATE else rate, SETTINGS)
    clean = prepare(audio, RATE, SETTINGS).features
    assert abs(rec.skipped_s - 0.4) < 2 * ONSET_FRAME_S and rec.noise_db is None
    # measured: 0.16 dB (0.21 at 44.1 kHz); with the offset left in, the note was found at sample 0 (9.7 dB)
    assert mae(rec.features, clean) < 0.5


def test_a_dc_offset_alone_is_silence():
    from dxmacro.errors import DxmacroError

    with pytest.raises(DxmacroError, match="silent.*DC offset aside"):
        prepare(np.full(RATE, -1.0), RATE, SETTINGS)


def test_a_gain_on_the_recording_is_a_gain_on_its_features():
    audio = render(50)
    quiet = prepare(audio * 10 ** (-12 / 20), RATE, SETTINGS)
    assert mae(quiet.features, prepare(audio, RATE, SETTINGS).features) > 5.0
    assert np.max(np.abs(quiet.at(12.0) - prepare(audio, RATE, SETTINGS).features)) < 0.01


def brightness_voices() -> list[Voice]:
    """The init voice's sine carrier with its modulator (op2, algorithm 1) at five levels:
    one pitch, five timbres, levels within a few dB of each other."""
    voices = []
    for level in (0, 50, 65, 78, 90):
        p = Voice.init().parameters.copy()
        p[param("op2_output_level").index] = level
        voices.append(Voice.from_parameters(p, f"MOD{level}"))
    return voices


@pytest.mark.parametrize("offset", [-18.0, -6.0, 9.0])
def test_retrieval_reads_the_gain_of_a_recording_played_at_another_level(offset):
    from host_training.model.baselines import Retrieval

    renderer = DexedRenderer(RATE)
    audio = [renderer.render(v, Note(60, 100, 1.5, 2.0)).astype(np.float64) for v in brightness_voices()]
    feats = np.stack([prepare(a, RATE, SETTINGS).features for a in audio])[:, None]  # (voices, 1 note, mels, frames)
    retrieval = Retrieval(feats, np.zeros((len(audio), 145)))
    for i, a in enumerate(audio):
        rec = prepare(a * 10 ** (offset / 20), RATE, SETTINGS)
        index, slot, gain = retrieval.query_level_free(rec.at, 128, window_db=12.0)
        assert (index, slot) == (i, 0) and abs(gain + offset) <= 0.5


@pytest.mark.parametrize("note", [38, 61, 66, 83])
def test_the_note_of_a_harmonic_tone_is_heard(note):
    from host_training.audio.pitch import sounding_note

    t = np.arange(RATE) / RATE
    f0 = 440.0 * 2 ** ((note - 69) / 12)
    tone = sum(np.sin(2 * np.pi * h * f0 * t) / h for h in range(1, 9) if h * f0 < RATE / 2)
    assert abs(sounding_note(tone, RATE) - note) <= 0.25


@pytest.mark.parametrize("note", [50, 66, 77])
def test_the_note_of_a_sine_voice_is_heard(note):
    from host_training.audio.pitch import sounding_note

    audio = DexedRenderer(RATE).render(Voice.init(), Note(note, 100, 1.5, 2.0))
    assert round(sounding_note(audio, RATE)) == note


def test_a_note_moved_onto_the_grid_sounds_like_the_grid_note_at_its_own_speed():
    """A voice that decays over two seconds, played at F#4 and moved down 6 semitones, reads
    like the same voice played at C4: partials and envelope both (the resampling alone would
    stretch the decay by 41 %)."""
    p = Voice.init().parameters.copy()
    p[param("op2_output_level").index] = 70  # partials to line up, not just one sine
    p[param("op1_eg_rate2").index] = 45  # a decay that the held note shows
    p[param("op1_eg_level2").index] = 0
    voice = Voice.from_parameters(p, "DECAY")
    at = {n: prepare(DexedRenderer(RATE).render(voice, Note(n, 100, 1.5, 2.0)), RATE, SETTINGS) for n in (60, 66)}
    moved = at[66].shifted(-6)
    stretched = replace(moved, mel=_note_mel(moved.note, None, RATE, moved.frames))  # resampled, frames not read back
    # measured: 1.9 dB from C4 moved, 8.2 dB not moved, 4.7 dB moved by resampling alone
    assert mae(moved.features, at[60].features) < 0.5 * mae(at[66].features, at[60].features)
    assert mae(moved.features, at[60].features) < 0.5 * mae(stretched.features, at[60].features)


def test_several_recordings_keep_the_intervals_heard_between_them():
    assert one_octave([57, 69], [69, 57]) == [57, 69]  # guesses an octave off each way: the median moves nothing
    assert one_octave([54, 66, 78], [66, 78, 66]) == [66, 78, 90]  # two of three guess an octave up
    assert one_octave([60, 64, 67], [48, 52, 55]) == [48, 52, 55]  # agreed: the guesses themselves
    assert one_octave([120, 100], [132, 112]) == [120, 112]  # 132 is off the keyboard: an octave down


def sustained(release_rate: int = 60) -> Voice:
    """The init voice (one sine carrier, full sustain) with a release that is heard."""
    p = Voice.init().parameters.copy()
    p[param("op1_eg_rate4").index] = release_rate
    return Voice.from_parameters(p, "S")


def test_the_judges_log_mel_is_the_data_sets():
    from host_training.jobs.timing import fast_logmel

    r = DexedRenderer(RATE)
    audio = r.render(sustained(), Note(60, 100, 1.0, 1.7))
    other = r.render(Voice.init(), Note(60, 100, 1.0, 1.7))
    assert np.abs(fast_logmel(audio, RATE) - features_of(audio, RATE)[0]).max() < 0.05
    fast = mae(fast_logmel(audio, RATE), fast_logmel(other, RATE))
    assert abs(fast - mae(features_of(audio, RATE)[0], features_of(other, RATE)[0])) < 1e-3 and fast > 1.0


@pytest.mark.parametrize("hold, length", [(0.45, 1.0), (1.2, 1.7), (0.8, 0.8)])
def test_the_note_off_is_read_from_the_recording(hold, length):
    """The release start is read by listening: the voice itself renders closest at the hold played
    (within one STFT hop); a file that ends while the key is held reads as held to the end."""
    from host_training.jobs.timing import Take, read_hold

    r = DexedRenderer(RATE)
    v = sustained()
    feat = features_of(r.render(v, Note(60, 100, hold, length)), RATE)[0]
    take = Take(feat, 60, 100, length, length)
    other = Voice.init().parameters  # the init voice's release is fast: a second candidate, farther
    read, d = read_hold(r, [v.parameters, other], take)
    assert abs(read - hold) <= 512 / RATE + 1e-9 and d < 0.5
    # judged at the hold read the voice is the recording; at the file's end it is not (when released)
    late = Take(feat, 60, 100, length, length)
    from host_training.jobs.timing import distance

    if hold < length:
        assert distance(r, v.parameters, late) > 3.0


def test_retrieval_compares_only_the_frames_both_hold_the_key_for():
    from host_training.jobs.timing import shared_columns

    s = RenderSettings(((60, 100),), RATE, 1.5, 2.0)
    assert shared_columns(0.3, s, 4) == 2  # frames 0-10 end before 0.3 s: two pooled columns of four
    assert shared_columns(3.0, s, 4) == shared_columns(1.5, s, 4) == 15  # the data set's own note-off
    assert shared_columns(0.01, s, 4) == 1


def test_a_voice_whose_sound_starts_late_is_judged_from_its_own_onset():
    """A recording is read from where its note is heard; a candidate is heard the same way, as far
    as the file has room before that for its note-on: a voice gated by a square LFO that starts in
    its silent half is judged next to nothing from its own recording, where judged from its
    note-on it would be off by the delay."""
    from host_training.jobs.timing import Take, distance, fast_logmel

    p = Voice.init().parameters.copy()
    for name, value in {"lfo_wave": 3, "lfo_am_depth": 99, "lfo_speed": 41, "lfo_key_sync": 1,
                        "op1_amp_mod_sens": 3}.items():
        p[param(name).index] = value
    v = Voice.from_parameters(p, "LATE")
    r = DexedRenderer(RATE)
    rec = prepare(r.render(v, Note(60, 100, 1.0, 1.5)).astype(np.float64), RATE, SETTINGS)
    assert rec.skipped_s > 0.05  # the sound starts well after the note-on
    take = Take(rec.own_at(0.0), 60, 100, rec.length_s, 1.0 - rec.skipped_s, lead=rec.skipped_s)
    assert distance(r, v.parameters, take) < 0.1
    from_note_on = fast_logmel(r.render(v, Note(60, 100, take.hold, take.length)), RATE)
    t = min(from_note_on.shape[1], take.feat.shape[1])
    assert mae(from_note_on[:, :t], take.feat[:, :t]) > 1.0
    # in a file that starts with the note heard, the same voice may not hide its delay: a note-on
    # before the file's start is no note-on, so it is judged with its silence
    at_once = replace(take, lead=0.0)
    assert distance(r, v.parameters, at_once) > 1.0
