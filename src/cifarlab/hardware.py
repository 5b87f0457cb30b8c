"""Which device, which precision, and how many images per pass: the hardware choices, checked, not assumed."""

from __future__ import annotations

import ctypes
import json
import os
import platform
import time
from pathlib import Path

import torch

from .errors import ConfigError, UserError
from .io import atomic_write_text


def select_device(name: str = "auto") -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"unknown device '{name}': use auto, cpu, cuda, cuda:N or mps") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UserError("device 'cuda' asked for but no CUDA GPU is available: use --device cpu or auto")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise UserError(
            f"device '{name}' asked for but there are {torch.cuda.device_count()} GPUs: use cuda:0 .. "
            f"cuda:{torch.cuda.device_count() - 1}"
        )
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise UserError("device 'mps' asked for but MPS is not available: use --device cpu or auto")
    return dev


_allocator_tuned = False


def is_glibc() -> bool:
    try:
        return os.confstr("CS_GNU_LIBC_VERSION").startswith("glibc")
    except (AttributeError, ValueError, OSError):  # not a POSIX system, or no GNU libc
        return False


def keep_freed_memory(device: torch.device) -> bool:
    """Tell glibc's malloc to keep freed memory in the process instead of handing it back to the kernel.

    A training step allocates and frees ~1 GB of activations in blocks above glibc's largest mmap threshold:
    by default each is a fresh mmap, so the kernel maps and zeroes every page anew each step (measured in
    docs/experiments.md). Memory then stays at its peak until the process ends. CPU devices on glibc only (a
    GPU has its own caching allocator); returns whether the setting is in force."""
    global _allocator_tuned
    if _allocator_tuned:
        return True
    if device.type != "cpu" or not is_glibc():
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    m_trim_threshold, m_mmap_max = -1, -4  # mallopt parameters from <malloc.h>
    # mallopt returns 1 on success: no mmap for big blocks, and trim the heap only once 2 GiB at its top are free
    _allocator_tuned = bool(libc.mallopt(m_mmap_max, 0)) and bool(libc.mallopt(m_trim_threshold, 2**31 - 1))
    return _allocator_tuned


def _cpuinfo() -> str:
    try:
        return Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""


def cpu_has_native_bf16() -> bool:
    """True when the CPU computes bf16 in hardware (AVX512-BF16 or AMX); emulated bf16 is slower than fp32."""
    flags = _cpuinfo()
    if cpu_vector_isa(flags) in ("AMX", "AVX-512 BF16"):
        return True
    return platform.machine() in ("arm64", "aarch64") and " bf16" in flags


_bf16_measured: dict[int, bool] = {}
BF16_MARGIN = 1.25  # bf16 must be this much faster: a noisy timing must not flip a machine's precision
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "cifarlab"


def cpu_bf16_is_faster(repeats: int = 2) -> bool:
    """Whether bf16 autocast trains a convolution clearly faster than fp32 on this CPU (some that advertise
    AVX512-BF16 without AMX run it slower: a 2-core Xeon, model 207, trained the advanced preset at 186 img/s
    in bf16 against 311 in fp32). Timed once per machine (CPU, threads, torch) and kept in the cache folder,
    so every run on a machine makes the same choice and a resumed run continues in its precision."""
    threads = torch.get_num_threads()
    if threads in _bf16_measured:
        return _bf16_measured[threads]
    key = f"{_cpu_model()}|{cpu_vector_isa(_cpuinfo())}|{threads}|{torch.__version__}"
    path = CACHE / "cpu_bf16.json"
    try:
        known = json.loads(path.read_text())
    except (OSError, ValueError):
        known = {}
    if not isinstance(known, dict) or not isinstance(known.get(key), bool):
        known = known if isinstance(known, dict) else {}
        known[key] = _time_bf16_against_fp32(repeats) > BF16_MARGIN
        try:
            atomic_write_text(path, json.dumps(known, indent=1) + "\n")
        except OSError:
            pass  # a read-only home: the choice is measured again next time
    _bf16_measured[threads] = known[key]
    return known[key]


def _time_bf16_against_fp32(repeats: int) -> float:
    """fp32 seconds over bf16 seconds for a conv's forward and backward, each in the passes training uses."""
    conv = torch.nn.Conv2d(64, 64, 3, padding=1).to(memory_format=torch.channels_last)
    x = torch.randn(256, 64, 16, 16).contiguous(memory_format=torch.channels_last).requires_grad_()

    def seconds(dtype, passes):
        best = float("inf")
        for _ in range(repeats + 1):  # the first round warms up oneDNN's kernels
            t0 = time.perf_counter()
            for part in x.split(len(x) // passes):
                with autocast(torch.device("cpu"), dtype):
                    conv(part).float().sum().backward()
            best = min(best, time.perf_counter() - t0)
        return best

    return seconds(None, len(x) // CPU_FP32_MICRO_BATCH) / seconds(torch.bfloat16, 1)


def _cpu_model() -> str:
    info = _cpuinfo()
    return next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")),
                platform.processor() or platform.machine())  # fmt: skip


def select_precision(device: torch.device, precision: str = "auto") -> torch.dtype | None:
    """The autocast dtype, or None for fp32."""
    if precision == "fp32":
        return None
    if precision == "bf16":
        return torch.bfloat16
    if precision == "fp16":
        if device.type == "cpu":
            raise UserError("fp16 autocast is for GPUs: use --set runtime.precision=bf16 or fp32 on CPU")
        return torch.float16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "cpu" and cpu_has_native_bf16() and cpu_bf16_is_faster():
        return torch.bfloat16
    return None


def autocast(device: torch.device, dtype):
    """Autocast to `dtype` on the device, or an fp32 no-op context when dtype is None."""
    return torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None)


def host_to_device(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A host tensor (randomness drawn on the CPU generator, indices chosen on the host) onto `device`. On CUDA the
    copy goes through pinned memory without blocking: a plain copy waits for the whole queue, and an augmented
    batch makes dozens of them, which cost a GPU more time than the training step."""
    if device.type == "cuda":
        return t.pin_memory().to(device, non_blocking=True)
    return t.to(device)


def dtype_name(dtype) -> str:
    return {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[dtype]


def device_description(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    if device.type == "cpu":
        name, isa = _cpu_model(), cpu_vector_isa(_cpuinfo())
        n = torch.get_num_threads()
        return f"cpu ({name}, {n} thread{'s' * (n != 1)}{', ' + isa if isa else ''})"
    return device.type


def machine_label(description: str) -> str:
    """device_description's short form for a figure: 'cpu (Intel(R) Xeon(R) Processor, 2 threads, AVX2)' ->
    'Xeon, AVX2'."""
    inside = description.split("(", 1)[-1].rstrip(")").replace("(R)", "").replace(" Processor", "")
    return ", ".join(p.removeprefix("Intel ").strip() for p in inside.split(",") if "thread" not in p)


def cpu_vector_isa(info: str) -> str:
    """The widest vector unit named in /proc/cpuinfo: one CPU model name can come with or without AVX-512,
    and that alone can make training 2.5x faster or slower, so run summaries record it."""
    for flag, label in (
        (" amx_bf16", "AMX"),
        (" avx512_bf16", "AVX-512 BF16"),
        (" avx512f", "AVX-512"),
        (" avx2", "AVX2"),
    ):
        if flag in info:
            return label
    return ""


# Images per pass where a CPU computes in fp32: the activations of 128 images stay in cache, those of 1024 do
# not (docs/experiments.md has the measurements).
CPU_FP32_MICRO_BATCH = 128


def auto_micro_batch(device: torch.device, dtype) -> int | None:
    """Images per pass (training with runtime.micro_batch=0, and inference), or None for the whole batch:
    smaller passes were measured faster only where the CPU computes in fp32."""
    return CPU_FP32_MICRO_BATCH if device.type == "cpu" and dtype is None else None
