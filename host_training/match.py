"""Sound matching: a recording at any pitch -> a DX7 voice.

A recording is first read from its note (``prepare``: the onset found, the noise floor heard
before it taken out; docs/model.md, "Recordings"). Then four steps, each measured in
docs/results.md:
1. the model: the single-note encoding (the encoder is note-agnostic, trained with
   single-note inputs and the contrastive loss) decoded by the head;
2. retrieval: the nearest (training voice, note) pair of pooled log-mel, which also
   estimates the note played (when the run's data set is at hand);
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
(host_training.register): the pitch-independent latent cannot hold it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from dx7 import Voice, layout
from dx7.params import param
from dxmacro.errors import DxmacroError
from host_training.register import read_register
from host_training.features import N_FFT
from host_training.sound import (SILENCE_DB, RenderSettings, VoiceRenderer, feature_distance, level_db,
                                  mean_mel_power, mel_power, to_db)


@dataclass
class MatchResult:
    voice: Voice
    source: str  # "model", "retrieval" or "refined", with "+polish" when the polish moved it
    distance_db: float
    note: int
    gain_db: float | None = 0.0  # gain the recording was matched at (None: as recorded, none could be read)


def vector_to_voice(vec: np.ndarray, name: str) -> Voice:
    return Voice.from_parameters(layout.decode(vec), name)


ONSET_FRAME_S = 0.005
ONSET_DB = 60.0  # a frame this close to the loudest one sounds (the descriptors' "active" frames)
LEAD_S = 0.1  # the opening that may be a noise floor
LEAD_STEADY_DB = 1.5  # ... when its frames' levels vary this little (an attack rises faster)
LEAD_BELOW_PEAK_DB = 30.0  # ... and it is this far under the note
ONSET_OVER_NOISE_DB = 6.0  # the note starts where it rises this far over the noise
NOISE_SUBTRACT = 1.0  # noise power taken out, in multiples of its mean (1 matched best of 1, 2, 4: docs/model.md)
GAIN_WINDOW_DB = 12.0  # a recording's gain is read within this of the data set's median level (docs/model.md)


@dataclass(frozen=True)
class Onset:
    start: int  # first sample of the note
    noise_db: float | None  # level (dBFS) of a steady noise floor before it, None if none was heard


def find_onset(audio: np.ndarray, rate: int) -> Onset:
    """Where the played note starts in a recording, and the noise floor before it.

    The data set's renders begin at note-on; a recording usually begins some time before,
    in digital silence or over the noise floor of the synth and the interface. The note
    starts with the first 5 ms frame within ONSET_DB of the loudest one, or,
    when the first 100 ms are a steady noise floor, ONSET_OVER_NOISE_DB over that floor
    (whichever is higher). A steady opening is told from an attack by how little it
    varies: on 600 training renders, which begin at note-on, the onset is within one frame
    of the start for 99 %, and with 0.3 s of -80 or -90 dBFS noise before them within one
    frame of the note for 99.5 % (docs/model.md, "Recordings")."""
    hop = max(1, int(round(rate * ONSET_FRAME_S)))
    n = len(audio) // hop
    if n == 0:
        return Onset(0, None)
    frames = np.asarray(audio[: n * hop], dtype=np.float64).reshape(n, hop)
    level = 10 * np.log10(np.maximum(np.mean(frames * frames, axis=1), 1e-24))
    peak = float(level.max())
    threshold, noise = peak - ONSET_DB, None
    lead = level[: int(round(LEAD_S / ONSET_FRAME_S))]
    if (len(lead) < n and lead.min() > -200 and lead.max() < peak - LEAD_BELOW_PEAK_DB
            and lead.std() < LEAD_STEADY_DB):
        noise = float(10 * np.log10(np.mean(10 ** (lead / 10))))
        threshold = max(threshold, noise + ONSET_OVER_NOISE_DB)
    first = int(np.argmax(level >= threshold))
    return Onset(first * hop, noise)


@dataclass(frozen=True)
class Prepared:
    mel: np.ndarray  # (n_mels, frames) mel power on the data set's grid, noise floor taken out
    skipped_s: float  # seconds of the recording before the note
    noise_db: float | None  # level (dBFS, as recorded) of the noise floor taken out, None if none

    @property
    def features(self) -> np.ndarray:
        """Log-mel as recorded."""
        return self.at(0.0)

    def at(self, gain_db: float) -> np.ndarray:
        """Log-mel (float32) of the recording played ``gain_db`` louder."""
        return to_db(self.mel * 10.0 ** (gain_db / 10.0)).astype(np.float32)


def prepare(audio: np.ndarray, rate: int, settings: RenderSettings) -> Prepared:
    """A recording -> its note on the data set's grid: resampled, started at the note
    (``find_onset``: leading silence would be matched as a slow attack), cut or padded to the
    data set's duration, with the noise floor heard before the note taken out (renders have
    none; measured in docs/model.md)."""
    from scipy.signal import resample_poly

    a = original = np.asarray(audio, dtype=np.float64)
    if a.size == 0 or not np.all(np.isfinite(a)):
        raise DxmacroError("the recording is empty or holds non-finite samples")
    level = level_db(a)
    if level < SILENCE_DB:
        # the features would sit at the absolute floor and any voice would "match" silence
        raise DxmacroError(f"the recording is silent (level {level:.0f} dB, below {SILENCE_DB:.0f} dB): "
                           "nothing to match")
    if rate != settings.rate:
        g = np.gcd(int(rate), settings.rate)
        a = resample_poly(a, settings.rate // g, int(rate) // g)
    onset = find_onset(a, settings.rate)
    n = int(round(settings.duration * settings.rate))
    note = a[onset.start:onset.start + n]
    mel = mel_power(np.pad(note, (0, n - len(note))).astype(np.float32), settings.rate)[0]
    noise_db = None
    if onset.noise_db is not None and onset.start >= N_FFT:
        mel = mel - NOISE_SUBTRACT * mean_mel_power(a[:onset.start], settings.rate)[:, None]
        noise_db = level_db(original[: int(onset.start * rate / settings.rate)])  # as recorded, not resampled
    return Prepared(mel, onset.start / settings.rate, noise_db)


def _polish_moves() -> list[tuple[int, int, int]]:
    """(parameter index, step, high) of the polish search, most audible first."""
    moves = []
    for field, step in (("output_level", 6), ("freq_coarse", 1), ("output_level", 2), ("eg_rate1", 12),
                        ("eg_rate4", 12)):
        for op in range(1, 7):
            p = param(f"op{op}_{field}")
            moves += [(p.index, step, p.high), (p.index, -step, p.high)]
        if field == "freq_coarse":
            p = param("feedback")
            moves += [(p.index, 1, p.high), (p.index, -1, p.high)]
    return moves


POLISH_MOVES = _polish_moves()


class Matcher:
    def __init__(self, model, settings: RenderSettings, retrieval=None, train_params: np.ndarray | None = None,
                 train_features=None, candidates: int = 12, seed: int = 0, polish_renders: int = 64,
                 register: bool = True) -> None:
        self.model, self.s, self.retrieval = model, settings, retrieval
        self.register = register
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

    def model_only(self, feat: np.ndarray) -> Voice:
        return vector_to_voice(self.decode(self.model_latent(feat))[0], "MATCH")

    def match(self, feat: np.ndarray, note_slot: int | None = None, name: str = "MATCH") -> MatchResult:
        z_m = self.model_latent(feat)
        cands: list[tuple[str, Voice]] = [("model", vector_to_voice(self.decode(z_m)[0], name))]
        k = note_slot
        zs = []
        if self.retrieval is not None:
            idx, slot, _ = self.retrieval.query_single(feat[None])
            r = int(idx[0])
            k = int(slot[0]) if k is None else k
            cands.append(("retrieval", Voice.from_parameters(self.train_params[r], name)))
            feats_r = np.asarray(self.train_features[r], dtype=np.float32)[None]
            z_r = self.model.encode(torch.from_numpy(feats_r))[0].numpy()
            zs += [z_r + a * (z_m - z_r) for a in (0.0, 0.25, 0.5, 0.75)]
        if k is None:
            k = len(self.s.notes) // 2
        while len(zs) + len(cands) < self.candidates:
            zs.append(z_m + self.rng.normal(0, 0.3, size=z_m.shape).astype(np.float32))
        if zs:
            for v in self.decode(np.stack(zs)):
                cands.append(("refined", vector_to_voice(v, name)))
        scored = []
        for i, (src, v) in enumerate(cands):
            if self.register and src != "retrieval":  # the latent holds no register (host_training.register)
                params, d = read_register(self.renderer, v.parameters, [feat], [k], name)
                cands[i] = (src, Voice.from_parameters(params, name))
            else:
                d = self.distance(v, feat, k)
            scored.append((d, i))
        d, i = min(scored)
        voice, source = cands[i][1], cands[i][0]
        polished, d_p = self.polish(voice, feat, k, d)
        if d_p < d:
            voice, source, d = polished, f"{source}+polish", d_p
        return MatchResult(voice, source, d, self.s.notes[k][0])

    def read_gain(self, rec: Prepared) -> float | None:
        """The gain (dB) that brings a recording of unknown level to the data set's: the one at
        which its note lies nearest a training note played at that note's own level
        (``Retrieval.query_level_free``); None without the data set to read it against.

        Why: a recording's level is the interface's, not the voice's, and the model and the
        log-mel distance read level as timbre (a quieter note has fewer partials over the
        floor). Measured in docs/model.md, "Recordings"."""
        if self.retrieval is None:
            return None
        return self.retrieval.query_level_free(rec.at, rec.mel.shape[0], GAIN_WINDOW_DB)[2]

    def match_recording(self, rec: Prepared, gain_db: float | None = None, name: str = "MATCH") -> MatchResult:
        """``match`` on a prepared recording played ``gain_db`` louder; None: the gain is read
        (``read_gain``), and the recording is matched as recorded where it cannot be."""
        gain = self.read_gain(rec) if gain_db is None else gain_db
        result = self.match(rec.at(gain or 0.0), name=name)
        result.gain_db = gain
        return result

    def polish(self, voice: Voice, feat: np.ndarray, k: int, d: float) -> tuple[Voice, float]:
        """Greedy line search over POLISH_MOVES within ``polish_renders`` renders: a move that
        brings the render at note slot ``k`` closer to ``feat`` is repeated while it does;
        the result is never farther than ``voice`` (at distance ``d``)."""
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
                    d_t = self.distance(Voice.from_parameters(trial, name), feat, k)
                    if d_t >= d:
                        break
                    params, d, improved = trial, d_t, True
        return Voice.from_parameters(params, name), d


def matcher_for_run(run_dir: str | Path, data_dir: str | Path | None = None, candidates: int = 12,
                    polish_renders: int = 64) -> Matcher:
    """The run's main model, plus retrieval over its training split when the data set is at
    hand (``data_dir``, else the folder named in run.json if it still exists)."""
    from host_training.baselines import Retrieval
    from host_training.export import load_vae, read_run

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
    retrieval = Retrieval(feats, np.asarray(ds.params[train]), rows=train)
    return Matcher(model, settings, retrieval, np.asarray(ds.params[train]), Rows(feats, train), candidates,
                   polish_renders=polish_renders)


class Rows:
    """Rows ``index`` of an array, read when asked: the data set's features stay a memory map
    (the training split's are 2 GB on the whole corpus; a match reads one voice)."""

    def __init__(self, array: np.ndarray, index: np.ndarray) -> None:
        self.array, self.index = array, np.asarray(index)

    def __getitem__(self, r: int) -> np.ndarray:
        return self.array[self.index[r]]

    def __len__(self) -> int:
        return len(self.index)
