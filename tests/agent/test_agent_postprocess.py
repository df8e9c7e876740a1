from __future__ import annotations

import numpy as np
import pytest

from edgekit.agent.postprocess import classify


def test_logits_get_softmax_and_come_back_best_first():
    logits = np.array([[1.0, 3.0, -2.0, 2.0]], dtype=np.float32)
    top = classify(logits, ["a", "b", "c", "d"], topk=3)
    expected = np.exp(logits[0]) / np.exp(logits[0]).sum()
    assert [t["label"] for t in top] == ["b", "d", "a"]
    assert [t["index"] for t in top] == [1, 3, 0]
    assert [t["score"] for t in top] == [round(float(expected[i]), 4) for i in (1, 3, 0)]


def test_probabilities_are_kept_as_they_are():
    top = classify(np.array([0.1, 0.7, 0.2]), ["a", "b", "c"], topk=3)
    assert [(t["label"], t["score"]) for t in top] == [("b", 0.7), ("c", 0.2), ("a", 0.1)]


def test_non_negative_scores_that_do_not_sum_to_one_are_logits():
    top = classify(np.array([0.0, 2.0]), ["a", "b"], topk=2)
    assert top[0]["score"] == pytest.approx(0.8808, abs=1e-4)


def test_without_labels_the_index_is_the_label_and_topk_is_capped():
    top = classify(np.array([3.0, 1.0, 2.0]), [], topk=10)
    assert [t["label"] for t in top] == ["0", "2", "1"]
    assert sum(t["score"] for t in top) == pytest.approx(1.0, abs=1e-3)
