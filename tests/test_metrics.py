import pytest
import torch

from cifarlab.metrics import (
    calibration,
    confusion_matrix,
    fit_temperature,
    mcnemar,
    p_value_cell,
    per_class_accuracy,
    precision_recall_f1,
    temperature_scaling,
    wilson_interval,
)


def test_confusion_precision_recall_f1_by_hand():
    pred, y = torch.tensor([0, 1, 1, 2]), torch.tensor([0, 1, 2, 2])
    cm = confusion_matrix(pred, y, 3)
    assert cm.tolist() == [[1, 0, 0], [0, 1, 0], [0, 1, 1]]
    m = precision_recall_f1(cm)
    assert m["precision"] == pytest.approx([1.0, 0.5, 1.0])
    assert m["recall"] == pytest.approx([1.0, 1.0, 0.5])
    assert m["f1"] == pytest.approx([1.0, 2 / 3, 2 / 3])
    logits = torch.nn.functional.one_hot(pred, 3).float()
    assert per_class_accuracy(logits, y, 3) == pytest.approx([1.0, 1.0, 0.5])


def test_ece_by_hand():
    probs = torch.tensor([[0.9, 0.1], [0.3, 0.7]])
    y = torch.tensor([0, 0])  # first right at 0.9, second wrong at 0.7
    cal = calibration(probs, y, bins=10)
    assert cal["ece"] == pytest.approx(0.5 * 0.1 + 0.5 * 0.7)
    assert sum(b["count"] for b in cal["bins"]) == 2
    perfect = calibration(torch.tensor([[1.0, 0.0]] * 4), torch.tensor([0] * 4))
    assert perfect["ece"] == pytest.approx(0.0)
    # bins are (lo, hi]: a confidence of exactly 0.5 belongs to (0.4, 0.5], not (0.5, 0.6]
    edge = calibration(torch.tensor([[0.5, 0.5, 0.0]]), torch.tensor([0]), bins=10)["bins"]
    assert edge[4]["count"] == 1 and edge[5]["count"] == 0


def test_temperature_scaling_recovers_the_true_temperature():
    g = torch.Generator().manual_seed(0)
    logits = 3 * torch.randn(20000, 10, generator=g)
    # Labels drawn from softmax(logits / 2): the logits are overconfident by exactly T = 2.
    y = torch.multinomial((logits / 2).softmax(-1), 1, generator=g).squeeze(1)
    assert fit_temperature(logits[:10000], y[:10000]) == pytest.approx(2.0, rel=0.05)
    res = temperature_scaling(logits[:10000], y[:10000], logits[10000:], y[10000:])
    assert res["ece"] < 0.5 * calibration(logits[10000:].softmax(-1), y[10000:])["ece"]
    assert res["test_loss"] < torch.nn.functional.cross_entropy(logits[10000:], y[10000:]).item()


def test_mcnemar_by_hand():
    a = torch.tensor([True] * 5 + [True] * 10)
    b = torch.tensor([False] * 5 + [True] * 10)
    t = mcnemar(a, b)
    assert (t["a_only"], t["b_only"]) == (5, 0) and t["p_value"] == pytest.approx(2 * 0.5**5)
    same = mcnemar(a, a)
    assert same["p_value"] == 1.0
    big = mcnemar(torch.tensor([True] * 600 + [False] * 400), torch.tensor([False] * 600 + [True] * 400))
    assert 0 < big["p_value"] < 1e-8  # 600 vs 400 disagreements: clearly different, and no overflow
    # 2,200 vs 140 (the baseline against the advanced net) underflows a double: the report bounds it
    huge = mcnemar(torch.tensor([True] * 2200 + [False] * 140), torch.tensor([False] * 2200 + [True] * 140))
    assert huge["p_value"] == 0.0 and p_value_cell(huge["p_value"]) == "< 1e-300"
    assert p_value_cell(big["p_value"]) == f"{big['p_value']:.3g}" and p_value_cell(0.189) == "0.189"


def test_wilson_interval_by_hand():
    lo, hi = wilson_interval(50, 100)
    assert lo == pytest.approx(0.4038, abs=1e-4) and hi == pytest.approx(0.5962, abs=1e-4)
    lo, hi = wilson_interval(100, 100)
    assert hi == pytest.approx(1.0) and 0.95 < lo < 0.97


def test_bootstrap_accuracy_difference_and_interval():
    """Point estimate = difference of the mean accuracies; the interval holds it, widens with the seeds'
    spread, and a one-sided call gives the mean accuracy's own interval."""
    from cifarlab.metrics import bootstrap_accuracy

    g = torch.Generator().manual_seed(0)
    a = torch.rand(3, 4000, generator=g) < torch.tensor([[0.80], [0.82], [0.84]])
    b = torch.rand(2, 4000, generator=g) < 0.70
    d, lo, hi = bootstrap_accuracy(a, b)
    assert abs(d - (a.float().mean() - b.float().mean()).item()) < 1e-6
    assert lo < d < hi and 0.08 < lo and hi < 0.16
    same = a[[1, 1, 1]]  # three identical seeds: only the test images vary
    _, lo1, hi1 = bootstrap_accuracy(same, b)
    assert hi1 - lo1 < hi - lo
    m, lo2, hi2 = bootstrap_accuracy(a)
    assert abs(m - a.float().mean().item()) < 1e-6 and lo2 < m < hi2
