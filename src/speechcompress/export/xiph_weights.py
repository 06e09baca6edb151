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

from speechcompress.export.rnnoise_c import (
    FRAME_SIZE,
    LibRNNoise,
    decode_block_sparse,
    encode_block_sparse,
    write_blob,
)
from speechcompress.files import atomic_path
from speechcompress.models.rnnoise import INT16_SCALE
from speechcompress.models.rnnoise_xiph import XiphRNNoise


def _dense_int8(values: np.ndarray, inputs: int, outputs: int) -> np.ndarray:
    """A dense int8 matrix as xiph's exporter lays it out: per 8 outputs and 4 inputs, output-major."""
    return values.reshape(outputs // 8, inputs // 4, 8, 4).transpose(1, 3, 0, 2).reshape(inputs, outputs)


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
        matrix = decode_block_sparse(values, idx, inputs, outputs) if idx is not None else _dense_int8(values, inputs, outputs)
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


def _int8_scales(matrix: np.ndarray) -> np.ndarray:
    """Per output: the step of its int8 weights. Large enough that |w| ≤ 127 steps, and that the
    sum of two neighbouring inputs' weights stays within 129 steps (the AVX2 kernels add pairs of
    products in 16 bits)."""
    largest = np.abs(matrix).max(axis=0)
    largest_pair = np.abs(matrix[0::2] + matrix[1::2]).max(axis=0)
    return np.maximum(largest / 127, largest_pair / 129)


def _dense_int8_layout(matrix: np.ndarray) -> np.ndarray:
    """The inverse of `_dense_int8`: [inputs, outputs] → per 8 outputs and 4 inputs, output-major."""
    inputs, outputs = matrix.shape
    return matrix.reshape(inputs // 4, 4, outputs // 8, 8).transpose(2, 0, 3, 1).reshape(-1)


def linear_arrays(name: str, matrix: np.ndarray, bias: np.ndarray, quantize: bool, sparse: bool,
                  diagonal: bool = False, float_copy: bool = False) -> dict[str, np.ndarray]:
    """The arrays of LinearLayer `name` ([inputs, outputs] float32 `matrix`). `quantize`: int8
    weights with per-output scales and the unsigned-input bias `subias`; `float_copy` adds the
    float weights too, which the library then computes with instead (xiph's build without
    DISABLE_DEBUG_FLOAT; its shipped table has them). `sparse`: the 8×4 blocks that are all zero
    are left out; `diagonal` (GRU recurrent weights): each gate's diagonal stored apart, in float."""
    matrix, bias = np.asarray(matrix, np.float32), np.asarray(bias, np.float32)
    arrays = {}
    scale = _int8_scales(matrix) if quantize else None  # of the whole matrix, diagonal included
    if diagonal:
        units = np.arange(matrix.shape[0])
        gates = [matrix[units, gate * len(units) + units] for gate in range(matrix.shape[1] // len(units))]
        arrays[f"{name}_weights_diag"] = np.concatenate(gates).astype(np.float32)
        matrix = matrix.copy()
        for gate in range(len(gates)):
            matrix[units, gate * len(units) + units] = 0.0
    if quantize:
        steps = np.round(matrix / (scale + np.float32(1e-30)))
        if steps.max() > 127 or steps.min() < -128:
            raise ValueError(f"{name}: a weight is out of int8 range at its scale")
        quantized = steps.astype(np.int8)
        if sparse:
            arrays[f"{name}_weights_int8"], idx = encode_block_sparse(quantized, keep=matrix)
        else:
            arrays[f"{name}_weights_int8"] = _dense_int8_layout(quantized)
    if float_copy or not quantize:
        if sparse:
            arrays[f"{name}_weights_float"], idx = encode_block_sparse(matrix)
        else:
            arrays[f"{name}_weights_float"] = matrix.reshape(-1)
    if sparse:
        arrays[f"{name}_weights_idx"] = idx  # both layouts keep the same blocks
    if quantize:
        arrays[f"{name}_subias"] = (bias - (quantized.astype(np.float64) * scale).sum(axis=0)).astype(np.float32)
        arrays[f"{name}_scale"] = (scale / 127).astype(np.float32)  # the library scales inputs by 127
    arrays[f"{name}_bias"] = bias
    return arrays


def _rzn_to_zrn(values: np.ndarray) -> np.ndarray:
    r, z, n = np.split(values, 3)
    return np.concatenate([z, r, n])


def model_arrays(model, float_copies: bool = False) -> dict[str, np.ndarray]:
    """Every array of `model`'s weights file (an `RNNoiseLayers`), as xiph's dump script writes
    them with --quantize: int8 weights but in `model.unquantized_layers` (which librnnoise is built
    to expect), GRUs block-sparse with their recurrent diagonals apart. `float_copies`: see
    `linear_arrays`."""
    unquantized = set(model.unquantized_layers)

    def numpy(tensor: torch.Tensor) -> np.ndarray:
        return tensor.detach().cpu().float().numpy()

    def layer(module: str, name: str, matrix: np.ndarray, bias: np.ndarray, sparse: bool, diagonal: bool = False):
        return linear_arrays(name, matrix, bias, quantize=module not in unquantized, sparse=sparse,
                             diagonal=diagonal, float_copy=float_copies)

    arrays: dict[str, np.ndarray] = {}
    for conv in ("conv1", "conv2"):
        weight = numpy(getattr(model, conv).weight)  # [out, in, k] → (k · in, out), tap-major
        arrays |= layer(conv, conv, weight.transpose(2, 1, 0).reshape(-1, weight.shape[0]), numpy(getattr(model, conv).bias),
                        sparse=False)
    for gru in ("gru1", "gru2", "gru3"):
        module = getattr(model, gru)
        for part, suffix, diagonal in (("input", "ih", False), ("recurrent", "hh", True)):
            matrix = _rzn_to_zrn(numpy(getattr(module, f"weight_{suffix}_l0"))).T
            bias = _rzn_to_zrn(numpy(getattr(module, f"bias_{suffix}_l0")))
            arrays |= layer(gru, f"{gru}_{part}", matrix, bias, sparse=True, diagonal=diagonal)
    for head in ("dense_out", "vad_dense"):
        module = getattr(model, head)
        arrays |= layer(head, head, numpy(module.weight).T, numpy(module.bias), sparse=False)
    return arrays


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
        raise ValueError(f"--format rnnoise-c exports xiph's own model (model=rnnoise_xiph) only, not "
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
