"""Turn a classifier's output row into the top-k labelled scores written per frame."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np


def softmax(row: np.ndarray) -> np.ndarray:
    shifted = np.exp(row - np.max(row))
    return shifted / np.sum(shifted)


def is_distribution(row: np.ndarray) -> bool:
    return bool(np.all(row >= 0.0)) and abs(float(np.sum(row)) - 1.0) <= 1e-3


def classify(logits: np.ndarray, labels: Sequence[str], topk: int) -> list[dict[str, Any]]:
    """Top-k classes of one frame's output (a batch of one), best first.

    Models exported with a softmax head already give probabilities; applying softmax again
    would flatten them towards uniform, so a row that is a distribution is kept as is.
    """
    row = np.asarray(logits, dtype=np.float64).reshape(-1)
    if not is_distribution(row):
        row = softmax(row)
    order = [int(i) for i in np.argsort(-row, kind="stable")[: max(0, int(topk))]]
    return [
        {
            "index": i,
            "label": labels[i] if i < len(labels) else str(i),
            "score": round(float(row[i]), 4),
        }
        for i in order
    ]
