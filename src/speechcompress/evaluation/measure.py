"""What deployment cares about, measured on a module or an exported file run like one: real-time
factor and peak memory. (Sizes: `compression.size`.)"""

from __future__ import annotations

import contextlib
import ctypes
import math
import statistics
import time
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import nn

from speechcompress.inference import model_device


@torch.no_grad()
def real_time_factor(model: nn.Module, sample_rate: int, seconds: float = 10.0, repeats: int = 5,
                     threads: int = 1) -> dict[str, float]:
    """Processing time / audio duration of `model(noise)` on the CPU with `threads` threads.

    One warm-up pass, then the median of `repeats` timed passes; the model is left on its device.
    """
    device = model_device(model)
    was_training = model.training
    cpu_model = model.to("cpu").eval()
    audio = torch.randn(1, int(seconds * sample_rate)) * 0.05
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        cpu_model(audio)
        timings = []
        for _ in range(repeats):
            start = time.perf_counter()
            cpu_model(audio)
            timings.append(time.perf_counter() - start)
    finally:
        torch.set_num_threads(previous_threads)
        model.to(device).train(was_training)
    rtf = statistics.median(timings) / seconds
    return {"latency/rtf": rtf, "latency/ms_per_second": rtf * 1000.0}


def _status_kb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return float(line.split()[1])
    raise OSError(f"/proc/self/status has no {field}")


def _return_free_memory() -> None:
    """Hand memory that malloc holds but nothing uses back to the system (glibc's malloc_trim), so
    that a block reusing it still shows up as resident-set growth."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


@contextlib.contextmanager
def peak_memory(device: torch.device) -> Iterator[dict[str, float]]:
    """Measures the block's peak memory into the yielded dict as `memory/peak_mb` (MiB).

    On CUDA: torch's peak allocated memory during the block. On the CPU: how far the process's
    peak resident set grew above its size at the start (Linux: writing 5 to /proc/self/clear_refs
    resets the peak, VmHWM, to the current size, after malloc's free memory is returned); NaN where
    the system does not offer that.
    Either way it includes what the block keeps, such as its output array.
    """
    result: dict[str, float] = {}
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        start = torch.cuda.memory_allocated(device)
        yield result
        torch.cuda.synchronize(device)
        result["memory/peak_mb"] = (torch.cuda.max_memory_allocated(device) - start) / 2**20
        return
    try:
        _return_free_memory()
        Path("/proc/self/clear_refs").write_text("5")
        start_kb = _status_kb("VmRSS")
    except OSError:
        start_kb = None
    yield result
    result["memory/peak_mb"] = math.nan if start_kb is None else (_status_kb("VmHWM") - start_kb) / 1024
