"""xiph's RNNoise in torch (`models.rnnoise_xiph`) with the weights librnnoise ships
(`speechcompress import-rnnoise`), against the C library itself on the same 48 kHz audio.

Tolerances. The C library computes tanh and sigmoid by rational approximations (on AVX builds
with an approximate reciprocal too), torch exactly, and each sums in its own order. Fed the same
features, the two networks' band gains measured 1.4e-3 apart at most, 6e-5 on average, over 300
frames: the test allows 3e-3 and 2e-4. The enhanced signals differ by −70 to −72 dB (error energy
over the library's output energy): the test allows −40 dB.
"""

import copy
import ctypes

import mlflow.pyfunc
import numpy as np
import pytest
import pytorch_lightning as pl
import soundfile as sf
import torch
from hydra.utils import instantiate

from speechcompress.checkpoints import load_task, save_task
from speechcompress.cli import main
from speechcompress.compression.size import size_metrics, tensor_sizes
from speechcompress.compression.sparsify import SparsifyCallback
from speechcompress.export.rnnoise_c import LibRNNoise
from speechcompress.export.runtime import LibRNNoiseModel
from speechcompress.export.xiph_weights import export_weights_file, model_arrays
from speechcompress.features import xiph48k
from speechcompress.models.rnnoise import RNNoise
from speechcompress.models.rnnoise_xiph import XiphRNNoise, band_interpolation
from speechcompress.tasks.base import build_task
from speechcompress.train import run
from speechcompress.xiph_format import read_blob, write_blob

from .conftest import compose_config, sandbox_overrides
from .test_xiph48k import _c_frame_features, _gliding_voice

DELAY = 960  # librnnoise's output is two frames behind its input


@pytest.fixture(scope="module")
def imported_path(tmp_path_factory):
    checkpoint = tmp_path_factory.mktemp("xiph") / "xiph.ckpt"
    assert main(["import-rnnoise", "--out", str(checkpoint)]) == 0
    return checkpoint


# a small 48 kHz corpus and a short run: the data cache is made once for the module (`corpus48k`)
SMALL_RUN48K = ["trainer.val_check_interval=30", "trainer.enable_progress_bar=false", "data.batch_size=4",
                "data.train.segment_seconds=1.0", "data.train.utterances=24", "data.train.length=8000",
                "data.train.noise_clips_per_family=1", "data.train.babble_talkers=4", "data.train.rooms=2",
                "data.val.utterances=4", "data.val.length=4", "data.val.noise_clips_per_family=1",
                "data.test.utterances=4", "data.test.noise_clips_per_family=1", "data.test_unseen=null",
                "task.val_quality_items=2", "measure.latency_seconds=1", "measure.latency_repeats=1",
                "measure.memory_seconds=2"]


@pytest.fixture(scope="module")
def corpus48k(tmp_path_factory):
    return tmp_path_factory.mktemp("corpus48k")


@pytest.fixture(scope="module")
def imported(imported_path):
    return load_task(imported_path)


def _c_network_gains(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """librnnoise's network (`compute_rnn`, its built-in weights) run over `features` [F, 65] from a
    fresh state: band gains [F, 32] and VAD [F]."""
    lib = LibRNNoise().lib
    floats = ctypes.POINTER(ctypes.c_float)
    lib.compute_rnn.argtypes = [ctypes.c_void_p, floats, floats, floats, floats, ctypes.c_int]
    denoiser = lib.rnnoise_create(None)  # its model comes first in the struct: the RNNoise* compute_rnn takes
    state = np.zeros(1 << 14, np.float32)  # RNNState: the conv memories and the three GRU states, zeroed
    gains, vad = np.zeros((len(features), 32), np.float32), np.zeros(len(features), np.float32)
    try:
        for t, frame in enumerate(np.ascontiguousarray(features, np.float32)):
            lib.compute_rnn(denoiser, state.ctypes.data_as(floats), gains[t].ctypes.data_as(floats),
                            vad[t:].ctypes.data_as(floats), np.ascontiguousarray(frame).ctypes.data_as(floats), 0)
    finally:
        lib.rnnoise_destroy(denoiser)
    return gains, vad


def test_the_imported_network_gives_librnnoises_band_gains(imported):
    audio = _gliding_voice()
    c = _c_frame_features(audio)  # the library's analysis of these very samples (no high-pass before it)
    sounding = ~c["silent"].astype(bool)
    c_gains, c_vad = _c_network_gains(c["features"][sounding])
    analysis = xiph48k.analyse(audio)
    with torch.no_grad():
        gains, vad, _ = imported.model._network(analysis.features[sounding].float()[None], fresh=True)
    same_period = analysis.period.numpy()[sounding] == np.round(100 * c["features"][sounding, 64] + 300)
    assert same_period.mean() > 0.95
    difference = np.abs(gains[0].numpy() - c_gains)[same_period]
    assert difference.max() < 3e-3 and difference.mean() < 2e-4
    assert np.abs(vad[0].numpy() - c_vad)[same_period].max() < 3e-3


def test_the_imported_checkpoint_denoises_as_librnnoise_does(imported):
    audio = _gliding_voice(seed=6)
    c_out, c_vad = LibRNNoise().denoise(audio)
    with torch.no_grad():
        output = imported.model(torch.from_numpy(audio)[None] / 32768.0)
    ours = output.enhanced[0].numpy() * 32768.0
    assert ours.shape == audio.shape  # aligned with the input: the library's delay taken out
    reference = c_out[DELAY:]
    error_db = 10 * np.log10(np.sum((ours[: len(reference)] - reference) ** 2) / np.sum(reference**2))
    assert error_db < -40
    # frame t's gains and VAD come from call t + 1, which the library returns one frame later
    frames = len(c_vad) - 1
    assert output.gains.shape == (1, len(audio) // 480, 32)
    assert np.abs(output.vad[0, :frames].numpy() - c_vad[1:]).max() < 3e-3


def test_band_gains_spread_to_bins_linearly_and_stop_at_20_khz():
    spread = band_interpolation()
    assert torch.allclose(spread.sum(dim=0)[:400], torch.tensor(1.0, dtype=torch.float64))
    assert spread[:, 400:].abs().sum() == 0
    with pytest.raises(ValueError, match="48000 Hz only"):
        XiphRNNoise(sample_rate=16000)


def test_exporting_the_imported_model_gives_back_xiphs_shipped_weights_byte_for_byte(imported):
    shipped = LibRNNoise().builtin_arrays()
    # with float copies: the library's own table, array for array, in its order
    assert write_blob(model_arrays(imported.model, float_copies=True)) == write_blob(shipped)
    # without: its int8 weights, scales, biases and block indices, and not the float copies
    deployable = {name: values for name, values in shipped.items()
                  if not (name.endswith("_weights_float") and name.replace("_float", "_int8") in shipped)}
    assert write_blob(model_arrays(imported.model)) == write_blob(deployable)


def test_a_sparsified_model_runs_in_librnnoise_as_in_torch_from_a_third_of_the_gru_bytes(imported, tmp_path):
    task = copy.deepcopy(imported)
    with torch.no_grad():  # xiph's block sparsity at its final targets: r 0.3, z 0.2, n 0.5 of the 8x4 blocks
        for name, mask in SparsifyCallback().compute_masks(task.model, alpha=0.0).items():
            task.model.get_parameter(name).mul_(mask.to(torch.float32))
    checkpoint = save_task(task, tmp_path / "sparse.ckpt")
    assert main(["export", "--checkpoint", str(checkpoint), "--format", "rnnoise-c", "--out", str(tmp_path)]) == 0
    weights = tmp_path / "rnnoise_weights.bin"
    arrays = read_blob(weights.read_bytes())
    dense = LibRNNoise().builtin_arrays()
    for layer in ("gru1_input", "gru2_recurrent"):
        assert arrays[f"{layer}_weights_int8"].nbytes * 3 == dense[f"{layer}_weights_int8"].nbytes
    # the file is what the size accounting says it is, to the byte
    assert weights.stat().st_size == size_metrics(tensor_sizes(task.model))["size/bytes_blob_int8"]
    audio = torch.from_numpy(_gliding_voice(2.0))[None] / 32768.0
    with torch.no_grad():
        expected = task.model(audio).enhanced[0].numpy()
    from_c = LibRNNoiseModel(weights)(audio).enhanced[0].numpy()
    error_db = 10 * np.log10(np.sum((from_c - expected) ** 2) / np.sum(expected**2))
    assert error_db < -30  # int8 weights and, in the library, int8 activations: measured -43 to -44 dB
    # and `enhance` runs the file through the library
    sf.write(tmp_path / "noisy.wav", audio[0].numpy(), 48000)
    assert main(["enhance", "--checkpoint", str(weights), str(tmp_path / "noisy.wav"), str(tmp_path / "out.wav")]) == 0
    noisy, _ = sf.read(tmp_path / "noisy.wav", dtype="float32")  # as 16-bit PCM holds it
    written, rate = sf.read(tmp_path / "out.wav")
    expected = LibRNNoiseModel(weights)(torch.from_numpy(noisy)[None]).enhanced[0].numpy()
    assert rate == 48000 and np.abs(written - expected).max() < 1e-4  # one 16-bit step


def test_rnnoise_c_export_refuses_models_the_library_cannot_run(tmp_path):
    with pytest.raises(ValueError, match="xiph's own model"):
        export_weights_file(RNNoise(), tmp_path / "w.bin")
    with pytest.raises(ValueError, match="GRUs of 64: librnnoise's layer sizes are compiled in"):
        export_weights_file(XiphRNNoise(gru_size=64), tmp_path / "w.bin")
    assert not list(tmp_path.iterdir())  # nothing written


def test_a_model_fine_tuned_and_sparsified_here_ships_a_file_librnnoise_runs_as_torch_does(imported_path, corpus48k,
                                                                                           tmp_path):
    """A real run: the shipped weights fine-tuned for 60 steps on a small 48 kHz synthetic corpus,
    block-sparsified on xiph's cubic schedule (here from 20 % to 60 % of the run, every step),
    tested, exported to librnnoise's weights file and measured in the library."""
    overrides = ["+experiment=rnnoise_xiph48k_finetune", f"init={imported_path}", "compression=sparsify",
                 "compression.schedule=relative", "compression.sparsify_start=0.2", "compression.sparsify_stop=0.6",
                 "compression.sparsify_interval=1", "trainer.max_steps=60", *SMALL_RUN48K,
                 *sandbox_overrides(tmp_path), f"paths.data_dir={corpus48k}"]
    metrics = run(compose_config(overrides))
    assert metrics["size/density"] < 0.45  # the GRUs at xiph's targets, the other layers dense
    # the file is the size accounting's estimate to the byte, and a third of the dense model's GRU bytes
    assert metrics["size/bytes_rnnoise_c"] == metrics["size/bytes_blob_int8"]
    weights = next((tmp_path / "experiments" / "runs").rglob("rnnoise_weights.bin"))
    arrays, dense = read_blob(weights.read_bytes()), LibRNNoise().builtin_arrays()
    assert 3 * arrays["gru2_input_weights_int8"].nbytes == dense["gru2_input_weights_int8"].nbytes
    # the library runs the file as torch runs the checkpoint, on audio the export's check never saw
    task = load_task(next((tmp_path / "experiments" / "runs").rglob("final.ckpt")))  # what was exported
    audio = torch.from_numpy(_gliding_voice(2.0, seed=11))[None] / 32768.0
    with torch.no_grad():
        expected = task.model(audio).enhanced[0].numpy()
    from_c = LibRNNoiseModel(weights)(audio).enhanced[0].numpy()
    error_db = 10 * np.log10(np.sum((from_c - expected) ** 2) / np.sum(expected**2))
    print(f"density {metrics['size/density']:.3f}, file {metrics['size/bytes_rnnoise_c']:,.0f} bytes, library vs torch "
          f"{error_db:.1f} dB, test PESQ torch {metrics['test/pesq']:.3f} library {metrics['deploy/rnnoise_c/pesq']:.3f}")
    assert error_db < -30
    assert metrics["deploy/rnnoise_c/pesq"] == pytest.approx(metrics["test/pesq"], abs=0.05)
    # the run's MLflow Model runs that file in librnnoise (pyrnnoise ships it), as `enhance` does
    model = next((tmp_path / "experiments" / "runs").rglob("mlflow_model"))
    requirements = (model / "requirements.txt").read_text()
    assert "pyrnnoise==" in requirements and "pytorch-lightning" not in requirements
    sf.write(tmp_path / "voice.wav", audio[0].numpy(), 48000, subtype="FLOAT")
    assert main(["enhance", "--checkpoint", str(weights), "--float", str(tmp_path / "voice.wav"),
                 str(tmp_path / "enhanced.wav")]) == 0
    served = mlflow.pyfunc.load_model(str(model)).predict(audio[0].numpy(), params={"sample_rate": 48000})
    np.testing.assert_allclose(served, sf.read(tmp_path / "enhanced.wav", dtype="float32")[0], atol=1e-5)


@pytest.mark.slow
def test_the_fine_tuning_recipe_sparsified_on_xiphs_schedule_beats_the_shipped_model_from_a_third_of_its_gru_bytes(
        imported_path, tmp_path):
    """The fine-tuning recipe as a user runs it (300 steps on the embedded 48 kHz data, the CPU
    budget of the default recipe), block-sparsified on xiph's schedule scaled to the run: xiph
    sparsifies from step 6000 to 20000 (every 100) of the rnnoise_xiph48k recipe's 75,000, here from
    8 % to 27 % of the run, every step. Beside it, the shipped weights in a run of no steps: the
    baseline row of `compare`. Its file runs in librnnoise as the checkpoint runs in torch."""
    recipe = ["+experiment=rnnoise_xiph48k_finetune", f"init={imported_path}", *sandbox_overrides(tmp_path)]
    shipped = run(compose_config([*recipe, "trainer.max_steps=0"]))
    sparse = run(compose_config([*recipe, "compression=sparsify", "compression.schedule=relative",
                                 "compression.sparsify_start=0.08", "compression.sparsify_stop=0.2667",
                                 "compression.sparsify_interval=1"]))
    print(f"shipped: test PESQ {shipped['test/pesq']:.3f} (library {shipped['deploy/rnnoise_c/pesq']:.3f}), "
          f"unseen {shipped['test_unseen/pesq']:.3f}, file {shipped['size/bytes_rnnoise_c']:,.0f} bytes; "
          f"fine-tuned and sparsified: density {sparse['size/density']:.3f}, test PESQ {sparse['test/pesq']:.3f} "
          f"(library {sparse['deploy/rnnoise_c/pesq']:.3f}), unseen {sparse['test_unseen/pesq']:.3f}, file "
          f"{sparse['size/bytes_rnnoise_c']:,.0f} bytes (accounting: blob {sparse['size/bytes_blob_int8']:,.0f}, "
          f"arrays without headers {sparse['size/bytes_sparse_int8']:,.0f}); noisy {sparse['test/pesq_noisy']:.3f}")
    assert sparse["test/pesq"] > shipped["test/pesq"] + 0.2
    assert sparse["test_unseen/pesq"] > shipped["test_unseen/pesq"] + 0.2
    assert sparse["deploy/rnnoise_c/pesq"] == pytest.approx(sparse["test/pesq"], abs=0.05)
    assert sparse["size/bytes_rnnoise_c"] == sparse["size/bytes_blob_int8"] < 0.5 * shipped["size/bytes_rnnoise_c"]
    runs = tmp_path / "experiments" / "runs" / "rnnoise_xiph48k_finetune"
    # the sparsified run's export (its MLflow Model holds a copy under mlflow_model/artifacts/)
    weights, checkpoint = sorted(runs.glob("*/export/rnnoise_weights.bin"))[-1], next(runs.rglob("final.ckpt"))
    assert weights.parent.parent == checkpoint.parent.parent
    arrays, dense = read_blob(weights.read_bytes()), LibRNNoise().builtin_arrays()
    for layer in ("gru1_input", "gru2_recurrent", "gru3_input"):
        assert 3 * arrays[f"{layer}_weights_int8"].nbytes == dense[f"{layer}_weights_int8"].nbytes
    audio = torch.from_numpy(_gliding_voice(3.0, seed=12))[None] / 32768.0
    with torch.no_grad():
        expected = load_task(checkpoint).model(audio).enhanced[0].numpy()
    from_c = LibRNNoiseModel(weights)(audio).enhanced[0].numpy()
    assert 10 * np.log10(np.sum((from_c - expected) ** 2) / np.sum(expected**2)) < -30
    # both in `compare`, the shipped model by name
    out = tmp_path / "reports"
    assert main(["compare", "--experiment", "rnnoise_xiph48k_finetune", "--cost", "size/bytes_rnnoise_c",
                 "--out", str(out), "--tracking-uri", f"sqlite:///{tmp_path / 'experiments' / 'mlflow.db'}"]) == 0
    table = (out / "rnnoise_xiph48k_finetune.md").read_text()
    print(table)
    assert "xiphrnnoise-from-xiph-none-0steps" in table and "xiphrnnoise-from-xiph-sparsify-s1" in table


def _last_model(sandbox):
    (checkpoint,) = (sandbox / "experiments" / "runs").rglob("last.ckpt")  # the run's last step
    return load_task(checkpoint).model.eval()


@pytest.mark.slow  # an infrastructure re-check: `make test-all`
def test_a_small_student_distilled_from_the_shipped_model_gives_gains_closer_to_its_own(imported_path, corpus48k,
                                                                                       tmp_path):
    """Distillation with the imported checkpoint as teacher: a student of xiph's architecture with
    GRUs of 32 units (not 384), trained from scratch for 30 steps on the teacher's band gains alone
    (alpha 1), against the same student trained as long on the task's own targets. On noisy
    test-split mixtures neither run trained on, the distilled student's gains are the nearer to the
    teacher's: what it learned is the teacher, not only the task."""
    def student(sandbox, *compression):
        return compose_config(["+experiment=rnnoise_xiph48k", "trainer=default", *compression, "model.cond_size=32",
                               "model.gru_size=32", "export=none", "task.optimizer.lr=3e-3", "trainer.max_steps=30",
                               "data.num_workers=0", *SMALL_RUN48K, *sandbox_overrides(sandbox),
                               f"paths.data_dir={corpus48k}"])

    distilled_cfg = student(tmp_path / "distilled", "compression=distill", f"compression.teacher={imported_path}",
                            "compression.alpha=1.0")
    task_cfg = student(tmp_path / "task", "compression=none")
    pl.seed_everything(distilled_cfg.seed, workers=True)
    untrained = build_task(distilled_cfg).model.eval()  # the student as both runs start it
    metrics = run(distilled_cfg)
    run(task_cfg)
    teacher = load_task(imported_path).model.eval()
    assert metrics["size/params"] < 0.02 * sum(p.numel() for p in teacher.parameters())
    mixes = [item["noisy"][None] for item in instantiate(distilled_cfg.data).peek("test", 4)]
    with torch.no_grad():
        target = torch.cat([teacher(mix).gains[0] for mix in mixes])
        distance = {name: float(torch.cat([model(mix).gains[0] for mix in mixes]).sub(target).abs().mean())
                    for name, model in [("untrained", untrained), ("distilled", _last_model(tmp_path / "distilled")),
                                        ("task-only", _last_model(tmp_path / "task"))]}
    print("mean |student gain - teacher gain| on the test split: "
          + ", ".join(f"{name} {value:.3f}" for name, value in distance.items()))
    assert distance["distilled"] < 0.85 * distance["task-only"]  # measured 0.277 against 0.367
    assert distance["distilled"] < 0.85 * distance["untrained"]  # and 0.375


def test_xiphs_front_end_in_the_loaders_workers_gives_the_training_step_what_the_model_computes_itself():
    """The front-end (analysis, clean targets) moves to the DataLoader's worker processes: the
    training loss is the same to the bit, and the enhanced signal is still there when read."""
    import functools

    from speechcompress.data.datamodule import collate_with
    from speechcompress.models.rnnoise_xiph import training_inputs
    from speechcompress.tasks.losses import XiphRNNoiseLoss

    torch.manual_seed(0)
    model = XiphRNNoise(cond_size=32, gru_size=48).train()
    items = [{"noisy": torch.from_numpy(_gliding_voice(1.0, seed=i)).float() / 32768.0 + 0.01 * torch.randn(48000),
              "clean": torch.from_numpy(_gliding_voice(1.0, seed=i)).float() / 32768.0,
              "vad": torch.ones(100)} for i in range(4)]
    loader = torch.utils.data.DataLoader(items, batch_size=2, num_workers=1,
                                         collate_fn=functools.partial(collate_with, training_inputs))
    loss = XiphRNNoiseLoss()
    for batch in loader:
        assert set(model.training_input_names) | {"xiph_clean_energy"} <= set(batch)
        fast = model(batch["noisy"], **{name: batch[name] for name in model.training_input_names})
        plain = model(batch["noisy"])
        without = {key: value for key, value in batch.items() if key != "xiph_clean_energy"}
        assert loss(model, fast, batch)["loss"].item() == loss(model, plain, without)["loss"].item()
        assert torch.equal(fast.enhanced, plain.enhanced)
