"""Early stopping (notebook 04), shared by every training loop of the kit.

Stop when the validation loss has not improved for ``patience`` epochs in a row,
and keep the best epoch's weights so they can be restored.
"""

from __future__ import annotations

import math
from typing import Any, Optional, Sequence

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
    """Tracks validation losses, keeps a copy of the best weights, says when to stop.

    ``keep_weights=False`` only tracks the best epoch (a loop that writes the best weights
    to a checkpoint file needs no second copy in memory). ``patience=0`` never stops.
    :meth:`state_dict` is plain data, so a checkpoint can hold it and a resumed run stops
    exactly when an uninterrupted one would.
    """

    def __init__(self, patience: int = 3, min_delta: float = 0.0, keep_weights: bool = True):
        self.patience, self.min_delta, self.keep_weights = patience, min_delta, keep_weights
        self.losses: list[float] = []
        self.best, self.best_epoch = math.inf, 0
        self.improved = False  # did the last epoch improve the best loss?
        self.best_state: Optional[dict] = None

    def step(self, val_loss: float, model: Optional[nn.Module] = None) -> bool:
        """Record one epoch's validation loss; True when training should stop."""
        self.losses.append(float(val_loss))
        self.improved = val_loss < self.best - self.min_delta
        if self.improved:
            self.best, self.best_epoch = float(val_loss), len(self.losses)
            if self.keep_weights and model is not None:
                self.best_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        return self.patience > 0 and should_stop(self.losses, self.patience, self.min_delta)

    def restore(self, model: nn.Module) -> None:
        """Load the best weights back into ``model``."""
        if self.best_state is not None:
            model.load_state_dict(self.best_state)

    def state_dict(self) -> dict[str, Any]:
        """The losses seen so far and the settings, as plain data (the weights are not included)."""
        return {"patience": self.patience, "min_delta": self.min_delta, "losses": list(self.losses)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from :meth:`state_dict`: the losses are replayed to find the best epoch."""
        self.patience, self.min_delta = int(state["patience"]), float(state["min_delta"])
        self.losses, self.best, self.best_epoch = [], math.inf, 0
        for loss in state["losses"]:
            self.step(loss)
