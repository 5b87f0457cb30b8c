"""Trained models leave the lab: prediction on the user's own images, and ONNX / TorchScript export."""

from __future__ import annotations

import io
import json
import tempfile
import warnings
from pathlib import Path

import torch
import torch.nn as nn

from . import ConfigError, UserError
from .data import CLASSES, MEAN, STD


class ImageError(UserError):
    pass


def load_image(path: Path) -> torch.Tensor:
    """Any PNG/JPEG (any size or mode) -> (3, 32, 32) uint8 RGB, resized with antialiasing."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if path.is_dir():
        raise ImageError(f"{path}: is a folder; give image files (e.g. {path}/*.jpg)")
    if not path.is_file():
        raise ImageError(f"{path}: no such file")
    try:
        with Image.open(path) as im:
            im = im.convert("RGB").resize((32, 32), Image.Resampling.BICUBIC, reducing_gap=3.0)
            data = torch.frombuffer(bytearray(im.tobytes()), dtype=torch.uint8)
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError) as e:
        raise ImageError(f"{path}: not a readable image ({type(e).__name__}: {str(e)[:120]})") from None
    return data.view(32, 32, 3).permute(2, 0, 1).contiguous()


class Normalized(nn.Module):
    """The model with input normalization inside: takes float RGB in [0, 1], (N, 3, 32, 32); returns logits."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.register_buffer("mean", torch.tensor(MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(STD).view(1, 3, 1, 1))

    def forward(self, x):
        return self.model((x - self.mean) / self.std)


def fitted_temperature(checkpoint: str | Path, tta: str) -> float | None:
    """The temperature `cifarlab evaluate` fitted on the run's validation split for this checkpoint and TTA,
    or None when there is no such evaluation.json, or the checkpoint was rewritten after it."""
    checkpoint = Path(checkpoint)
    ev = checkpoint.parent / "evaluation.json"
    try:
        res = json.loads(ev.read_text())
        fresh = ev.stat().st_mtime >= checkpoint.stat().st_mtime
    except (OSError, ValueError):
        return None
    ts = res.get("temperature_scaling") if isinstance(res, dict) else None
    if not (fresh and isinstance(ts, dict) and res.get("tta") == tta
            and Path(str(res.get("checkpoint", ""))).name == checkpoint.name):
        return None
    t = ts.get("temperature")
    return float(t) if isinstance(t, (int, float)) and t > 0 else None


def predict(run: str, images: list[str], top_k: int = 3, device: str = "cpu", tta: str | None = None,
            chunk: int = 256, calibrate: bool = True) -> tuple[list[dict], list[str]]:
    """Top-k classes for each image, with the run's test-time augmentation unless `tta` says otherwise (so a
    prediction is made the way the run's test accuracy was). With `calibrate`, probabilities are divided by
    the temperature `cifarlab evaluate` fitted, when it did. Returns (results, errors); a bad file does not
    stop the others."""
    from .checkpoint import model_from_checkpoint
    from .evaluate import infer_tta
    from .hardware import select_device

    if top_k < 1:
        raise ConfigError(f"--top must be at least 1, got {top_k}")
    model, cfg, ckpt = model_from_checkpoint(Path(run), select_device(device))
    tta = tta or cfg.eval.tta
    t = fitted_temperature(ckpt["path"], tta) if calibrate else None
    net = Normalized(model).to(next(model.parameters()).device).eval()
    results, errors, good, tensors = [], [], [], []
    for p in images:
        try:
            tensors.append(load_image(Path(p)))
            good.append(p)
        except ImageError as e:
            errors.append(str(e))
    probs = []
    for part in torch.stack(tensors).split(chunk) if tensors else []:  # memory stays flat for many images
        x = part.float().div(255).to(next(net.parameters()).device)
        probs.append((infer_tta(net, x, None, tta) / (t or 1.0)).softmax(-1).cpu())
    k = min(top_k, len(CLASSES))
    for p, row in zip(good, torch.cat(probs) if probs else []):
        top = row.topk(k)
        results.append({"image": p, "top": [{"class": CLASSES[i], "prob": round(v, 4)}
                                            for v, i in zip(top.values.tolist(), top.indices.tolist())],
                        "tta": tta, "temperature": t})
    return results, errors


def export(run: str, fmt: str, out: str | None = None, atol: float = 1e-4) -> tuple[Path, dict]:
    """Export the best checkpoint (normalization included) and check it against PyTorch on random inputs."""
    from .checkpoint import model_from_checkpoint
    from .io import atomic_write_bytes

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
        raise UserError(f"exported model differs from PyTorch by {check['max_abs_diff']:.2e} (> {atol}), "
                        "so it was not written: report this with the run's config.yaml")
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
        import onnx  # noqa: F401
    except ImportError:
        raise UserError("ONNX export needs the onnx package: pip install onnx onnxruntime") from None
    with tempfile.TemporaryDirectory() as tmp:
        tmp_file = Path(tmp) / "model.onnx"
        torch.onnx.export(net, (example,), str(tmp_file), input_names=["images"], output_names=["logits"],
                          dynamic_axes={"images": {0: "batch"}, "logits": {0: "batch"}}, dynamo=False)
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
FORMATS = {"onnx": (".onnx", _onnx_bytes), "torchscript": (".pt", _torchscript_bytes), "export": (".pt2", _exported_bytes)}


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
        import onnxruntime as ort
    except ImportError:
        return {"runtime": None, "note": "onnxruntime not installed: output check skipped"}
    sess = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    got = torch.from_numpy(sess.run(None, {"images": x.numpy()})[0])
    return {"runtime": "onnxruntime", "max_abs_diff": float((got - want).abs().max())}
