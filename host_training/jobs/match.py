"""Sound matching: a recording at any pitch -> a DX7 voice.

A recording is first read from its note (``prepare``: the onset found, the noise floor heard
before it taken out), its note heard (``pitch.sounding_note``) and its gain read against the
training notes (``Matcher.retrieve``); the encoder and the retrieval then read it moved onto
the data set's notes, and every candidate is judged at the recording's own note
(``Matcher.match_recording``; docs/model.md, "Recordings"). `dxmacro evaluate` scores renders
at the data set's notes and level, and calls ``Matcher.match`` directly. Four steps, each
measured in docs/results.md:
1. the model: the single-note encoding (the encoder is note-agnostic, trained with
   single-note inputs and the contrastive loss) decoded by the head;
2. retrieval: the nearest (training voice, note) pair of pooled log-mel, which also
   estimates the note slot played (when the run's data set is at hand);
3. refinement in the latent space: candidates between the model's latent and the
   retrieved voice's latent, plus small perturbations, are rendered at the estimated note
   and the one closest to the recording (log-mel MAE) wins. The retrieved voice itself is
   a candidate, so the result is never farther from the recording than retrieval;
4. polish in parameter space: a greedy line search over the parameters a listener hears
   most (output levels, coarse frequencies, feedback, attack and release rates; the
   per-step audibility is measured in docs/conversion.md) repeats every move that brings
   the render closer, within a budget of renders. Why not the latent alone: the decoded latent of the
   retrieved voice is not the voice itself (the head's error is larger than a near-copy's),
   so latent moves rarely beat the retrieved voice (docs/results.md).

Every voice decoded from the latent gets its register (transpose) read at the note first
(host_training.jobs.register): the pitch-independent latent cannot hold it.

Several recordings of one sound (one note each) are matched by one voice
(``Matcher.match_recordings``, ``Matcher.match_notes``): every step above judged by the mean
distance over them, each at its own note (docs/model.md, "Several notes").
"""

from __future__ import annotations

import copy
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from dx7 import Voice, layout
from dx7.params import param
from dxmacro.errors import DxmacroError
from host_training.audio.pitch import sounding_note
from host_training.audio.onset import find_onset
from host_training.audio.release import NoteOff, read_note_off
from host_training.jobs.register import read_register
from host_training.jobs.search import greedy_moves
from host_training.audio.features import N_FFT
from host_training.audio.sound import (SILENCE_DB, RenderSettings, VoiceRenderer, feature_distance, notes_distance,
                                  level_db, mean_mel_power, mel_distance, mel_power, to_db)


@dataclass(frozen=True)
class MatchResult:
    voice: Voice
    source: str  # "model", "retrieval" or "refined", with "+polish" when the polish moved it
    distance_db: float  # mean log-mel distance over the notes matched
    notes: tuple[int, ...]  # the MIDI note each input was judged at
    gains_db: tuple[float | None, ...] = ()  # the gain each recording was matched at (None: as recorded, none read)
    velocities: tuple[int, ...] = ()  # the velocity each recording was judged at
    holds: tuple[float, ...] = ()  # seconds each recording's key was judged held (its note-off)
    lengths: tuple[float, ...] = ()  # seconds from each recording's note-on to its end
    octave: str | None = None  # how sure the octave is, where the note was heard
    ranked: tuple[tuple[Voice, float, str], ...] = ()  # the best distinct voices, best first, with distances
    evals: int = 0  # voices rendered and judged
    held: tuple[str, ...] = ()  # how each note-off was had: "given", read_note_off's "release", "held", "died",
    # "listened" (another hold where a candidate renders much closer: step 4b) or "decaying" (``_how_held``)

    @property
    def note(self) -> int:
        return self.notes[0]

    @property
    def gain_db(self) -> float | None:
        return self.gains_db[0] if self.gains_db else 0.0


def vector_to_voice(vec: np.ndarray, name: str) -> Voice:
    return Voice.from_parameters(layout.decode(vec), name)


NOISE_SUBTRACT = 1.0  # noise power taken out, in multiples of its mean (1 matched best of 1, 2, 4: docs/model.md)
MAX_NOTE_S = 10.0  # a recording is judged over this much from its note-on at most
GAIN_WINDOW_DB = 12.0
DEFAULT_SECONDS = 10.0  # a match's whole time (docs/model.md, "Match: the search")
RESERVE = 0.02  # of the time kept for the last judgement under way at the deadline, and the result
HOLD_VOICES = 3  # best candidates the note-off read from the sound is checked with (and the one-note retrieval's)
OCTAVE_VOICES = 3  # nearest voices over the opening that the octave is heard with (and the model's)
OCTAVE_SURE_DB = 1.0  # an octave this much closer than the next is sure
NEAR_COPY_DB = 1.0  # a candidate this close at the hold heard by listening is the voice: its hold is trusted over
# the one read from the level (a near-copy fits only at the true hold; a far voice fits anywhere a little) ...
LISTENED_SHARE = 0.5  # ... and so is one this much closer than every candidate at the hold read from the level
LISTEN_SHARE = 0.5  # of the time left that listening for the note-off may take (the search has the rest)
DECAYING_DB_S = 10.0  # a release read where the level already fell this fast is searched held to the end too
SEARCH = "greedy+cma"  # the search after the candidates: it measured best at equal time (docs/results.md)
SEARCH_STARTS = 3  # distinct best candidates the search starts from  # a recording's gain is read within this of the data set's median level (docs/model.md)


@dataclass(frozen=True)
class Prepared:
    mel: np.ndarray  # (n_mels, frames) mel power on the data set's grid, noise floor taken out
    skipped_s: float  # seconds of the recording before the note
    noise_db: float | None  # level (dBFS, as recorded) of the noise floor taken out, None if none
    note: np.ndarray  # the samples from the onset on, at ``rate``, twice the data set's duration at most
    lead: np.ndarray | None  # the noise floor before the note, None if none was heard
    rate: int
    frames: int  # samples of the data set's duration
    dc_offset: float = 0.0  # the DC offset taken out (full scale 1.0), read before the note
    own: np.ndarray | None = None  # (n_mels, frames) mel power of the whole note, note-on to the file's end

    @property
    def length_s(self) -> float:
        """Seconds from the note-on to the end of the recording (MAX_NOTE_S at most)."""
        return len(self.note) / self.rate

    def own_at(self, gain_db: float) -> np.ndarray:
        """Log-mel (float32) of the whole note as recorded, played ``gain_db`` louder: what every
        candidate rendered at the recording's own timing is judged against."""
        own = self.mel if self.own is None else self.own
        return to_db(own * 10.0 ** (gain_db / 10.0)).astype(np.float32)

    @property
    def features(self) -> np.ndarray:
        """Log-mel as recorded."""
        return self.at(0.0)

    def at(self, gain_db: float) -> np.ndarray:
        """Log-mel (float32) of the recording played ``gain_db`` louder."""
        return to_db(self.mel * 10.0 ** (gain_db / 10.0)).astype(np.float32)

    def shifted(self, semitones: int) -> Prepared:
        """The recording played ``semitones`` higher, at its own speed: resampled (which moves
        its partials, and its envelope faster by as much: 41 % for 6 semitones), then its
        frames read back at the original times. How a note off the data set's grid is moved
        onto it for the encoder and the retrieval (``Matcher.match_recording``)."""
        from fractions import Fraction

        from scipy.signal import resample_poly

        if semitones == 0:
            return self
        ratio = Fraction(2.0 ** (semitones / 12)).limit_denominator(256)

        def move(x: np.ndarray) -> np.ndarray:
            return resample_poly(x, ratio.denominator, ratio.numerator)

        note = move(self.note)
        lead = None if self.lead is None else move(self.lead)
        mel = _note_mel(note, lead, self.rate, len(note))
        times = np.arange(self.mel.shape[1]) / float(ratio)  # frame i of the original sounds at frame i / ratio
        mel = np.stack([np.interp(times, np.arange(mel.shape[1]), row, right=0.0) for row in mel])
        return replace(self, mel=mel, note=note, lead=lead)


def _note_mel(note: np.ndarray, lead: np.ndarray | None, rate: int, frames: int) -> np.ndarray:
    """Mel power of ``frames`` samples of ``note`` (padded), less the mean mel power of
    ``lead`` when there is at least one STFT window of it."""
    cut = note[:frames]
    mel = mel_power(np.pad(cut, (0, frames - len(cut))).astype(np.float32), rate)[0]
    if lead is not None and len(lead) >= N_FFT:
        mel = mel - NOISE_SUBTRACT * mean_mel_power(lead, rate)[:, None]
    return mel


def prepare(audio: np.ndarray, rate: int, settings: RenderSettings) -> Prepared:
    """A recording -> its note on the data set's grid: resampled, started at the note
    (``find_onset``: leading silence would be matched as a slow attack), cut or padded to the
    data set's duration, with the noise floor heard before the note taken out (renders have
    none; measured in docs/model.md)."""
    from scipy.signal import resample_poly

    a = original = np.asarray(audio, dtype=np.float64)
    if a.size == 0 or not np.all(np.isfinite(a)):
        raise DxmacroError("the recording is empty or holds non-finite samples")
    level = level_db(a - a.mean())  # a DC offset alone is no note
    if level < SILENCE_DB:
        # the features would sit at the absolute floor and any voice would "match" silence
        raise DxmacroError(f"the recording is silent (level {level:.0f} dB, below {SILENCE_DB:.0f} dB"
                           f"{', a DC offset aside' if abs(a.mean()) > 10 ** (SILENCE_DB / 20) else ''}): "
                           "nothing to match")
    before = find_onset(a, int(rate)).start
    offset = float(np.mean(a[:before])) if before > 0 else 0.0
    # the interface's DC offset, read where no note sounds, taken out before the resampling
    # would ring on it: the renders have none (docs/model.md, "Recordings: a DC offset")
    a = original = a - offset
    if rate != settings.rate:
        g = np.gcd(int(rate), settings.rate)
        a = resample_poly(a, settings.rate // g, int(rate) // g)
    onset = find_onset(a, settings.rate)
    lead, noise_db = None, None
    if onset.noise_db is not None and onset.start >= N_FFT:
        lead = a[:onset.start]
        noise_db = level_db(original[: int(onset.start * rate / settings.rate)])  # as recorded, not resampled
    n = int(round(settings.duration * settings.rate))
    # the whole note (room to be moved up, Prepared.shifted; judged over its own length)
    note = a[onset.start:onset.start + max(2 * n, int(MAX_NOTE_S * settings.rate))]
    return Prepared(_note_mel(note, lead, settings.rate, n), onset.start / settings.rate, noise_db, note, lead,
                    settings.rate, n, offset, _note_mel(note, lead, settings.rate, len(note)))


def how_held(rec: Prepared) -> NoteOff:
    """The recording's note-off read from its level (host_training.audio.release), under the noise
    floor heard before the note where there was one."""
    noise = None if rec.lead is None else level_db(rec.lead)
    return read_note_off(rec.note, rec.rate, noise)


def _how_held(take, off: NoteOff) -> str:
    """How a take's note-off was had, for MatchResult.held: the level's reading (``off.ended``),
    "decaying" (a release heard, but judged held to the end: a faster stage of the decay) or
    "listened" (another hold, where a candidate renders much closer)."""
    read = take.length if off.hold is None else off.hold
    if take.hold == read:
        return off.ended
    return "decaying" if take.hold >= take.length and off.ended == "release" else "listened"


POLISH_MOVES = greedy_moves()  # the greedy search's moves (host_training.jobs.search), most audible first


def one_octave(pitches: Sequence[int], guesses: Sequence[int]) -> list[int]:
    """The notes several recordings of one sound are judged at: the ``pitches`` heard, all
    moved by the one octave that most of the retrieval's ``guesses`` (each a recording's pitch
    class in an octave of its own) agree on (the median), and kept on the MIDI keyboard.

    Why: the retrieval guesses each recording's octave on its own, and one guess an octave off
    would ask one voice (one transpose) to fit intervals the recordings do not have."""
    octave = 12 * int(round(float(np.median([(g - p) / 12 for p, g in zip(pitches, guesses)]))))
    out = []
    for p in pitches:
        note = p + octave
        while not 0 <= note <= 127:
            note += 12 if note < 0 else -12
        out.append(note)
    return out


class Matcher:
    def __init__(self, model, settings: RenderSettings, retrieval=None, train_params: np.ndarray | None = None,
                 train_features=None, candidates: int = 12, seed: int = 0, polish_renders: int = 64,
                 register: bool = True, retrieve_k: int = 32) -> None:
        self.model, self.s, self.retrieval = model, settings, retrieval
        self.register = register
        self.retrieve_k = retrieve_k  # training voices judged (at the recording's timing, or by their stored renders)
        self.stored_renders = True  # ``s`` is the data set's: train_features are the training voices' renders
        self.train_params, self.train_features = train_params, train_features
        self.candidates, self.polish_renders = candidates, polish_renders
        self.renderer = VoiceRenderer(settings)
        self.rng = np.random.default_rng(seed)

    @torch.no_grad()
    def model_latent(self, feat: np.ndarray) -> np.ndarray:
        return self.model.encode(torch.from_numpy(feat[None, None].astype(np.float32)))[0].numpy()

    @torch.no_grad()
    def decode(self, z: np.ndarray) -> np.ndarray:
        return self.model.to_vector(torch.from_numpy(np.atleast_2d(z).astype(np.float32))).numpy()

    def distance(self, voice: Voice, feat: np.ndarray, k: int) -> float:
        return feature_distance(self.renderer, voice, feat, k)

    def distance_notes(self, voice: Voice, feats: Sequence[np.ndarray], slots: Sequence[int]) -> float:
        return notes_distance(self.renderer, voice, feats, slots)

    def model_only(self, feat: np.ndarray) -> Voice:
        return vector_to_voice(self.decode(self.model_latent(feat))[0], "MATCH")

    def match(self, feat: np.ndarray, note_slot: int | None = None, name: str = "MATCH",
              heard: np.ndarray | None = None) -> MatchResult:
        """The voice closest to one note ``feat`` at note slot ``note_slot`` (None: the slot of
        the nearest training note, or the middle one without retrieval). ``heard``: the
        features the encoder and the retrieval read instead of ``feat`` (a recording moved to
        a note of the data set's grid; ``feat`` stays the judge)."""
        heard = feat if heard is None else heard
        k, retrieved = note_slot, None
        if k is None and self.retrieval is not None:
            # the nearest (voice, note) gives the slot and the retrieval's voice in one search
            k, retrieved = self.nearest_pair(feat, heard)
        elif k is None:
            k = len(self.s.notes) // 2
        return self.match_notes([feat], [k], name, [heard], [k], retrieved=retrieved)

    def match_notes(self, feats: Sequence[np.ndarray], slots: Sequence[int], name: str = "MATCH",
                    heard: Sequence[np.ndarray] | None = None,
                    heard_slots: Sequence[int | None] | None = None,
                    retrieved: int | None = None) -> MatchResult:
        """The voice closest to several notes of one sound: ``feats[i]`` played at note slot
        ``slots[i]``, closeness the mean log-mel distance over them. The model reads the mean of
        the notes' latents (the contrastive loss makes them one timbre's), the retrieval the
        training voice nearest over all of them, ``heard[i]`` (default ``feats[i]``) against its
        note slot ``heard_slots[i]`` in the data set (None: its nearest note; default
        ``slots``); ``retrieved``: the retrieval's voice where the caller has searched already.
        More notes pin the voice down better (docs/model.md, "Several notes")."""
        heard = list(feats) if heard is None else list(heard)
        heard_slots = list(slots) if heard_slots is None else list(heard_slots)
        z_m = np.mean([self.model_latent(h) for h in heard], axis=0)
        cands: list[tuple[str, Voice]] = [("model", vector_to_voice(self.decode(z_m)[0], name))]
        zs = []
        if self.retrieval is not None:
            r = self.nearest_voice(feats, slots, heard, heard_slots) if retrieved is None else retrieved
            cands.append(("retrieval", Voice.from_parameters(self.train_params[r], name)))
            feats_r = np.asarray(self.train_features[r], dtype=np.float32)[None]
            z_r = self.model.encode(torch.from_numpy(feats_r))[0].numpy()
            zs += [z_r + a * (z_m - z_r) for a in (0.0, 0.25, 0.5, 0.75)]
        while len(zs) + len(cands) < self.candidates:
            zs.append(z_m + self.rng.normal(0, 0.3, size=z_m.shape).astype(np.float32))
        if zs:
            for v in self.decode(np.stack(zs)):
                cands.append(("refined", vector_to_voice(v, name)))
        scored = []
        for i, (src, v) in enumerate(cands):
            if self.register and src != "retrieval":  # the latent holds no register (host_training.jobs.register)
                params, d = read_register(self.renderer, v.parameters, feats, slots, name)
                cands[i] = (src, Voice.from_parameters(params, name))
            else:
                d = self.distance_notes(v, feats, slots)
            scored.append((d, i))
        d, i = min(scored)
        voice, source = cands[i][1], cands[i][0]
        polished, d_p = self.polish(voice, feats, slots, d)
        if d_p < d:
            voice, source, d = polished, f"{source}+polish", d_p
        return MatchResult(voice, source, d, tuple(self.s.notes[k][0] for k in slots))

    def nearest_voice(self, feats: Sequence[np.ndarray], slots: Sequence[int], heard: Sequence[np.ndarray],
                      heard_slots: Sequence[int | None]) -> int:
        """The training voice whose renders are nearest to ``feats`` at ``slots``, judged as every
        candidate is (mean log-mel distance) among the retrieval's ``retrieve_k`` nearest to
        ``heard``: the retrieval ranks pooled log-mel by squared distance, the judge full log-mel
        by absolute distance, and the two disagree on which near voice is nearest. Free: the data
        set holds those renders (within 0.01 dB of a new render). At other notes than the data
        set's (``at_notes``), the retrieval's nearest."""
        rows = self.retrieval.nearest_notes(np.stack(heard), heard_slots, self.retrieve_k if self.stored_renders else 1)
        return int(min(rows, key=lambda r: self._stored_distance(r, feats, slots)))

    def nearest_pair(self, feat: np.ndarray, heard: np.ndarray) -> tuple[int, int]:
        """(note slot, training voice) of one note of unknown slot, ``nearest_voice``'s way: the
        retrieval's ``retrieve_k`` nearest (voice, slot) pairs to ``heard``, judged against ``feat``."""
        rows, slots = self.retrieval.nearest_pairs(heard, self.retrieve_k if self.stored_renders else 1)
        j = min(range(len(rows)), key=lambda i: self._stored_distance(rows[i], [feat], [slots[i]]))
        return int(slots[j]), int(rows[j])

    def _stored_distance(self, r: int, feats: Sequence[np.ndarray], slots: Sequence[int]) -> float:
        """``distance_notes`` of training voice ``r`` read from its stored renders."""
        stored = np.asarray(self.train_features[int(r)], np.float32)
        return float(np.mean([mel_distance(stored[k], f) for f, k in zip(feats, slots)]))

    def retrieve(self, rec: Prepared, gain_db: float | None) -> tuple[int, int, float]:
        """(index, note slot, gain) of the training note nearest the recording; ``gain_db`` None:
        the gain is read as well, each training note compared with the recording brought to its
        own level (``Retrieval.query_level_free``).

        Why: a recording's level is the interface's, not the voice's, and the model, the
        retrieval and the log-mel distance read level as timbre (a quieter note has fewer
        partials over the floor). Measured in docs/model.md, "Recordings: the level"."""
        if gain_db is None:
            return self.retrieval.query_level_free(rec.at, rec.mel.shape[0], GAIN_WINDOW_DB)
        idx, slot, _ = self.retrieval.query_single(rec.at(gain_db)[None])
        return int(idx[0]), int(slot[0]), gain_db

    def on(self, renderer: VoiceRenderer, seed: int) -> Matcher:
        """This matcher rendering with ``renderer`` (a Pool thread's) and drawing its latent
        perturbations from ``seed``: matches on several threads, each repeatable on its own."""
        m = copy.copy(self)
        m.renderer, m.rng = renderer, np.random.default_rng(seed)
        return m

    def at_notes(self, played: Sequence[tuple[int, int]]) -> Matcher:
        """This matcher rendering at the (note, velocity) pairs ``played`` (note slots 0, 1, ...):
        recordings' notes, which need not be the data set's."""
        m = copy.copy(self)
        m.s = replace(self.s, notes=tuple((int(n), int(v)) for n, v in played))
        m.renderer = VoiceRenderer(m.s)
        m.stored_renders = False
        return m

    def velocity(self, slot: int | None) -> int:
        """The velocity a recording's candidates are played at: the retrieved note slot's
        (a soft note retrieves the data set's soft slot: 5.40 dB at velocity 60 against 7.83
        played at 100, and no change at velocity 100; docs/model.md, "Recordings: the note"),
        the data set's usual one without retrieval."""
        if slot is not None:
            return self.s.notes[slot][1]
        return Counter(v for _, v in self.s.notes).most_common(1)[0][0]

    def grid_shift(self, note: int) -> int:
        """The fewest semitones (-6..5) that move ``note`` onto the pitch class of one of the
        data set's notes (the octave is the register step's)."""
        return min((((g - note) + 6) % 12 - 6 for g, _ in self.s.notes), key=abs)

    def match_recording(self, rec: Prepared, gain_db: float | None = None, note: int | None = None,
                        name: str = "MATCH") -> MatchResult:
        """``match`` on a prepared recording played ``gain_db`` louder (None: read, ``retrieve``;
        as recorded without the data set to read it against) at MIDI ``note`` (None: heard,
        ``pitch.sounding_note``, in the octave of the retrieved training note where there is one).

        The encoder and the retrieval read the recording moved onto the pitch class of the data
        set's notes (``Prepared.shifted``: they know only those notes); every candidate is
        rendered at the recording's own note and judged against it as recorded."""
        return self.match_recordings([rec], gain_db, None if note is None else [note], name)

    def match_recordings(self, recs: Sequence[Prepared], gain_db: float | None = None,
                         notes: Sequence[int | None] | None = None, name: str = "MATCH",
                         hold: float | None = None, seconds: float = DEFAULT_SECONDS, search: str = SEARCH,
                         started: float | None = None, progress: bool = False, keep: int = 1) -> MatchResult:
        """``match_recording`` over several recordings of one sound, one note each (a sampled
        instrument at several pitches): each is read as one recording is (its note heard, its
        gain read, each on its own: ``notes[i]`` / ``gain_db`` where given), then one voice is
        matched to all of them, every candidate rendered at each recording's own note *and
        timing* (host_training.jobs.timing) and judged over the recording's own length.

        Steps, all within ``seconds`` from ``started`` (default: now): retrieval over the part of
        the note held in both the recording and the data set; the note-off read (``hold``
        seconds where given); the octave tried both ways where the note is not given; the
        retrieved voices, the model's and two points between their latents judged; the note-off
        checked by listening with the best of them; then ``search`` (host_training.jobs.search)
        from the best until the time is spent. ``keep``: how many distinct voices the result ranks."""
        from host_training.jobs import search as srch
        from host_training.jobs import timing

        t0 = time.monotonic() if started is None else started
        deadline = t0 + seconds * (1 - RESERVE)
        bar = _progress(seconds, t0) if progress else None
        notes = [None] * len(recs) if notes is None else list(notes)
        takes, heard, gains, pitches, guessed, grid = [], [], [], [], [], []
        for rec, given in zip(recs, notes, strict=True):
            pitch = round(sounding_note(rec.note, rec.rate)) if given is None else given
            shift = self.grid_shift(pitch)
            moved = rec.shifted(shift)
            if self.retrieval is None:
                gain, slot, at = gain_db, None, pitch
            else:
                idx, slot, gain = self.retrieve(moved, gain_db)
                grid.append(int(idx))  # the one-note retrieval's voice: always judged, so never beaten by it
                at = self.s.notes[slot][0] - shift if given is None else given
            heard.append(moved.at(gain or 0.0))
            length = rec.length_s
            takes.append(timing.Take(rec.own_at(gain or 0.0), at, self.velocity(slot), length,
                                     length if hold is None else min(hold, length), lead=rec.skipped_s))
            gains.append(gain)
            pitches.append(pitch)
            guessed.append(given is None)
        if sum(guessed) > 1:
            idx = [i for i, g in enumerate(guessed) if g]
            for i, note in zip(idx, one_octave([pitches[i] for i in idx], [takes[i].note for i in idx])):
                takes[i] = takes[i].at(note=note)
        renderer = self.renderer.r
        judge = srch.Judge(lambda p: timing.takes_distance(renderer, p, takes), deadline,
                           None if bar is None else bar.tick)
        with_name = lambda p: Voice.from_parameters(p, name)  # noqa: E731
        # 1. retrieval over the opening both hold the key for, before the octave and note-off are known
        first = hold if hold is not None else timing.SAFE_HOLD_S
        near: list[np.ndarray] = []
        if self.retrieval is not None:
            cols = timing.shared_columns(min(first, *(t.length for t in takes)), self.s, self.retrieval.pool)
            near = [np.asarray(self.train_params[r]) for r in timing.nearest_voices(self.retrieval, heard, cols,
                                                                                      OCTAVE_VOICES)]
        z_m = np.mean([self.model_latent(h) for h in heard], axis=0)
        model_voice = self._register(layout.decode(self.decode(z_m)[0]), takes)
        pitch_taken = takes[0].note  # the note the model's voice was registered at
        grid_voices = [np.asarray(self.train_params[r]) for r in dict.fromkeys(grid)]  # the one-note retrieval's
        # 2. the note-off, read from the sound where not given (host_training.audio.release); where
        # the sound does not show one (cut at it, or the note died while held) the key is taken as
        # held to the end: a voice that dies by itself then fits, whenever it was let go. Step 4b
        # checks the reading by listening.
        offs = [how_held(rec) for rec in recs] if hold is None else []
        if hold is None:
            takes = [t.at(hold=t.length if off.hold is None else off.hold) for t, off in zip(takes, offs)]
        # 3. the octave, where the note was heard: each of three octaves tried; the two closest
        # both searched (the time shared) where the closest is not sure
        octave, at_octaves = None, [takes]
        if len(takes) == 1 and guessed[0]:
            at_octaves, octave = self._octave(takes[0], near + [model_voice], renderer)

        def search_at(takes: list, judge: srch.Judge, until: float) -> tuple[srch.Judge, list]:
            """Steps 4-5 at one octave's takes, until ``until``: the judge that saw every voice and
            the takes as finally read."""
            judge.deadline = until
            judge.distance = lambda p: timing.takes_distance(renderer, p, takes)
            start_voice = model_voice if takes[0].note == pitch_taken else self._register(model_voice, takes)
            # 4. retrieval over the part held in both, the model's voice and two between, judged
            cands: list[tuple[str, np.ndarray | Callable[[], np.ndarray]]] = [("model", start_voice)]
            cands += [(f"retrieval_grid{j}", p) for j, p in enumerate(grid_voices)]
            forced = len(cands) + 1  # and the nearest voice over the part held in both
            if self.retrieval is not None:
                end = min(min(t.hold for t in takes), min(t.length for t in takes))
                cols = timing.shared_columns(end, self.s, self.retrieval.pool)
                rows = timing.nearest_voices(self.retrieval, heard, cols, self.retrieve_k)
                cands += [(f"retrieval{j}", np.asarray(self.train_params[r])) for j, r in enumerate(rows)]

                def between(a: float) -> np.ndarray:  # made only when judged: its register costs six renders
                    feats_r = np.asarray(self.train_features[int(rows[0])], dtype=np.float32)[None]
                    z_r = self.model.encode(torch.from_numpy(feats_r))[0].numpy()
                    return self._register(layout.decode(self.decode(z_r + a * (z_m - z_r))[0]), takes)

                cands += [(f"refined{a}", lambda a=a: between(a)) for a in (0.25, 0.5)]
            for j, (lineage, p) in enumerate(cands):
                try:  # the model's voice and the nearest retrieved one at least, the rest while time allows
                    if callable(p):
                        if time.monotonic() > judge.deadline:
                            break
                        p = p()
                    judge(p, lineage, force=j < forced)
                except srch.OutOfTime:
                    break
            # 4b. the note-off read from the sound checked by listening with the best candidates and
            # the one-note retrieval's voice: where one of them renders much closer at another hold
            # (a near-copy's distance, or LISTENED_SHARE of the best), that hold is the one played
            if hold is None and len(takes) == 1:
                _, d_best, _ = judge.best()
                now = time.monotonic()
                if d_best > timing.HOLD_TIE_DB and now < until:
                    by = grid_voices + [p for p, _, _ in judge.ranked(HOLD_VOICES)]  # the likeliest near-copy
                    by = list({np.asarray(p, np.uint8).tobytes(): p for p in by}.values())  # first: time may run out
                    h, d_h = timing.read_hold(renderer, by, takes[0], deadline=now + LISTEN_SHARE * (until - now))
                    if d_h < d_best - timing.HOLD_TIE_DB and (d_h < NEAR_COPY_DB or d_h < LISTENED_SHARE * d_best):
                        takes = [takes[0].at(hold=h)]
                        judged = judge.ranked(len(judge.seen), distinct=0)
                        judge = srch.Judge(lambda p: timing.takes_distance(renderer, p, takes), until,
                                           None if bar is None else bar.tick, evals=judge.evals)
                        for j, (p, _, lineage) in enumerate(judged):
                            try:  # the candidates again at the hold heard, best first
                                judge(p, lineage, force=j == 0)
                            except srch.OutOfTime:
                                break
            # 5. the search, from the best distinct candidates, until the time is spent
            starts = [(p, lineage) for p, _, lineage in judge.ranked(SEARCH_STARTS)]
            srch.SEARCHES[search](judge, starts)
            return judge, takes

        # where the level was already falling before the release it shows, the bend may be a faster
        # stage of the decay while the key was held: both readings searched, the time shared
        if hold is None and len(takes) == 1 and offs[0].hold is not None and offs[0].falling_db_s >= DECAYING_DB_S:
            at_octaves = [alt for tk in at_octaves for alt in (tk, [tk[0].at(hold=tk[0].length)])]
        found = []
        for k, tk in enumerate(at_octaves):
            share = (deadline - time.monotonic()) / (len(at_octaves) - k)
            evals = found[-1][0].evals if found else judge.evals
            j_k = judge if k == 0 else srch.Judge(judge.distance, deadline, judge.on_eval, evals=evals)
            found.append(search_at(tk, j_k, time.monotonic() + share))
        judge, takes = min(found, key=lambda jt: jt[0].best()[1])
        judge.evals = found[-1][0].evals
        best, d, lineage = judge.best()
        if bar is not None:
            bar.close()
        ranked = tuple((with_name(p), dist, lin) for p, dist, lin in judge.ranked(keep)) if keep > 1 else ()
        source = lineage.rstrip("0123456789.")
        return MatchResult(with_name(best), source, d, tuple(t.note for t in takes), tuple(gains),
                           velocities=tuple(t.velocity for t in takes), holds=tuple(t.hold for t in takes),
                           lengths=tuple(t.length for t in takes),
                           held=(("given",) * len(takes) if hold is not None else
                                 tuple(_how_held(t, off) for t, off in zip(takes, offs))),
                           octave=octave, ranked=ranked, evals=judge.evals)

    def _register(self, params: np.ndarray, takes) -> np.ndarray:
        """A decoded voice with the transpose that renders closest to the takes (the latent holds
        no register: host_training.jobs.register), judged at the takes' timing."""
        from host_training.jobs import timing
        from host_training.jobs.register import REGISTERS, with_transpose

        if not self.register:
            return np.asarray(params, dtype=np.uint8)
        own = int(params[param("transpose").index])
        tried = [with_transpose(params, v) for v in sorted({own, *REGISTERS})]
        return min(tried, key=lambda p: timing.takes_distance(self.renderer.r, p, takes))

    def _octave(self, take, voices: Sequence[np.ndarray], renderer) -> tuple[list[list], str]:
        """The takes to search, best first: at the octave where ``voices`` render closest (the
        note heard, an octave down, an octave up), and also at the next closest where that is
        not sure (the best distance within OCTAVE_SURE_DB of the next octave's); and what was
        heard, to say."""
        from host_training.jobs import timing

        scores = []
        for note in (take.note - 12, take.note, take.note + 12):
            if 0 <= note <= 127:
                t = take.at(note=note)
                scores.append((min(timing.distance(renderer, p, t) for p in voices), note))
        scores.sort()
        (d0, n0), (d1, n1) = scores[0], scores[1]
        sure = d1 - d0 >= OCTAVE_SURE_DB
        said = (f"{'sure' if sure else 'not sure'}: note {n0} renders {d1 - d0:.1f} dB closer than note {n1} "
                f"({d0:.1f} against {d1:.1f} dB){'' if sure else '; both searched'}")
        return ([[take.at(note=n0)]] if sure else [[take.at(note=n0)], [take.at(note=n1)]]), said

    def polish(self, voice: Voice, feats: Sequence[np.ndarray], slots: Sequence[int], d: float) -> tuple[Voice, float]:
        """Greedy line search over POLISH_MOVES within ``polish_renders`` renders (a render is
        one candidate at every note): a move that brings the renders at note slots ``slots``
        closer to ``feats`` is repeated while it does; the result is never farther than
        ``voice`` (at distance ``d``)."""
        params = voice.parameters.astype(int)
        name = voice.name
        renders = 0
        improved = True
        while improved and renders < self.polish_renders:
            improved = False
            for index, step, high in POLISH_MOVES:
                while renders < self.polish_renders:
                    value = int(np.clip(params[index] + step, 0, high))
                    if value == params[index]:
                        break
                    trial = params.copy()
                    trial[index] = value
                    renders += 1
                    d_t = self.distance_notes(Voice.from_parameters(trial, name), feats, slots)
                    if d_t >= d:
                        break
                    params, d, improved = trial, d_t, True
        return Voice.from_parameters(params, name), d


def matcher_for_run(run_dir: str | Path, data_dir: str | Path | None = None, candidates: int = 12,
                    polish_renders: int = 64) -> Matcher:
    """The run's main model, plus retrieval over its training split when the data set is at
    hand (``data_dir``, else the folder named in run.json if it still exists)."""
    from host_training.model.baselines import Retrieval
    from host_training.jobs.export import load_vae, read_run

    info = read_run(run_dir)
    settings = RenderSettings.from_manifest(info["dataset_settings"])
    model = load_vae(run_dir)
    folder = Path(data_dir) if data_dir else Path(info.get("dataset_dir", ""))
    if data_dir is None and not (folder / "manifest.json").is_file():
        return Matcher(model, settings, candidates=candidates, polish_renders=polish_renders)
    from host_training.dataset import open_dataset

    ds = open_dataset(folder)
    train = ds.indices("train")
    feats = ds.features
    retrieval = Retrieval.of_dataset(ds, train)
    return Matcher(model, settings, retrieval, retrieval.params, Rows(feats, train), candidates,
                   polish_renders=polish_renders)


class _progress:
    """A progress bar over a match's time (stderr)."""

    def __init__(self, seconds: float, t0: float) -> None:
        from tqdm import tqdm

        self.t0, self.seconds = t0, seconds
        self.bar = tqdm(total=round(seconds, 1), unit="s", desc="match", leave=False,
                        bar_format="{desc}: {bar} {n:.1f}/{total:.1f} s")

    def tick(self) -> None:
        self.bar.n = round(min(time.monotonic() - self.t0, self.seconds), 1)
        self.bar.refresh() if self.bar.n - getattr(self, "_last", -1) >= 0.2 else None
        self._last = self.bar.n

    def close(self) -> None:
        self.bar.close()


class Rows:
    """Rows ``index`` of an array, read when asked: the data set's features stay a memory map
    (the training split's are 2 GB on the whole corpus; a match reads one voice)."""

    def __init__(self, array: np.ndarray, index: np.ndarray) -> None:
        self.array, self.index = array, np.asarray(index)

    def __getitem__(self, r: int) -> np.ndarray:
        return self.array[self.index[r]]

