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
        "jpeg_compression",
        "pixelate",
    }
    assert len(ev["robustness"]["per_corruption"]) == 19 and ev["robustness"]["seen"] == []
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


def test_suite_narrowed_and_seen_families_apart(two_runs, tiny_data):
    ev = evaluate_run(str(two_runs[0]), data_path=str(tiny_data), robustness_n=20, write=False, speed=False,
                      corruptions=["fog", "contrast"], severities=[5, 1])  # fmt: skip
    r = ev.robustness
    assert list(r["per_corruption"]) == ["fog", "contrast"] and r["severities"] == [1, 5]
    assert r["held_out_acc"] == pytest.approx(sum(r["per_corruption"]["fog"] + r["per_corruption"]["contrast"]) / 4)
    assert r["seen_acc"] is None and r["source"].startswith("generated")


def test_cifar10c_release_replaces_the_generated_images(two_runs, tiny_data, tmp_path):
    import numpy as np

    from cifarlab.data import load_cifar10

    data = load_cifar10(tiny_data)
    root = tmp_path / "CIFAR-10-C"
    root.mkdir()
    np.save(root / "labels.npy", np.tile(data.test_y.numpy().astype(np.uint8), 5))
    clean = data.test_x.permute(0, 2, 3, 1).numpy()
    np.save(root / "fog.npy", np.concatenate([clean] * 5))  # "corrupted" images that are the clean ones
    ev = evaluate_run(str(two_runs[0]), data_path=str(tiny_data), robustness_n=100, write=False, speed=False,
                      tta="none", cifar10c=str(root))  # fmt: skip
    assert list(ev.robustness["per_corruption"]) == ["fog"]
    assert ev.robustness["per_corruption"]["fog"] == [pytest.approx(ev.test_acc)] * 5
    assert "release" in ev.robustness["source"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--corruptions", "fog,smoke"], "unknown corruption smoke"),
        (["--severities", "0,3"], "--severities must be distinct values among 1-5"),
        (["--cifar10c", "/nonexistent"], "no such folder"),
    ],
)
def test_bad_suite_options_are_one_line(two_runs, tiny_data, capsys, args, message):
    from cifarlab.cli import main

    assert main(["evaluate", str(two_runs[0]), "--data", str(tiny_data), "--robustness-n", "10", *args]) != 0
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
