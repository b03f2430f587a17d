"""Early stopping (notebook 04), shared by every training loop of the kit.

Stop when the validation loss has not improved for ``patience`` epochs in a row,
and keep the best epoch's weights so they can be restored.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

from torch import nn


def should_stop(val_losses: Sequence[float], patience: int, min_delta: float = 0.0) -> bool:
    """Early-stopping rule: True once ``patience`` epochs in a row did not improve the best loss.

    An epoch improves when its loss is below the best so far minus ``min_delta``
    (the rule of Keras' ``EarlyStopping``).
    """
    best, waited = math.inf, 0
    for loss in val_losses:
        if loss < best - min_delta:
            best, waited = loss, 0
        else:
            waited += 1
    return waited >= patience


class EarlyStopping:
    """Tracks validation losses, keeps a copy of the best weights, says when to stop."""

    def __init__(self, patience: int = 3, min_delta: float = 0.0):
        self.patience, self.min_delta = patience, min_delta
        self.losses: list[float] = []
        self.best, self.best_epoch = math.inf, 0
        self.best_state: Optional[dict] = None

    def step(self, val_loss: float, model: nn.Module) -> bool:
        """Record one epoch's validation loss; True when training should stop."""
        self.losses.append(val_loss)
        if val_loss < self.best - self.min_delta:
            self.best, self.best_epoch = val_loss, len(self.losses)
            self.best_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        return should_stop(self.losses, self.patience, self.min_delta)

    def restore(self, model: nn.Module) -> None:
        """Load the best weights back into ``model``."""
        if self.best_state is not None:
            model.load_state_dict(self.best_state)
