"""dx7.layout's slots as torch indices, for the losses that read a predicted parameter vector."""

from __future__ import annotations

import torch

from dx7.layout import categorical_groups, scaled_slots

SCALED_SLOTS = torch.as_tensor(scaled_slots(), dtype=torch.long)  # the scaled (continuous) slots
GROUP_SPANS = [(s.start, s.width) for s in categorical_groups()]  # (first slot, width) of each one-hot group
