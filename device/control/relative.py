"""Relative knobs: the performer's own voice, changed the way the decoder's voice changes
(the voice arithmetic is ``dx7.relative.relative_voice``; here, the knob side).

Absolute knobs send ``decode(z)``: the first touch of a knob replaces the chosen voice with the
decoder's reconstruction of its latent (13 dB away in the median on the shipped bundle). Relative
knobs send the chosen voice plus the *change* the decoder makes between the voice's own latent
``z_base`` and the knob-moved latent ``z_moved``:

* a continuous parameter: ``voice + (decode(z_moved) - decode(z_base))``, clipped to its range;
* a categorical one (algorithm, waveform, curve, mode, sync): the voice's value, unless the
  decoder's choice at ``z_moved`` differs from its choice at ``z_base``; then the decoder's.

Rounding. The difference is taken between the decoder's own DX7 values, which are integers (the
int8 head's output levels sit on DX7 steps), so there is nothing fractional left to round, and
it is always the whole difference from the base, never a sum of per-tick steps: a move the
decoder resolves is never lost to rounding, nothing drifts, and at ``z_base`` the difference is
exactly zero. The knob side is exact too (``knob_offset``): each knob moves its dimension by
``to_latent(position) - to_latent(reference)``, with a dead zone as wide as the soft-takeover
tolerance around the reference (the pickup point), so picking a knob up changes nothing and a
knob brought back to its pickup point gives back the voice byte for byte.
"""

from __future__ import annotations

def dead_zone(position: float, reference: float, width: float) -> float:
    """``position`` with a dead zone of ``width`` on either side of ``reference``: the reference
    itself inside it, continuous outside (no step at its edge)."""
    d = position - reference
    if abs(d) <= width:
        return reference
    return position - width if d > 0 else position + width
