"""What deployment cares about, measured on a module: parameters, non-zeros, bytes, real-time factor."""

from __future__ import annotations

import io
import statistics
import time

import torch
from torch import nn

from speechcompress.compression.size import size_metrics, tensor_sizes


def size_report(model: nn.Module) -> dict[str, float]:
    """`size/*` of the deployable encoding (see compression.size) plus `size/bytes_checkpoint`,
    the fp32 state dict as torch.save writes it."""
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return {**size_metrics(tensor_sizes(model)), "size/bytes_checkpoint": float(buffer.getbuffer().nbytes)}


@torch.no_grad()
def real_time_factor(model: nn.Module, sample_rate: int, seconds: float = 10.0, repeats: int = 5,
                     threads: int = 1) -> dict[str, float]:
    """Processing time / audio duration of `model(noise)` on the CPU with `threads` threads.

    One warm-up pass, then the median of `repeats` timed passes; the model is left on its device.
    """
    device = next(model.parameters()).device
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
