"""Training and evaluating an image classifier (notebooks 04-05).

Follows the classifier project report: Adam and cross-entropy
with early stopping on the validation loss (:func:`train_classifier`), then accuracy, a
confusion matrix and precision / recall / F1 per class with scikit-learn
(:func:`predict`, :func:`classification_report`, :func:`confusion`). The data is
prepared by ``course_utils.vision.image_data`` and the network is
``course_utils.vision.cnn.SmallCNN``.
"""

from __future__ import annotations

import time
from typing import Optional, Sequence, Union

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support
from torch import nn
from torch.utils.data import DataLoader

from course_utils.basics.networks import evaluating
from course_utils.vision.early_stopping import EarlyStopping


def run_epoch(
    model: nn.Module,
    loader: DataLoader,
    device: Union[str, torch.device] = "cpu",
    optimizer: Optional[torch.optim.Optimizer] = None,
) -> tuple[float, float]:
    """One pass over ``loader``: trains if an ``optimizer`` is given, else only evaluates.

    Returns the mean cross-entropy loss and the accuracy (fraction in [0, 1]).
    """
    train = optimizer is not None
    model.train(train)
    loss_fn = nn.CrossEntropyLoss(reduction="sum")
    total_loss, correct, count = 0.0, 0, 0
    with torch.set_grad_enabled(train):
        for images, labels in loader:
            images, labels = images.to(device), labels.to(device)
            logits = model(images)  # (batch, num_classes)
            loss = loss_fn(logits, labels)
            if train:
                optimizer.zero_grad(set_to_none=True)
                (loss / len(labels)).backward()  # mean loss over the batch
                optimizer.step()
            total_loss += loss.item()
            correct += (logits.argmax(1) == labels).sum().item()
            count += len(labels)
    if count == 0:
        raise ValueError("the data loader is empty")
    return total_loss / count, correct / count


def train_classifier(
    model: nn.Module,
    train_loader: DataLoader,
    val_loader: DataLoader,
    epochs: int = 20,
    lr: float = 1e-3,
    patience: int = 3,
    device: Union[str, torch.device] = "cpu",
    optimizer: Optional[torch.optim.Optimizer] = None,
    verbose: bool = True,
) -> dict[str, list[float]]:
    """Train with Adam (or ``optimizer``) and early stopping; restore the best weights.

    Returns ``history``: ``train_loss``, ``val_loss``, ``train_acc``, ``val_acc`` and
    ``seconds`` (wall time of each epoch), one value per epoch run.
    """
    model.to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = optimizer or torch.optim.Adam(params, lr=lr)
    stopper = EarlyStopping(patience)
    history: dict[str, list[float]] = {k: [] for k in ("train_loss", "val_loss", "train_acc", "val_acc", "seconds")}
    for epoch in range(1, epochs + 1):
        start = time.perf_counter()
        train_loss, train_acc = run_epoch(model, train_loader, device, optimizer)
        val_loss, val_acc = run_epoch(model, val_loader, device)
        for key, value in zip(history, (train_loss, val_loss, train_acc, val_acc, time.perf_counter() - start)):
            history[key].append(value)
        if verbose:
            print(f"epoch {epoch:2d}: train_loss {train_loss:.3f}  val_loss {val_loss:.3f}  "
                  f"train_acc {train_acc:.3f}  val_acc {val_acc:.3f}  ({history['seconds'][-1]:.1f} s)")
        if stopper.step(val_loss, model):
            if verbose:
                print(f"early stopping: no improvement for {patience} epochs; best epoch {stopper.best_epoch}")
            break
    stopper.restore(model)
    return history


@torch.no_grad()
def predict(
    model: nn.Module, loader: DataLoader, device: Union[str, torch.device] = "cpu"
) -> tuple[np.ndarray, np.ndarray]:
    """True labels ``(N,)`` and predicted probabilities ``(N, num_classes)`` over ``loader``."""
    model.to(device)
    labels, probs = [], []
    with evaluating(model):
        for images, y in loader:
            probs.append(model(images.to(device)).softmax(1).cpu())  # (batch, num_classes)
            labels.append(y)
    return torch.cat(labels).numpy(), torch.cat(probs).numpy()


def classification_report(y_true: np.ndarray, y_pred: np.ndarray, class_names: Sequence[str]) -> pd.DataFrame:
    """Precision, recall, F1 and support per class (scikit-learn), plus macro averages.

    precision = TP / (TP + FP): of the images predicted as this class, the share that are;
    recall = TP / (TP + FN): of the images of this class, the share found;
    F1 = their harmonic mean. A class never predicted gets precision 0 (no division error).
    """
    labels = list(range(len(class_names)))
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    table = pd.DataFrame({"precision": p, "recall": r, "f1": f, "support": s}, index=list(class_names))
    table.loc["macro avg"] = [p.mean(), r.mean(), f.mean(), s.sum()]
    table["support"] = table["support"].astype(int)
    return table


def confusion(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """``(num_classes, num_classes)`` counts: row = true class, column = predicted class."""
    return confusion_matrix(y_true, y_pred, labels=list(range(num_classes)))
