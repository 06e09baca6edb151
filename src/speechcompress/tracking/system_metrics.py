"""The machine's load during a run, as MLflow system metrics (`system/*`): CPU and memory always,
GPU utilisation and memory where CUDA and NVML (`nvidia-ml-py`) are there; one sample every
`seconds`, logged through the run's logger, so a cluster job shows whether its GPU was busy.

MLflow's own monitor asks the server for the run's status at every sample and stops when it does
not answer; this one only samples (with MLflow's monitor classes) and hands each sample to the
run's logger, whose writes survive the server being away (`tracking.outbox`).
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable


def monitors() -> list:
    """MLflow's CPU monitor, and its GPU monitor when CUDA and NVML are there."""
    import torch
    from mlflow.system_metrics.metrics.cpu_monitor import CPUMonitor  # needs psutil, a dependency

    found = [CPUMonitor()]

    if torch.cuda.is_available():
        try:
            from mlflow.system_metrics.metrics.gpu_monitor import GPUMonitor

            found.append(GPUMonitor())
        except Exception as error:  # no nvidia-ml-py, or no NVML: CPU figures alone
            print(f"[speechcompress] no GPU system metrics ({error}): pip install nvidia-ml-py", file=sys.stderr)
    return found


class SystemMetrics:
    """Samples every `seconds` in a daemon thread; `log(figures, step)` receives each sample."""

    def __init__(self, log: Callable[[dict[str, float], int], None], seconds: float) -> None:
        self.log, self.seconds = log, seconds
        self.monitors = monitors()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True, name="system-metrics")

    def start(self) -> SystemMetrics:
        self._thread.start()
        return self

    def _sample(self) -> None:
        step = 0
        while not self._stop.wait(self.seconds):
            figures: dict[str, float] = {}
            for monitor in self.monitors:
                monitor.collect_metrics()
                figures |= {f"system/{k}": float(v) for k, v in monitor.aggregate_metrics().items()}
                monitor.clear_metrics()
            self.log(figures, step)
            step += 1

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5.0)
