"""Building a voice bank from cartridges: every voice gets its latent from a run's model.

Two ways to find a voice's latent (``--latent``):

- ``encoder`` (default): render the voice at the data set's notes the data set's way
  (host_training.dataset.analysis.analyse: Dexed, the run's notes, rate, hold and duration) and
  encode the renders, as training encoded its voices: the latent of how the voice *sounds*;
- ``inverse``: run the regression flow backwards on the voice's parameter vector
  (``FlowVAE.from_vector``): the latent that decodes exactly to the voice in fp32, but the flow
  was never trained to put real voices' inverses near the prior, so such latents can lie far
  outside the knobs' ranges and decode poorly through the int8 graph.

docs/conversion.md ("Voice banks") measures both on voices the model never saw
(scripts/bank_latents.py). The bank is bound to the run's export ``model_id``, the id
``dxmacro convert`` writes into the bundle's manifest.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dx7 import Voice, layout, read_voice_file
from dxmacro.errors import DxmacroError
from host_training.jobs.export import conversion_info, load_vae, read_info, read_run

METHODS = ("encoder", "inverse")


@dataclass(frozen=True)
class CartridgeVoice:
    voice: Voice
    source: str  # the cartridge's file name
    slot: int  # 1-based position in it


def read_cartridges(paths: Sequence[str | os.PathLike[str]]) -> list[CartridgeVoice]:
    """Every voice of every cartridge, in order (DX7Error names a file that is not one)."""
    out = []
    for p in paths:
        vf = read_voice_file(p)
        out += [CartridgeVoice(v.voice, Path(p).name, v.slot + 1) for v in vf.voices]
    return out


class LatentFinder:
    """A run's model, ready to give voices their latents either way."""

    def __init__(self, run_dir: str | Path) -> None:
        from host_training.dataset.analysis import AnalysisSettings

        self.run_dir = Path(run_dir)
        self.info = read_info(run_dir)
        self.model = load_vae(run_dir, self.info.get("kind")).eval()
        s = read_run(run_dir)["dataset_settings"]
        self.settings = AnalysisSettings(tuple((int(n), int(v)) for n, v in s["notes"]), int(s["rate"]),
                                         float(s["hold"]), float(s["duration"]), int(s.get("n_mels", 128)),
                                         float(s.get("floor_db", -80.0)), float(s.get("silence_db", -70.0)))
        self._renderer = None

    @property
    def model_id(self) -> str:
        """The id the run's bundle carries (``dxmacro convert``: conversion_info -> manifest)."""
        return str(conversion_info(self.info, self.run_dir)["model_id"])

    @property
    def model_version(self) -> str:
        return str(self.info.get("model_version", "1.0.0"))

    def features(self, voice: Voice) -> np.ndarray:
        """(K, n_mels, frames) log-mel at the data set's notes, stored as the data set stores it."""
        from host_training.audio.render import DexedRenderer
        from host_training.dataset.analysis import analyse

        if self._renderer is None:
            self._renderer = DexedRenderer(self.settings.rate)
        return np.asarray(analyse(self._renderer, voice, self.settings).features, dtype=np.float32)

    @torch.no_grad()
    def latents(self, voices: Sequence[Voice], method: str = "encoder", batch: int = 32) -> np.ndarray:
        if method not in METHODS:
            raise DxmacroError(f"--latent {method!r}: one of {', '.join(METHODS)}")
        out = []
        for b in range(0, len(voices), batch):
            part = voices[b : b + batch]
            if method == "encoder":
                x = torch.from_numpy(np.stack([self.features(v) for v in part]))
                out.append(self.model.encode(x).numpy())
            else:
                if self.model.cfg.head != "flow":
                    raise DxmacroError(f"{self.run_dir}: --latent inverse needs the flow head; this model has an MLP")
                v = torch.from_numpy(layout.encode(np.stack([voice.parameters for voice in part])))
                out.append(self.model.from_vector(v).numpy())
        return np.concatenate(out).astype(np.float32)


def build_bank(paths: Sequence[str | os.PathLike[str]], run_dir: str | Path, key, *, name: str,
               method: str = "encoder", finder: LatentFinder | None = None, tune: Tuning | None = None) -> bytes:
    """The signed bank's bytes for every voice of ``paths`` (conversion.voice_bank.encode); with
    ``tune``, every voice's knobs tuned by rendering (format 2, host_training.jobs.knob_tune)."""
    from conversion import voice_bank

    voices = read_cartridges(paths)
    if not voices:
        raise DxmacroError("the cartridges hold no voices")
    if len(voices) > voice_bank.MAX_VOICES:
        raise DxmacroError(f"{len(voices)} voices in the cartridges; a bank holds at most {voice_bank.MAX_VOICES}")
    finder = finder or LatentFinder(run_dir)
    latents = finder.latents([v.voice for v in voices], method)
    extra = {"model_version": finder.model_version, "sources": [[v.source, v.slot] for v in voices],
             "dataset_manifest_sha256": finder.info.get("dataset_manifest_sha256")}
    knob_masks = None
    if tune is not None:
        from host_training.jobs.knob_tune import tune_bank

        if tune.decoder.bundle.model_id != finder.model_id:
            raise DxmacroError(f"the bundle holds model {tune.decoder.bundle.model_id}, the run is {finder.model_id}: "
                               "tune with the bundle converted from this run")
        dims, masks, passed = tune_bank(tune.decoder, [v.voice.parameters for v in voices], latents, tune.data_dir,
                                        threads=tune.threads, progress=tune.progress)
        knob_masks = (dims, masks)
        extra["knob_tuning"] = {"data_set": str(tune.data_dir), "passed": [round(float(p), 4) for p in passed.mean(0)]}
    return voice_bank.encode(name, finder.model_id, [v.voice for v in voices], latents, key, method=method,
                             extra=extra, knob_masks=knob_masks)


@dataclass(frozen=True)
class Tuning:
    """What tuning a bank's knobs needs: the bundle the device runs, and the data set whose
    descriptors and notes the knobs are judged by."""

    decoder: Any  # conversion.runtime.TFLiteDecoder
    data_dir: Path
    threads: int = 1
    progress: Callable[[str], None] = lambda _: None
