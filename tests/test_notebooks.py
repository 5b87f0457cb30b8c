from pathlib import Path

import pytest


@pytest.mark.slow
def test_notebook_executes_on_tiny_data(tiny_data, tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat", reason="nbformat not installed (pip install -e '.[test]')")
    nbclient = pytest.importorskip("nbclient", reason="nbclient not installed (pip install -e '.[test]')")
    monkeypatch.setenv("CIFAR10_DIR", str(tiny_data))
    monkeypatch.setenv("NOTEBOOK_SUBSET", "400")
    monkeypatch.setenv("NOTEBOOK_VAL", "50")
    monkeypatch.setenv("NOTEBOOK_EPOCHS", "1")
    monkeypatch.setenv("NOTEBOOK_OUT", str(tmp_path / "runs"))
    nb = nbformat.read(Path(__file__).parents[1] / "notebooks" / "stages.ipynb", as_version=4)
    nbclient.NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    outputs = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert "baseline: test accuracy" in outputs and "advanced: test accuracy" in outputs
    # NotebookPlot displayed the curves as images
    assert any("image/png" in o.get("data", {}) for c in nb.cells for o in c.get("outputs", []))
    assert (tmp_path / "runs" / "report" / "report.html").exists()
