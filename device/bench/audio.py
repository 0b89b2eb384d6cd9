"""Audio for the bench tools, from a renderer the command layer passes in.

The device never imports the host's renderer (Dexed's engine through dexed-py is host-only),
so the demo and the HIL audio check take any object with this shape; ``dxmacro demo`` and
``dxmacro hil`` pass host_training's ``DexedRenderer``, and without one the audio is skipped
with the reason said."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from dx7 import Voice


@runtime_checkable
class NoteRenderer(Protocol):
    sample_rate: int

    def render_note(self, voice: Voice, note: int, velocity: int, hold: float, duration: float) -> np.ndarray:
        """Mono float32 audio of ``voice`` playing ``note`` for ``hold`` s within ``duration`` s."""
        ...

    def write_wav(self, path: str | Path, audio: np.ndarray) -> None:
        """``audio`` at this renderer's rate, written atomically."""
        ...
