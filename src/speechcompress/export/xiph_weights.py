"""xiph's RNNoise weights ↔ an `RNNoiseLayers` model (`models.rnnoise`), array by array as
librnnoise names and lays them out (`export.rnnoise_c`).

- Import (`torch_state_dict`): the library's built-in table or a weights file → a state dict:
  each LinearLayer's float weights where present (the library computes with them), else its int8
  weights times their scales; GRU gates from xiph's order z, r, n to torch's r, z, n.
- Export (`model_arrays`, `export_weights_file`): what xiph's dump script writes with --quantize
  (weight-exchange's `print_linear_layer`): int8 weights with per-output scales and the
  unsigned-input bias `subias`, but for `model.unquantized_layers` (conv1 and the heads, in float);
  GRU matrices block-sparse, recurrent diagonals apart; optionally float copies too.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from speechcompress.atomic_files import atomic_path
from speechcompress.export.rnnoise_c import FRAME_SIZE, LibRNNoise
from speechcompress.models.rnnoise import INT16_SCALE
from speechcompress.models.rnnoise_xiph import XiphRNNoise
from speechcompress.xiph_format import decode_block_sparse, dense_int8, encode, write_blob


def layer_matrix(arrays: dict[str, np.ndarray], name: str, inputs: int, outputs: int) -> np.ndarray:
    """The float [inputs, outputs] matrix of LinearLayer `name`: its float weights where the file
    has them (the library then computes with them), else its int8 weights times their scales;
    block-sparse where it has an index, plus the diagonal where it has one."""
    idx = arrays.get(f"{name}_weights_idx")
    if f"{name}_weights_float" in arrays:
        values = arrays[f"{name}_weights_float"]
        matrix = decode_block_sparse(values, idx, inputs, outputs) if idx is not None else values.reshape(inputs, outputs)
    elif f"{name}_weights_int8" in arrays:
        values = arrays[f"{name}_weights_int8"]
        matrix = decode_block_sparse(values, idx, inputs, outputs) if idx is not None else dense_int8(values, inputs, outputs)
        matrix = matrix * (127 * arrays[f"{name}_scale"])[None, :]  # the library scales inputs by 127
    else:
        raise ValueError(f"the weights have no {name}_weights_float or {name}_weights_int8 array")
    matrix = matrix.astype(np.float64)
    if f"{name}_weights_diag" in arrays:  # GRU recurrent weights: each gate's own-unit feedback
        diagonal, units = arrays[f"{name}_weights_diag"], np.arange(inputs)
        for gate in range(outputs // inputs):
            matrix[units, gate * inputs + units] += diagonal[gate * inputs : (gate + 1) * inputs]
    return matrix


def _zrn_to_rzn(values: np.ndarray) -> np.ndarray:
    """xiph's GRU gate order (update z, reset r, new n) → torch's (r, z, n), along the first axis."""
    z, r, n = np.split(values, 3)
    return np.concatenate([r, z, n])


def xiph_sizes(arrays: dict[str, np.ndarray]) -> dict[str, int]:
    """The layer sizes of librnnoise's arrays: features, cond_size (conv1), gru_size, bands."""
    cond_size = len(arrays["conv1_bias"])
    conv1 = arrays.get("conv1_weights_float", arrays.get("conv1_weights_int8"))  # (3 · features) × cond_size
    return {"n_features": conv1.size // (3 * cond_size), "cond_size": cond_size,
            "gru_size": len(arrays["gru1_input_bias"]) // 3, "n_bands": len(arrays["dense_out_bias"])}


def torch_state_dict(arrays: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """An `RNNoiseLayers` state dict from librnnoise's arrays (its built-in table or a weights file)."""
    sizes = xiph_sizes(arrays)
    n_features, cond_size, gru_size = sizes["n_features"], sizes["cond_size"], sizes["gru_size"]

    def tensor(values: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(values, np.float32))

    state = {}
    for conv, inputs, outputs in (("conv1", n_features, cond_size), ("conv2", cond_size, gru_size)):
        matrix = layer_matrix(arrays, conv, 3 * inputs, outputs)  # rows tap-major: (k · in)
        state[f"{conv}.weight"] = tensor(matrix.reshape(3, inputs, outputs).transpose(2, 1, 0))
        state[f"{conv}.bias"] = tensor(arrays[f"{conv}_bias"])
    for gru in ("gru1", "gru2", "gru3"):
        for part, suffix in (("input", "ih"), ("recurrent", "hh")):
            matrix = layer_matrix(arrays, f"{gru}_{part}", gru_size, 3 * gru_size)
            state[f"{gru}.weight_{suffix}_l0"] = tensor(_zrn_to_rzn(matrix.T))
            state[f"{gru}.bias_{suffix}_l0"] = tensor(_zrn_to_rzn(arrays[f"{gru}_{part}_bias"]))
    joined = 4 * gru_size  # conv2's output (gru_size channels) and the three GRUs, side by side
    for head, outputs in (("dense_out", sizes["n_bands"]), ("vad_dense", 1)):
        state[f"{head}.weight"] = tensor(layer_matrix(arrays, head, joined, outputs).T)
        state[f"{head}.bias"] = tensor(arrays[f"{head}_bias"])
    return state


def model_arrays(model, float_copies: bool = False) -> dict[str, np.ndarray]:
    """Every array of `model`'s weights file (an `RNNoiseLayers`), as xiph's dump script writes
    them with --quantize (`xiph_format.encode`): int8 weights but in `model.unquantized_layers`
    (which librnnoise is built to expect), GRUs block-sparse with their recurrent diagonals apart,
    the other layers dense. `float_copies`: the float weights too, which the library then computes with."""
    return encode(model, quantize=True, float_copies=float_copies).arrays


@dataclass(frozen=True)
class WeightsFile:
    path: Path
    bytes: int
    error_db: float | None  # librnnoise's output against the torch model's, on the parity signal (None: not checked)


def _parity_signal(seconds: float = 2.0) -> np.ndarray:
    """48 kHz, int16 scale, seeded: a gliding harmonic voice that pauses, in noise."""
    rng = np.random.default_rng(0)
    t = np.arange(int(48000 * seconds)) / 48000
    phase = 2 * np.pi * np.cumsum(150 + 100 * np.sin(2 * np.pi * t)) / 48000
    voice = sum(np.sin(k * phase) / k for k in range(1, 16)) * (np.sin(2 * np.pi * 1.5 * t) > -0.3)
    return (3000 * voice + 500 * rng.standard_normal(len(t))).astype(np.float32)


def check_library_sizes(model, library: str | Path | None = None) -> None:
    """Refuses (ValueError) a `XiphRNNoise` whose layer sizes differ from those compiled into
    librnnoise, which could not load its weights file; nothing to check for other models, or where
    the library is not found."""
    if not isinstance(model, XiphRNNoise):
        return
    try:
        shipped = xiph_sizes(LibRNNoise(library).builtin_arrays())
    except FileNotFoundError:
        return
    ours = {"cond_size": model.sizes["conv1"], "gru_size": model.sizes["gru1"]}
    if any(model.sizes[group] != model.sizes["gru1"] for group in ("conv2", "gru2", "gru3")) \
            or ours != {name: shipped[name] for name in ours}:
        raise ValueError(f"librnnoise is built for conv1 of {shipped['cond_size']} and GRUs of {shipped['gru_size']}, "
                         f"this model has {dict(model.sizes)}: its weights file could not be loaded; use those sizes, "
                         f"or export=none")


def export_weights_file(model, path: str | Path, float_copies: bool = False, library: str | Path | None = None,
                        tolerance_db: float = -30.0) -> WeightsFile:
    """Writes `model` (a `XiphRNNoise`) as the weights file librnnoise loads (`rnnoise_model_from_buffer`,
    `rnnoise_model_from_filename`). Where the library can be found, the file is first run through it
    on a test signal: its output must be within `tolerance_db` (error over output energy) of the
    torch model's, or nothing is written."""
    if not isinstance(model, XiphRNNoise):
        raise ValueError(f"--format rnnoise_c exports xiph's own model (model=rnnoise_xiph) only, not "
                         f"{type(model).__name__}: librnnoise computes xiph's 65 features and runs its pitch filter")
    blob = write_blob(model_arrays(model, float_copies))
    error_db = None
    try:
        lib = LibRNNoise(library)
    except FileNotFoundError:
        lib = None
    if lib is not None:
        signal = _parity_signal()
        try:
            ours, _ = lib.denoise(signal, blob)
        except ValueError as error:
            raise ValueError(f"{lib.path} refused the weights of a model with conv1 of {model.sizes['conv1']} and GRUs "
                             f"of {model.sizes['gru1']}: librnnoise's layer sizes are compiled in") from error
        training = model.training
        with torch.no_grad():
            expected = model.eval()(torch.from_numpy(signal)[None].double() / INT16_SCALE).enhanced[0].numpy() * INT16_SCALE
        model.train(training)
        delay = 2 * FRAME_SIZE
        reference = expected[: len(ours) - delay]
        error_db = float(10 * np.log10(np.sum((ours[delay:] - reference) ** 2) / max(np.sum(reference**2), 1e-9)))
        if error_db > tolerance_db:
            raise ValueError(f"librnnoise's output with this weights file is {error_db:.1f} dB from the torch "
                             f"model's, above the tolerance {tolerance_db:g} dB; {path} was not written")
    with atomic_path(path) as partial:
        partial.write_bytes(blob)
    return WeightsFile(Path(path), len(blob), error_db)
