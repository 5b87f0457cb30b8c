import json

import pytest
import torch

from cifarlab.commands.evaluate import evaluate_run


def test_evaluation_json_and_figures(two_runs, tiny_data):
    res = evaluate_run(str(two_runs[1]), data_path=str(tiny_data), robustness_n=50)
    ev = json.loads((two_runs[1] / "evaluation.json").read_text())
    for key in (
        "test_acc",
        "test_acc_ci",
        "per_class_acc",
        "precision",
        "recall",
        "f1",
        "confusion",
        "calibration",
        "top2_acc",
        "robustness",
        "inference_img_per_s",
        "test_pred",
        "temperature_scaling",
    ):
        assert key in ev, key
    assert ev["temperature_scaling"]["temperature"] > 0 and 0 <= ev["temperature_scaling"]["ece"] <= 1
    assert set(ev["robustness"]["per_corruption"]) >= {
        "gaussian_noise",
        "gaussian_blur",
        "contrast",
        "brightness",
        "jpeg",
        "pixelate",
    }
    assert set(ev["inference_img_per_s"]) == {"1", "256"}
    figs = set(res.figures)
    assert {"confusion.png", "reliability.png", "confident_wrong.png", "gradcam.png", "robustness.png"} <= figs
    assert any(f.startswith("attention_") for f in figs)  # the intermediate preset has CBAM and self-attention
    for f in figs:
        assert (two_runs[1] / f).read_bytes()[:4] == b"\x89PNG"


def test_robustness_clean_reference_is_one_view_like_the_corrupted_images(two_runs, tiny_data, monkeypatch):
    import cifarlab.commands.evaluate as ev

    real = ev.predict_logits

    def tta_always_wrong(model, loader, dtype=None, tta="none", fraction=1.0):
        logits, y = real(model, loader, dtype, "none")
        if tta != "none":  # make the TTA views disagree with the single view, so a mix-up shows
            logits = torch.nn.functional.one_hot((y + 1) % 10, 10).float()
        return logits, y

    monkeypatch.setattr(ev, "predict_logits", tta_always_wrong)
    res = evaluate_run(
        str(two_runs[1]),
        data_path=str(tiny_data),
        tta="flip_translate",
        robustness_n=100,
        write=False,
        figures=False,
        speed=False,
    )
    assert res.test_acc == 0 and res.without_tta["test_acc"] > 0.3
    assert res.robustness["n"] == 100  # the whole tiny test set: both accuracies cover the same images
    assert res.robustness["clean_acc_same_images"] == pytest.approx(res.without_tta["test_acc"])
