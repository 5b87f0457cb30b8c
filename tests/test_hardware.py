import json

import pytest
import torch

from cifarlab import UserError
from cifarlab.hardware import select_precision


def test_precision_selection():
    cpu = torch.device("cpu")
    assert select_precision(cpu, "fp32") is None
    assert select_precision(cpu, "bf16") is torch.bfloat16
    with pytest.raises(UserError, match="fp16"):
        select_precision(cpu, "fp16")


def test_cpu_auto_precision_takes_bf16_only_where_measured_faster(monkeypatch):
    from cifarlab import hardware

    cpu = torch.device("cpu")
    monkeypatch.setattr(hardware, "cpu_has_native_bf16", lambda: True)
    monkeypatch.setattr(hardware, "_bf16_measured", {torch.get_num_threads(): False})
    assert select_precision(cpu) is None  # advertises bf16, runs it slower: fp32
    monkeypatch.setattr(hardware, "_bf16_measured", {torch.get_num_threads(): True})
    assert select_precision(cpu) is torch.bfloat16
    monkeypatch.setattr(hardware, "cpu_has_native_bf16", lambda: False)
    assert select_precision(cpu) is None  # emulated bf16 is never timed


def test_bf16_choice_is_timed_once_per_machine_and_kept(monkeypatch, tmp_path):
    from cifarlab import hardware

    timings = iter([2.0, 0.5])  # fp32 / bf16 seconds: bf16 twice as fast, then (were it timed again) slower
    monkeypatch.setattr(hardware, "_time_bf16_against_fp32", lambda repeats: next(timings))
    monkeypatch.setattr(hardware, "CACHE", tmp_path)
    monkeypatch.setattr(hardware, "_bf16_measured", {})
    assert hardware.cpu_bf16_is_faster() is True
    monkeypatch.setattr(hardware, "_bf16_measured", {})  # a new process on the same machine: the file decides
    assert hardware.cpu_bf16_is_faster() is True
    assert list(json.loads((tmp_path / "cpu_bf16.json").read_text()).values()) == [True]
    (tmp_path / "cpu_bf16.json").write_text("{broken")  # a damaged cache is measured again, not an error
    monkeypatch.setattr(hardware, "_bf16_measured", {})
    assert hardware.cpu_bf16_is_faster() is False  # 0.5: slower
    monkeypatch.setattr(hardware, "_time_bf16_against_fp32", lambda repeats: 1.1)
    (tmp_path / "cpu_bf16.json").unlink()
    monkeypatch.setattr(hardware, "_bf16_measured", {})
    assert hardware.cpu_bf16_is_faster() is False  # within the margin: fp32


def test_bf16_timing_returns_a_ratio():
    from cifarlab import hardware

    assert hardware._time_bf16_against_fp32(repeats=1) > 0


def test_cuda_precision_choice_without_a_gpu(monkeypatch):
    cuda = torch.device("cuda")
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert select_precision(cuda) is torch.bfloat16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert select_precision(cuda) is torch.float16  # older GPUs: fp16 autocast, with a GradScaler in Run


def test_cuda_index_beyond_the_gpus_is_refused(monkeypatch):
    from cifarlab.hardware import select_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert select_device("cuda:1") == torch.device("cuda:1")
    with pytest.raises(UserError, match="there are 2 GPUs: use cuda:0 .. cuda:1"):
        select_device("cuda:2")


def test_cpu_description_names_the_vector_unit(monkeypatch):
    from cifarlab import hardware

    flags = "processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: fpu sse2 avx avx2 fma"
    assert hardware.cpu_vector_isa(flags) == "AVX2"
    assert hardware.cpu_vector_isa(flags + " avx512f avx512bw avx512_bf16") == "AVX-512 BF16"
    assert hardware.cpu_vector_isa(flags + " avx512f") == "AVX-512"
    assert hardware.cpu_vector_isa("flags : fpu sse2") == ""
    monkeypatch.setattr(hardware, "_cpuinfo", lambda: flags)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    assert hardware.device_description(torch.device("cpu")) == "cpu (AMD EPYC, 2 threads, AVX2)"
    monkeypatch.setattr(torch, "get_num_threads", lambda: 1)  # a process of a 2-process torchrun on 2 cores
    assert hardware.device_description(torch.device("cpu")) == "cpu (AMD EPYC, 1 thread, AVX2)"
    assert not hardware.cpu_has_native_bf16()


_FAULTS_PER_STEP = """
import resource, sys
import torch, torch.nn as nn, torch.nn.functional as F
from cifarlab.hardware import keep_freed_memory
if sys.argv[1] == "tuned":
    assert keep_freed_memory(torch.device("cpu"))
torch.manual_seed(0)
conv = nn.Conv2d(16, 16, 3, padding=1)
x = torch.randn(256, 16, 64, 64)  # 64 MiB, as is every activation below
def step():
    conv.zero_grad(set_to_none=True)
    F.relu(conv(x)).sum().backward()
for _ in range(5):  # the heap grows to the step's peak, then stays
    step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    step()
faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
print(faults / 10 / (x.numel() * 4 // resource.getpagesize()))
"""


def test_freed_memory_is_reused_without_page_faults():
    """After keep_freed_memory, training steps whose activations are larger than glibc's largest mmap
    threshold (32 MiB) reuse the memory freed by the step before instead of having the kernel map and zero it
    anew: by default each of these steps faults ~7 activations' worth of pages. Each side runs in a fresh
    process, so the heap that earlier tests left behind cannot decide the count."""
    import subprocess
    import sys

    from cifarlab.hardware import is_glibc

    if not is_glibc():
        pytest.skip("the allocator setting is for glibc on Linux")

    def activations_faulted_per_step(mode: str) -> float:
        out = subprocess.run([sys.executable, "-c", _FAULTS_PER_STEP, mode], capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        return float(out.stdout)

    default, tuned = activations_faulted_per_step("default"), activations_faulted_per_step("tuned")
    assert default > 3, f"by default a step faulted {default:.2f} activations' worth of pages"
    # the bound the in-process test had (2 activations in 5 steps); fresh processes measured 0.0-0.2
    assert tuned < 0.4, f"tuned, a step faulted {tuned:.2f} activations' worth of pages (default {default:.2f})"
