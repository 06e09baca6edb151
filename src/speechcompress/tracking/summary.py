"""The one screen a user reads at the end of a run: where it went, its quality, what it costs, and
each shipped file beside torch."""

from __future__ import annotations

import math

from omegaconf import DictConfig

from speechcompress.config import tracking_uri
from speechcompress.export.exporter import Written
from speechcompress.tracking.mlflow import is_server
from speechcompress.tracking.ui import experiment_url


def ui_lines(uri: str, experiment_id: str) -> list[str]:
    """How to see the run's experiment in MLflow's UI, on its training runs and the project's view."""
    if is_server(uri):
        return [f"MLflow UI       {experiment_url(uri, experiment_id)}"]
    return [f"MLflow UI       mlflow ui --backend-store-uri {uri}   (or `make ui`), then open",
            f"                {experiment_url('http://127.0.0.1:5000', experiment_id)}"]


def summary(cfg: DictConfig, quality: list[str], headline: tuple[str, str], metrics: dict[str, float],
            checkpoint: str, run: tuple[str, str], files: list[Written], device: str) -> str:
    """`quality`: the task's lines (`task.summary_lines`); `headline`: its (metric, label); `run`:
    the MLflow (experiment id, run id)."""
    rtf = metrics.get("latency/rtf", math.nan)
    shrunk = (f", shrunk from {int(metrics['shrink/params_before']):,}; outputs within "
              f"{metrics['shrink/max_abs_difference']:.1e} of the masked model" if "shrink/params_before" in metrics else "")
    return "\n".join([
        "",
        f"── speechcompress run: {cfg.name} ──",
        f"checkpoint      {checkpoint}",
        f"MLflow run      {run[1]}  (experiment {cfg.logger.experiment_name})",
        *ui_lines(tracking_uri(cfg.logger.tracking_uri), run[0]),
        "",
        *quality,
        "",
        f"parameters      {int(metrics['size/params']):,} ({int(metrics['size/nonzero']):,} non-zero){shrunk}",
        f"checkpoint size {int(metrics['size/bytes_checkpoint']):,} bytes (fp32 weights)",
        *xiph_layout_lines(metrics),
        f"real-time factor {rtf:.4f} on 1 CPU thread ({1000 * rtf:.1f} ms per second of audio)",
        f"peak memory     {metrics.get('memory/peak_mb', math.nan):.0f} MiB for {cfg.measure.memory_seconds:g} s of audio "
        f"(deployment inference on {device})",
        *deployment_lines(headline, metrics, files),
    ])


def xiph_layout_lines(metrics: dict[str, float]) -> list[str]:
    """The size of xiph's block-sparse layout (`compression.size`), for models with GRUs: the layout
    xiph's RNNoise ships its GRUs in. Nothing for models without (FRCRN, FSMN-VAD)."""
    if not metrics.get("size/bytes_sparse_gru"):
        return []
    return [f"xiph's layout   {int(metrics['size/bytes_sparse']):,} bytes fp32, "
            f"{int(metrics['size/bytes_sparse_int8']):,} int8 (GRUs block-sparse, "
            f"{int(metrics['size/bytes_sparse_gru']):,} fp32; other layers block-sparse where it pays)"]


def deployment_lines(headline: tuple[str, str], metrics: dict[str, float], files: list[Written]) -> list[str]:
    """torch and each shipped file side by side: bytes, real-time factor, the headline quality (a
    lossless file's is torch's, shown as such)."""
    if not files:
        return []
    name, label = headline
    torch_quality = metrics.get(f"test/{name}")
    rows = [("torch checkpoint", metrics["size/bytes_checkpoint"], metrics.get("latency/rtf"), _shown(torch_quality, ".3f"))]
    for file in files:
        quality = (_shown(metrics.get(f"deploy/{file.key}/{name}"), ".3f") if file.lossy
                   else "= torch" if torch_quality is not None else "-")
        rows.append((file.title, metrics[f"size/bytes_{file.key}"], metrics.get(f"latency/rtf_{file.key}"), quality))
    return ["", f"{'deployed as':<26}{'bytes':>12}{'RTF, 1 thread':>15}{label:>12}",
            *(f"{title:<26}{int(size):>12,}{_shown(rtf, '.4f'):>15}{quality:>12}" for title, size, rtf, quality in rows)]


def _shown(value: float | None, form: str) -> str:
    return "-" if value is None or math.isnan(value) else format(value, form)
