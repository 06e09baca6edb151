"""The third stage: what the tested model costs in torch (size, latency, memory), and the figures
compression callbacks report of it (each through its own `figures(model)`)."""

from __future__ import annotations

import torch
from omegaconf import DictConfig

from speechcompress.compression.callback import CompressionCallback
from speechcompress.compression.size import size_report
from speechcompress.evaluation.measure import peak_memory, real_time_factor
from speechcompress.tasks.base import SpeechTask


def measure(task: SpeechTask, settings: DictConfig, callbacks: list[CompressionCallback]) -> dict[str, float]:
    """`size/*`, `latency/rtf` (1 CPU thread, `settings.latency_seconds`), `memory/peak_mb`
    (`settings.memory_seconds`), and each callback's `figures(model)`."""
    model = task.model
    figures = {**size_report(model),
               **real_time_factor(model, task.sample_rate, settings.latency_seconds, settings.latency_repeats),
               **inference_memory(task, settings.memory_seconds)}
    for callback in callbacks:
        figures |= callback.figures(model)
    return figures


def inference_memory(task: SpeechTask, seconds: float) -> dict[str, float]:
    """`memory/peak_mb` of the task's deployment inference (`task.infer`, in its windows) on
    `seconds` of noise, on the task's device; the input stays on the CPU, as a file's would."""
    noise = torch.randn(1, int(seconds * task.sample_rate)) * 0.05
    task.eval()
    with peak_memory(task.device) as memory:
        task.infer(noise)
    return memory
