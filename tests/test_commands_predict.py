import json

import numpy as np
import pytest
import torch
from PIL import Image

from cifarlab.cli import main
from cifarlab.commands.predict import load_image
from cifarlab.train import train


@pytest.fixture(scope="module")
def trained(tiny_data, tmp_path_factory):
    from cifarlab.config import apply_overrides, load_preset
    from conftest import TINY

    cfg = apply_overrides(load_preset("intermediate"), TINY + [f"data.dir={tiny_data}", "train.epochs=1"])
    run_dir, _ = train(cfg, tmp_path_factory.mktemp("runs"))
    return run_dir


def test_load_image_any_size_and_mode(tmp_path):
    Image.new("L", (300, 200), 128).save(tmp_path / "grey.png")
    Image.new("RGBA", (50, 70), (255, 0, 0, 128)).save(tmp_path / "rgba.png")
    Image.new("RGB", (640, 480), (0, 0, 255)).save(tmp_path / "big.jpg", quality=90)
    for name in ("grey.png", "rgba.png", "big.jpg"):
        x = load_image(tmp_path / name)
        assert x.shape == (3, 32, 32) and x.dtype == torch.uint8
    assert load_image(tmp_path / "big.jpg")[2].float().mean() > 200  # blue stays blue


def test_load_image_scales_16_bit_greyscale(tmp_path):
    """A 16-bit PNG reads as the same picture as its 8-bit copy (Pillow's RGB conversion alone clips it white)."""
    ramp = np.linspace(0, 255, 40 * 40).reshape(40, 40).round().astype(np.uint8)
    Image.fromarray(ramp, "L").save(tmp_path / "g8.png")
    Image.fromarray(ramp.astype(np.uint16) * 257).save(tmp_path / "g16.png")  # 0-65535
    assert Image.open(tmp_path / "g16.png").mode.startswith("I")
    g8, g16 = load_image(tmp_path / "g8.png").int(), load_image(tmp_path / "g16.png").int()
    assert (g8 - g16).abs().max() <= 1 and g16.float().mean() < 160


def test_load_image_turns_a_photo_upright_by_its_exif_orientation(tmp_path):
    """A camera stores a portrait photo sideways with orientation 6 (turn 90° clockwise to view)."""
    upright = np.zeros((64, 48, 3), np.uint8)
    upright[:16] = (255, 0, 0)  # a red top band
    Image.fromarray(upright).save(tmp_path / "upright.png")
    stored = Image.fromarray(upright).transpose(Image.Transpose.ROTATE_90)  # as the sensor wrote it
    exif = Image.Exif()
    exif[0x0112] = 6
    stored.save(tmp_path / "phone.jpg", quality=95, exif=exif)
    want, got = load_image(tmp_path / "upright.png").int(), load_image(tmp_path / "phone.jpg").int()
    assert got[0, :4].float().mean() > 200 and (got - want).abs().float().mean() < 8


def test_predict_cli(trained, tmp_path, capsys):
    Image.new("RGB", (64, 64), (200, 30, 30)).save(tmp_path / "a.png")
    Image.new("RGB", (20, 20), (30, 200, 30)).save(tmp_path / "b.jpg")
    (tmp_path / "notimage.png").write_text("hello")
    assert (
        main(["predict", str(trained), str(tmp_path / "a.png"), str(tmp_path / "b.jpg"), "--json", "--top", "2"]) == 0
    )
    out = json.loads(capsys.readouterr().out)
    assert [r["image"] for r in out["results"]] == [str(tmp_path / "a.png"), str(tmp_path / "b.jpg")]
    top = out["results"][0]["top"]
    assert len(top) == 2 and top[0]["prob"] >= top[1]["prob"] and 0 < top[0]["prob"] <= 1
    code = main(
        [
            "predict",
            str(trained),
            str(tmp_path / "a.png"),
            str(tmp_path / "notimage.png"),
            str(tmp_path / "missing.png"),
        ]
    )
    captured = capsys.readouterr()
    assert code == 1
    assert "a.png:" in captured.out  # the good one is still classified
    assert "notimage.png: not a readable image" in captured.err and "missing.png: no such file" in captured.err
    assert "Traceback" not in captured.err


def test_predict_uses_the_runs_tta_or_the_one_asked(trained, tmp_path):
    """Predictions are made the way test accuracy was: the run's TTA by default (here none), or --tta."""
    import torch.nn.functional as F

    from cifarlab.checkpoint import model_from_checkpoint
    from cifarlab.commands.predict import predict
    from cifarlab.inference import Normalized

    Image.new("RGB", (40, 30), (10, 200, 90)).save(tmp_path / "a.png")
    gradient = torch.linspace(0, 255, 32).to(torch.uint8).expand(3, 32, 32).permute(1, 2, 0).contiguous().numpy()
    Image.fromarray(gradient).save(tmp_path / "b.png")  # not mirror-symmetric: the mirror view changes the logits
    paths = [str(tmp_path / "a.png"), str(tmp_path / "b.png")]
    from cifarlab.hardware import autocast, select_precision

    net = Normalized(model_from_checkpoint(trained)[0]).eval()
    x = torch.stack([load_image(p) for p in paths]).float() / 255
    cpu = torch.device("cpu")
    dtype = select_precision(cpu, "auto")  # predict runs in the run's precision: bf16 where the CPU has it
    with torch.no_grad(), autocast(cpu, dtype):
        plain = net(x).softmax(-1)
        flip = (0.5 * F.log_softmax(net(x), -1) + 0.5 * F.log_softmax(net(x.flip(-1)), -1)).softmax(-1)
    assert not torch.allclose(plain[1], flip[1], atol=1e-4)
    for tta, want in ((None, plain), ("flip", flip)):
        results, errors = predict(str(trained), paths, top_k=10, tta=tta, chunk=1, calibrate=False)  # 1 per pass
        assert not errors and [r["tta"] for r in results] == [tta or "none"] * 2
        for r, row in zip(results, want):
            got = {t["class"]: t["prob"] for t in r["top"]}
            assert len(got) == 10
            for c, prob in zip(
                ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"), row.tolist()
            ):
                assert got[c] == pytest.approx(prob, abs=1e-4 if dtype == torch.float32 else 3e-3)


def test_predict_applies_the_temperature_evaluate_fitted(trained, tmp_path, capsys):
    import os
    import shutil

    from cifarlab.commands.evaluate import evaluate_run
    from cifarlab.commands.predict import predict

    run = tmp_path / "run"
    shutil.copytree(trained, run)
    Image.new("RGB", (40, 30), (10, 200, 90)).save(tmp_path / "a.png")
    img = [str(tmp_path / "a.png")]
    raw = predict(str(run), img, top_k=10)[0][0]
    assert raw["temperature"] is None  # not evaluated yet: nothing to calibrate with
    t = evaluate_run(str(run), robustness_n=0, figures=False, speed=False).temperature_scaling["temperature"]
    cal = predict(str(run), img, top_k=10)[0][0]
    assert cal["temperature"] == pytest.approx(t)
    p_raw = torch.tensor([r["prob"] for r in sorted(raw["top"], key=lambda r: r["class"])])
    p_cal = torch.tensor([r["prob"] for r in sorted(cal["top"], key=lambda r: r["class"])])
    # softmax(z / T): a class's log-ratio to the top class is divided by T. The probabilities are rounded to 4
    # decimals, which moves log p by up to 5e-5 / p: the bound each comparison is held to
    big = (p_raw >= 0.01) & (p_cal >= 0.01)
    assert big.sum() >= 2 and abs(t - 1) > 0.1, (p_raw, t)
    lr, lc = p_raw[big].log(), p_cal[big].log()
    top = lr.argmax()
    slack = (5e-5 / p_raw[big] + 5e-5 / p_raw[big][top]) / t + 5e-5 / p_cal[big] + 5e-5 / p_cal[big][top] + 1e-4
    assert ((lc - lc[top]) - (lr - lr[top]) / t).abs().le(slack).all(), (lc - lc[top], (lr - lr[top]) / t, slack)
    assert predict(str(run), img, calibrate=False)[0][0]["temperature"] is None
    assert predict(str(run), img, tta="flip")[0][0]["temperature"] is None  # fitted for another TTA
    assert main(["predict", str(run), *img]) == 0 and f"calibrated with T={t:.3f}" in capsys.readouterr().out
    ev = json.loads((run / "evaluation.json").read_text())
    del ev["step"]  # as written before evaluation.json recorded its step: the files' times decide
    (run / "evaluation.json").write_text(json.dumps(ev))
    assert predict(str(run), img)[0][0]["temperature"] == pytest.approx(t)
    later = os.stat(run / "evaluation.json").st_mtime + 5
    os.utime(run / "best.pt", (later, later))  # the checkpoint changed after evaluation: its T no longer holds
    assert predict(str(run), img)[0][0]["temperature"] is None


def test_predict_refuses_folders_truncated_files_bombs_and_bad_top(trained, tmp_path, capsys, monkeypatch):
    Image.new("RGB", (64, 64), (200, 30, 30)).save(tmp_path / "a.jpg")
    (tmp_path / "half.jpg").write_bytes((tmp_path / "a.jpg").read_bytes()[:300])  # cut mid-stream
    Image.new("RGB", (64, 64)).save(tmp_path / "bomb.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 4096 px > 2x the limit: PIL's bomb error
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("not an image")
    files = [str(tmp_path / "half.jpg"), str(tmp_path / "bomb.png"), str(tmp_path / "empty")]
    assert main(["predict", str(trained), *files]) == 1
    err = capsys.readouterr().err
    assert "half.jpg: not a readable image" in err and "bomb.png: not a readable image" in err
    assert f"{tmp_path / 'empty'}: a folder without images" in err and "Traceback" not in err
    assert main(["predict", str(trained), str(tmp_path / "a.jpg"), "--top", "0"]) == 2
    assert "--top must be at least 1" in capsys.readouterr().err


def test_predict_reads_folders_and_scores_class_named_ones(trained, tmp_path, capsys):
    """A folder stands for the image files under it, sorted (other files skipped); an image filed under a
    class-named folder is labelled by it, and the accuracy over those is printed: one image filed under the
    class it is predicted as and under another scores exactly 50%."""
    from cifarlab.commands.predict import predict

    Image.new("RGB", (40, 30), (10, 200, 90)).save(tmp_path / "x.png")
    top = predict(str(trained), [str(tmp_path / "x.png")])[0][0]["top"]
    right, wrong = top[0]["class"], top[-1]["class"]
    photos = tmp_path / "photos"
    for cls in (right, wrong):
        (photos / cls).mkdir(parents=True)
        (photos / cls / "x.PNG").write_bytes((tmp_path / "x.png").read_bytes())
    (photos / "holiday").mkdir()
    (photos / "holiday" / "x.png").write_bytes((tmp_path / "x.png").read_bytes())
    (photos / "readme.txt").write_text("not an image")
    results, errors = predict(str(trained), [str(photos)])
    assert not errors and [r["image"] for r in results] == sorted(
        str(photos / d / "x.PNG") if d != "holiday" else str(photos / d / "x.png") for d in (right, wrong, "holiday")
    )
    assert sorted(r.get("label", "-") for r in results) == sorted([right, wrong, "-"])
    assert main(["predict", str(trained), str(photos), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["folder_accuracy"] == {"accuracy": 0.5, "images": 2}
    assert main(["predict", str(trained), str(photos)]) == 0
    assert "accuracy 50.00% on the 2 images filed under a class-named folder" in capsys.readouterr().out


def test_predict_selective_tta_gives_views_to_the_least_confident_and_passes_keep_order(trained, tmp_path, monkeypatch):
    """With --tta-fraction 0.4 of 5 images, the 2 least confident (after a plain pass) take the mirror view and
    the other 3 keep their plain probabilities; passes of 2 images give what one pass gives, in order."""
    import torch.nn.functional as F

    from cifarlab.checkpoint import model_from_checkpoint
    from cifarlab.commands import predict as mod
    from cifarlab.inference import Normalized

    monkeypatch.setattr(mod, "select_precision", lambda dev, asked: torch.float32)  # exact sums: a tight tolerance
    predict = mod.predict
    paths = []
    g = torch.Generator().manual_seed(0)
    for i in range(5):  # half noise, half flat colour: no image is its own mirror
        img = torch.full((32, 32, 3), 40 * i, dtype=torch.uint8)
        img[:, :16] = torch.randint(0, 256, (32, 16, 3), generator=g, dtype=torch.uint8)
        Image.fromarray(img.numpy()).save(tmp_path / f"{i}.png")
        paths.append(str(tmp_path / f"{i}.png"))
    net = Normalized(model_from_checkpoint(trained)[0]).eval()
    x = torch.stack([load_image(p) for p in paths]).float() / 255
    with torch.no_grad():
        plain = F.log_softmax(net(x).float(), -1)
        flip = 0.5 * plain + 0.5 * F.log_softmax(net(x.flip(-1)).float(), -1)
    unsure = set(plain.max(-1).values.argsort()[:2].tolist())

    def probs(results):
        return torch.tensor([[t["prob"] for t in sorted(r["top"], key=lambda t: t["class"])] for r in results])

    got = probs(predict(str(trained), paths, top_k=10, tta="flip", tta_fraction=0.4, chunk=5, calibrate=False)[0])
    tol = 1e-4
    sure = [i for i in range(5) if i not in unsure]  # the mirror view would change them: the test can tell
    assert (flip[sure].softmax(-1) - plain[sure].softmax(-1)).abs().max() > 10 * tol
    for i in range(5):
        want = (flip if i in unsure else plain)[i].softmax(-1)
        assert torch.allclose(got[i], want, atol=tol), i
    one = probs(predict(str(trained), paths, top_k=10, tta="flip", chunk=5, calibrate=False)[0])
    passes = probs(predict(str(trained), paths, top_k=10, tta="flip", chunk=2, calibrate=False)[0])
    assert torch.allclose(one, passes, atol=tol) and torch.allclose(one, flip.softmax(-1), atol=tol)
