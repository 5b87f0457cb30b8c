"""Every preset and reference config, end to end on tiny data: build, train a step, save, load, export."""

from pathlib import Path

import pytest

from cifarlab import config
from cifarlab.commands.evaluate import evaluate_run
from cifarlab.commands.export import export
from cifarlab.config import apply_overrides, load_preset
from cifarlab.train import train
from conftest import TINY

CONFIGS = [*config.list_presets(), str(Path(config.PRESET_DIR) / "reference" / "airbench94_muon.yaml")]


@pytest.mark.slow
@pytest.mark.parametrize("preset", CONFIGS, ids=[Path(p).stem for p in CONFIGS])
def test_preset_trains_saves_loads_and_exports_the_same_logits(preset, tiny_data, tmp_path):
    pytest.importorskip("onnxruntime", reason="onnxruntime not installed")
    sets = TINY + [f"data.dir={tiny_data}", "train.epochs=1", "runtime.precision=fp32"]
    cfg = apply_overrides(load_preset(preset), sets)
    run_dir, summary = train(cfg, tmp_path)
    # the weights loaded from best.pt score exactly what the run reported
    ev = evaluate_run(str(run_dir), robustness_n=0, figures=False, speed=False, write=False)
    assert ev.test_acc == pytest.approx(summary.test_acc)
    for fmt in ("onnx", "export"):  # each format's own runtime on a new batch size matches PyTorch's logits
        _, check = export(str(run_dir), fmt, str(tmp_path / f"m.{fmt}"))
        assert check["max_abs_diff"] < 1e-4, (fmt, check)
