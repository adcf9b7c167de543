import numpy as np
import pytest
from scipy.stats import binomtest
from sklearn.metrics import accuracy_score, f1_score, log_loss, precision_recall_fscore_support

from cnnkit.train.metrics import classification_metrics, format_metrics, wilson_interval


@pytest.mark.parametrize("k,n", [(0, 10), (10, 10), (97, 100), (5, 7), (512, 1000)])
def test_wilson_matches_scipy(k, n):
    ci = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    lo, hi = wilson_interval(k, n)
    assert lo == pytest.approx(ci.low, abs=1e-9)
    assert hi == pytest.approx(ci.high, abs=1e-9)


def test_wilson_rejects_impossible_counts():
    with pytest.raises(ValueError, match="successes"):
        wilson_interval(11, 10)


def test_metrics_agree_with_sklearn():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 200)
    logits = rng.normal(size=(200, 3)) + 2.0 * np.eye(3)[y]
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    pred = probs.argmax(1)
    m = classification_metrics(y, probs, ["a", "b", "c"])
    assert m["accuracy"] == pytest.approx(accuracy_score(y, pred))
    assert m["macro_f1"] == pytest.approx(f1_score(y, pred, average="macro"))
    assert m["weighted_f1"] == pytest.approx(f1_score(y, pred, average="weighted"))
    assert m["log_loss"] == pytest.approx(log_loss(y, probs), rel=1e-6)
    p, r, f, s = precision_recall_fscore_support(y, pred)
    assert m["per_class"]["b"]["recall"] == pytest.approx(r[1])
    assert m["per_class"]["c"]["support"] == s[2]
    cm = np.array(m["confusion_matrix"])
    assert cm.sum() == 200 and np.trace(cm) == (pred == y).sum()
    assert cm[0].sum() == (y == 0).sum()  # rows are the true class
    assert m["accuracy_ci"][0] < m["accuracy"] < m["accuracy_ci"][1]
    text = format_metrics(m)
    assert "95% CI" in text and "confusion matrix" in text


def test_metrics_shape_error_names_shapes():
    with pytest.raises(ValueError, match=r"\(N, K\)"):
        classification_metrics([0, 1], np.ones((3, 2)) / 2, ["a", "b"])
