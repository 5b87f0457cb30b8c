"""`cifarlab export`: the best checkpoint (normalization included) as ONNX, a torch.export program or
TorchScript, checked against PyTorch with the format's own runtime before it is written."""

from __future__ import annotations

import io
import tempfile
import warnings
from pathlib import Path

import torch
import torch.nn as nn

from ..checkpoint import model_from_checkpoint
from ..errors import UserError
from ..inference import Normalized
from ..io import atomic_write_bytes


def export(run: str, fmt: str, out: str | None = None, atol: float = 1e-4) -> tuple[Path, dict]:
    """Export the best checkpoint (normalization included) and check it against PyTorch on random inputs."""
    if fmt not in FORMATS:
        raise UserError(f"unknown export format '{fmt}': choose {', '.join(FORMATS)}")
    model, cfg, ckpt = model_from_checkpoint(Path(run), "cpu")
    net = Normalized(model.float()).eval()
    run_path = Path(run)
    default_dir = run_path if run_path.is_dir() else run_path.parent
    dest = Path(out) if out else default_dir / f"model{FORMATS[fmt][0]}"
    example = torch.rand(2, 3, 32, 32)
    check_x = torch.rand(5, 3, 32, 32)  # a different batch size: the exported batch axis must be dynamic
    with torch.no_grad():
        want = net(check_x)
    # Tracing records the 32x32 path only; a size-dependent branch (self-attention's position table) warns
    # about that, which is expected here: the exported model takes 32x32 images.
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        data = FORMATS[fmt][1](net, example)
    check = _check_export(data, fmt, check_x, want)
    if check.get("max_abs_diff") is not None and check["max_abs_diff"] > atol:
        raise UserError(
            f"exported model differs from PyTorch by {check['max_abs_diff']:.2e} (> {atol}), "
            "so it was not written: report this with the run's config.yaml"
        )
    try:  # only a checked model reaches dest, and a previous file there survives any failure
        atomic_write_bytes(dest, data)
    except OSError as e:
        raise UserError(f"cannot write {dest} ({e.strerror or e}): choose another --out") from None
    return dest, check


def _torchscript_bytes(net: nn.Module, example: torch.Tensor) -> bytes:
    buf = io.BytesIO()
    torch.jit.save(torch.jit.trace(net, example), buf)
    return buf.getvalue()


def _onnx_bytes(net: nn.Module, example: torch.Tensor) -> bytes:
    try:
        import onnx  # noqa: F401, PLC0415 (optional: the export extra)
    except ImportError:
        raise UserError("ONNX export needs the onnx package: pip install onnx onnxruntime") from None
    with tempfile.TemporaryDirectory() as tmp:
        tmp_file = Path(tmp) / "model.onnx"
        torch.onnx.export(
            net,
            (example,),
            str(tmp_file),
            input_names=["images"],
            output_names=["logits"],
            dynamic_axes={"images": {0: "batch"}, "logits": {0: "batch"}},
            dynamo=False,
        )
        return tmp_file.read_bytes()


def _exported_bytes(net: nn.Module, example: torch.Tensor) -> bytes:
    """torch.export's ExportedProgram (.pt2): the successor of TorchScript, loadable by torch.export.load and
    AOTInductor. The batch axis is symbolic."""
    batch = torch.export.Dim("batch", min=1, max=65536)
    program = torch.export.export(net, (example,), dynamic_shapes=({0: batch},))
    buf = io.BytesIO()
    torch.export.save(program, buf)
    return buf.getvalue()


# format -> (file suffix, writer)
FORMATS = {
    "onnx": (".onnx", _onnx_bytes),
    "torchscript": (".pt", _torchscript_bytes),
    "export": (".pt2", _exported_bytes),
}


def _check_export(data: bytes, fmt: str, x: torch.Tensor, want: torch.Tensor) -> dict:
    """Run the exported bytes on `x` with the format's own runtime and compare with PyTorch's `want`."""
    if fmt in ("torchscript", "export"):
        with torch.no_grad():
            if fmt == "torchscript":
                got, runtime = torch.jit.load(io.BytesIO(data))(x), "torch.jit"
            else:
                got, runtime = torch.export.load(io.BytesIO(data)).module()(x), "torch.export"
        return {"runtime": runtime, "max_abs_diff": float((got - want).abs().max())}
    try:
        import onnxruntime as ort  # noqa: PLC0415 (optional: the export extra)
    except ImportError:
        return {"runtime": None, "note": "onnxruntime not installed: output check skipped"}
    sess = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    got = torch.from_numpy(sess.run(None, {"images": x.numpy()})[0])
    return {"runtime": "onnxruntime", "max_abs_diff": float((got - want).abs().max())}
