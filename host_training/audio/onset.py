"""Where a played note starts in a recording (its note-on, as far as the sound tells it).

Why its own module: a recording is read from its onset (``host_training.jobs.match.prepare``)
and every candidate voice is judged from *its* onset too (``host_training.jobs.timing``), so a
voice whose sound starts late (a delayed or gated one) lines up with its own recording.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ONSET_FRAME_S = 0.005
ONSET_DB = 60.0  # a frame this close to the loudest one sounds (the descriptors' "active" frames)
LEAD_S = 0.1  # the opening that may be a noise floor
LEAD_STEADY_DB = 1.5  # ... when its frames' levels vary this little (an attack rises faster)
LEAD_BELOW_PEAK_DB = 30.0  # ... and it is this far under the note
ONSET_OVER_NOISE_DB = 6.0  # the note starts where it rises this far over the noise


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
    frame of the note for 99.5 % (docs/model.md, "Recordings"). A frame's level is read about
    its own mean, so a DC offset reads as the silence it is (a high-pass would do it too, but
    rings at the start; the median of the frames' means is a voice's own DC where it has some)."""
    hop = max(1, int(round(rate * ONSET_FRAME_S)))
    n = len(audio) // hop
    if n == 0:
        return Onset(0, None)
    frames = np.asarray(audio[: n * hop], dtype=np.float64).reshape(n, hop)
    level = 10 * np.log10(np.maximum(np.var(frames, axis=1), 1e-24))  # about the frame's mean: blind to DC
    peak = float(level.max())
    threshold, noise = peak - ONSET_DB, None
    lead = level[: int(round(LEAD_S / ONSET_FRAME_S))]
    if (len(lead) < n and lead.min() > -200 and lead.max() < peak - LEAD_BELOW_PEAK_DB
            and lead.std() < LEAD_STEADY_DB):
        noise = float(10 * np.log10(np.mean(10 ** (lead / 10))))
        threshold = max(threshold, noise + ONSET_OVER_NOISE_DB)
    first = int(np.argmax(level >= threshold))
    return Onset(first * hop, noise)
