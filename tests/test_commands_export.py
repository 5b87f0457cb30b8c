import pytest
import torch

from cifarlab.cli import main
from cifarlab.commands.export import export
from cifarlab.train import train


@pytest.fixture(scope="module")
def trained(tiny_data, tmp_path_factory):
    from cifarlab.config import apply_overrides, load_preset
    from conftest import TINY

    cfg = apply_overrides(load_preset("intermediate"), TINY + [f"data.dir={tiny_data}", "train.epochs=1"])
    run_dir, _ = train(cfg, tmp_path_factory.mktemp("runs"))
    return run_dir


def test_export_torchscript_matches(trained, tmp_path):
    dest, check = export(str(trained), "torchscript", str(tmp_path / "m.pt"))
    assert check["max_abs_diff"] < 1e-4
    m = torch.jit.load(str(dest))
    assert m(torch.rand(7, 3, 32, 32)).shape == (7, 10)  # dynamic batch


def test_export_torch_export_program_matches(trained, tmp_path):
    dest, check = export(str(trained), "export", str(tmp_path / "m.pt2"))
    assert check["runtime"] == "torch.export" and check["max_abs_diff"] < 1e-4
    program = torch.export.load(str(dest)).module()
    assert program(torch.rand(9, 3, 32, 32)).shape == (9, 10)  # dynamic batch


def test_export_failures_keep_what_was_there(trained, tmp_path, capsys):
    from cifarlab import UserError

    dest = tmp_path / "m.pt"
    dest.write_bytes(b"previous export")
    with pytest.raises(UserError, match="so it was not written"):
        export(str(trained), "torchscript", str(dest), atol=-1.0)  # no model can pass: the check fails
    assert dest.read_bytes() == b"previous export"
    # /proc takes no new files, even from root
    assert main(["export", str(trained), "--out", "/proc/m.onnx", "--format", "torchscript"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: cannot write /proc/m.onnx") and "choose another --out" in err
    assert "Traceback" not in err


def test_export_onnx_matches(trained, tmp_path):
    pytest.importorskip("onnx", reason="onnx not installed (pip install onnx onnxruntime)")
    pytest.importorskip("onnxruntime", reason="onnxruntime not installed")
    dest, check = export(str(trained), "onnx", str(tmp_path / "m.onnx"))
    assert check["runtime"] == "onnxruntime" and check["max_abs_diff"] < 1e-4
    import onnxruntime as ort

    sess = ort.InferenceSession(str(dest), providers=["CPUExecutionProvider"])
    assert sess.run(None, {"images": torch.rand(3, 3, 32, 32).numpy()})[0].shape == (3, 10)
