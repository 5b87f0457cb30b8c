import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
NOTEBOOK = ROOT / "notebooks" / "stages.ipynb"
nbformat = pytest.importorskip("nbformat", reason="nbformat not installed (pip install -e '.[test]')")
pytest.importorskip("nbclient", reason="nbclient not installed (pip install -e '.[test]')")
sys.path.insert(0, str(ROOT / "tools"))
import build_notebook  # noqa: E402


def test_committed_notebook_shows_what_results_give(monkeypatch):
    """The committed outputs are those the committed cells give on the committed results/: no stale number,
    and the figures are there for a reader who browses the code."""
    monkeypatch.setenv("NOTEBOOK_TRAIN", "0")
    committed = nbformat.read(NOTEBOOK, as_version=4)
    assert [c.source for c in committed.cells] == [c.source for c in build_notebook.build().cells], (
        "notebooks/stages.ipynb differs from tools/build_notebook.py: run python tools/build_notebook.py"
    )
    fresh = build_notebook.execute(build_notebook.build(), NOTEBOOK.parent)
    assert build_notebook.text_outputs(committed) == build_notebook.text_outputs(fresh), (
        "the notebook's outputs are stale: run python tools/build_notebook.py"
    )
    figures = [o for c in committed.cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    assert len(figures) == 3
    outputs = build_notebook.text_outputs(committed)
    assert "| advanced | 2d81b24e0c | 3 | 93.82% ± 0.25 |" in outputs[1]  # the preset's recipe today
    # the decomposition: five steps, the differences of the bench files' means (results/xeon/; the robust step
    # against advanced-clean on the robust runs' machine, results/robust/three_seeds/; the served checkpoint on
    # the same trainings, results/avx2/ and results/checkpoint_rule/)
    assert "Training techniques, same network: +12.18 points (intermediate-techniques, recipe cc10fbf6e6)" in outputs[2]
    assert "(the split's pick served): +0.11 points (advanced, recipe 7922189f7c), 1.05x" in outputs[2]
    assert "The last epoch served (train.checkpoint: last), AVX2 EPYC: +0.08 points" in outputs[2]


@pytest.mark.slow
def test_notebook_trains_the_stages_on_tiny_data(tiny_data, tmp_path, monkeypatch):
    monkeypatch.setenv("NOTEBOOK_TRAIN", "1")
    monkeypatch.setenv("CIFAR10_DIR", str(tiny_data))
    monkeypatch.setenv("NOTEBOOK_SUBSET", "400")
    monkeypatch.setenv("NOTEBOOK_VAL", "50")
    monkeypatch.setenv("NOTEBOOK_EPOCHS", "1")
    monkeypatch.setenv("NOTEBOOK_OUT", str(tmp_path / "runs"))
    nb = build_notebook.execute(build_notebook.build(), NOTEBOOK.parent)
    outputs = "".join(build_notebook.text_outputs(nb))
    assert "baseline: test accuracy" in outputs and "advanced: test accuracy" in outputs
    # NotebookPlot displayed the training curves as images, after the 3 figures of the results part
    assert sum("image/png" in o.get("data", {}) for c in nb.cells for o in c.get("outputs", [])) > 3
    assert (tmp_path / "runs" / "report" / "report.html").exists()
