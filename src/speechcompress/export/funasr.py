"""An FSMN-VAD as a FunASR model folder, which FunASR's own ONNX runtime (`funasr_onnx.Fsmn_vad`,
the `funasr-onnx` package) loads and runs:

- model.onnx: `graphs.FSMNVADStepGraph`, stacked features and one cache per FSMN memory in,
  speech probabilities and the next caches out (FunASR's inputs and outputs, in its order);
- model_quant.onnx (with `quantize`): the same, dynamic INT8 (`quantize.quantize_dynamic_int8`);
- am.mvn: the model's CMVN statistics tiled over the LFR window, as the shift and scale of
  Kaldi's nnet text format that FunASR reads;
- config.yaml: the front-end, the cache sizes, and our segment settings mapped onto FunASR's
  segment options (`segment_options`).

The network and the CMVN are ours exactly: on the same features the file gives torch's
probabilities (the parity check of every export streams a signal through it in two blocks, the
caches passed on). Two things FunASR does its own way:
- its front-end frames the audio from the first sample (Kaldi's `snip_edges`), so its frame t
  covers samples [hop·t, hop·t + window), where ours is centred on the label frame (it starts
  (window − hop)/2 samples earlier: 7.5 ms at 25 / 10 ms); past the end of the audio it repeats
  the last fbank frame for LFR where ours sees the fbank of the zeros after it;
- its segment state machine (with its own start, end and padding rules) replaces ours.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch
import yaml

from speechcompress.atomic_files import atomic_path
from speechcompress.evaluation.vad_segments import SegmentConfig
from speechcompress.export.graphs import FSMNVADStepGraph, GraphSpec
from speechcompress.export.onnx import PARITY_TOLERANCE, example_wave, export_graph, on_cpu_in_eval
from speechcompress.export.onnx_files import session
from speechcompress.export.quantize import quantize_dynamic_int8
from speechcompress.export.runtime import run_blocks
from speechcompress.features.fbank import stack_frames
from speechcompress.models.fsmn_vad import FSMNVAD

SPEC = GraphSpec("fsmn_vad", "vad", "speech", "probabilities")


def stacked_features(model: FSMNVAD, noisy: torch.Tensor) -> torch.Tensor:
    """What model.onnx takes for a waveform [B, T], from our own front-end: LFR-stacked, CMVN'd fbank."""
    return stack_frames(model.cmvn(model.fbank(noisy)), model.lfr_m)


def segment_options(segments: dict[str, float], hop_ms: float, frame_ms: float, sample_rate: int) -> dict:
    """FunASR's segment options (`model_conf`) nearest to our `SegmentConfig` fields.

    FunASR calls a frame speech when P(speech) ≥ P(non-speech) + speech_noise_thres, that is
    P(speech) ≥ (1 + speech_noise_thres) / 2: our threshold t is speech_noise_thres = 2t − 1. It
    has no minimum segment length (our min_speech_ms), and needs `speech_to_sil_time_thres` of
    silence in its window before it counts the end silence: set to our start_speech_ms, as FunASR's
    own defaults are symmetric."""
    return {
        "sample_rate": sample_rate, "detect_mode": 1, "frame_in_ms": hop_ms, "frame_length_ms": frame_ms,
        "speech_noise_thres": 2 * segments["threshold"] - 1,
        "window_size_ms": segments["window_ms"], "sil_to_speech_time_thres": segments["start_speech_ms"],
        "speech_to_sil_time_thres": segments["start_speech_ms"],
        "max_end_silence_time": segments["end_silence_ms"], "max_single_segment_time": segments["max_segment_ms"],
        "lookback_time_start_point": segments["lookback_ms"], "lookahead_time_end_point": segments["lookahead_ms"],
        "do_extend": 1, "silence_pdf_num": 1, "sil_pdf_ids": [0], "snr_thres": -100.0, "decibel_thres": -100.0,
        "max_start_silence_time": 3000,
    }


def _ms(samples: int, sample_rate: int) -> float | int:
    """Samples as milliseconds, a whole number written as one (FunASR counts frames with them)."""
    ms = 1000 * samples / sample_rate
    return int(ms) if ms.is_integer() else ms


def funasr_config(model: FSMNVAD, segments: dict[str, float] | None = None) -> dict:
    """config.yaml's content; a ValueError saying why for a model FunASR's runtime cannot run.
    `segments`: our `SegmentConfig` fields (default: its defaults)."""
    segments = segments or dataclasses.asdict(SegmentConfig())
    graph = FSMNVADStepGraph(model)
    projections = {shape[1] for shape in graph.cache_shapes().values()}
    pasts = {shape[2] for shape in graph.cache_shapes().values()}
    if len(projections) != 1 or len(pasts) != 1:
        raise ValueError(f"FunASR's runtime makes every cache one shape (encoder_conf.proj_dim, lorder); this model's "
                         f"layers project to {sorted(projections)} channels over {sorted(pasts)} past frames: "
                         "give every layer the same projection size (prune proj channels alike) to export to FunASR")
    return {
        "model": "FsmnVADStreaming",
        "frontend": "WavFrontend",
        "frontend_conf": {"fs": model.sample_rate, "window": "hamming", "n_mels": model.n_mels,
                          "frame_length": _ms(model.window, model.sample_rate),
                          "frame_shift": _ms(model.hop, model.sample_rate),
                          "lfr_m": model.lfr_m, "lfr_n": 1, "dither": 0.0},
        "encoder": "FSMN",
        # FunASR's runtime reads fsmn_layers, proj_dim and lorder (a cache holds lorder − 1 frames)
        "encoder_conf": {"input_dim": model.lfr_m * model.n_mels, "fsmn_layers": len(model.layers),
                         "proj_dim": projections.pop(), "lorder": pasts.pop() + 1, "output_dim": model.classes},
        "model_conf": segment_options(segments, _ms(model.hop, model.sample_rate), _ms(model.window, model.sample_rate),
                                      model.sample_rate),
    }


def am_mvn_text(model: FSMNVAD) -> str:
    """The CMVN as FunASR reads it: (features + shift) · scale on the stacked features, so shift =
    −mean and scale = 1 / std, each tiled over the lfr_m stacked frames."""
    def numbers(values: torch.Tensor) -> str:
        return " ".join(f"{v:.9g}" for v in values.repeat(model.lfr_m).tolist())

    dims = model.lfr_m * model.n_mels
    return "\n".join(["<Nnet>", f"<Splice> {dims} {dims}", "[ 0 ]",
                      f"<AddShift> {dims} {dims}", f"<LearnRateCoef> 0 [ {numbers(-model.cmvn.mean)} ]",
                      f"<Rescale> {dims} {dims}", f"<LearnRateCoef> 0 [ {numbers(model.cmvn.inv_std)} ]",
                      "</Nnet>", ""])


@dataclasses.dataclass(frozen=True)
class FunASRFolder:
    files: dict[str, Path]  # "onnx", "onnx_int8" (when quantized), "config", "cmvn"
    max_abs_difference: float  # model.onnx's probabilities against torch's, streamed in two blocks


def export_funasr(model: FSMNVAD, folder: str | Path, segments: dict[str, float] | None = None, quantize: bool = False,
                  tolerance: float = PARITY_TOLERANCE) -> FunASRFolder:
    """Writes the FunASR model folder (see the module's docstring); model.onnx is kept only when
    its probabilities, streamed in two blocks, are within `tolerance` of torch's (`ParityError`
    otherwise). `segments`: our `SegmentConfig` fields (default: its defaults)."""
    if not isinstance(model, FSMNVAD):
        raise ValueError(f"--format funasr is FunASR's VAD folder: it takes an FSMN-VAD, not {type(model).__name__}")
    folder = Path(folder)
    with on_cpu_in_eval(model):
        graph = FSMNVADStepGraph(model).eval()
        config = funasr_config(model, segments)  # refuses what FunASR cannot run, before anything is written
        shapes = graph.cache_shapes()
        with torch.no_grad():
            trace = stacked_features(model, example_wave(model, 1, 1.0, seed=0))
            wave = example_wave(model, 2, 1.37, seed=1)
            speech, expected = stacked_features(model, wave).numpy(), model(wave).logits.softmax(-1).numpy()

        def difference(path: Path) -> float:
            return float(np.abs(run_blocks(session(path), speech, shapes, blocks=2) - expected).max())

        inputs = {SPEC.input_name: trace, **{name: torch.zeros(shape) for name, shape in shapes.items()}}
        outputs = [SPEC.output_name, *(name.replace("in_", "out_") for name in shapes)]
        axes = {SPEC.input_name: {0: "batch", 1: "time"}, SPEC.output_name: {0: "batch", 1: "time"},
                **{name: {0: "batch"} for name in [*shapes, *outputs[1:]]}}
        metadata = {"caches": shapes, "cmvn": {"mean": model.cmvn.mean.tolist(), "inv_std": model.cmvn.inv_std.tolist()},
                    "segments": segments or dataclasses.asdict(SegmentConfig())}
        exported = export_graph(model, graph, SPEC, inputs, outputs, axes, folder / "model.onnx", metadata, tolerance,
                                difference)
    files = {"onnx": exported.path}
    if quantize:
        files["onnx_int8"] = quantize_dynamic_int8(files["onnx"], folder / "model_quant.onnx")
    for key, name, text in (("config", "config.yaml", "# written by speechcompress export --format funasr\n"
                             + yaml.safe_dump(config, sort_keys=False)),
                            ("cmvn", "am.mvn", am_mvn_text(model))):
        with atomic_path(folder / name) as partial:
            partial.write_text(text)
        files[key] = folder / name
    return FunASRFolder(files, exported.max_abs_difference)
