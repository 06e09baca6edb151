"""`speechcompress export --format funasr`: a trained FSMN-VAD as a model folder that FunASR's own
ONNX runtime (`funasr_onnx.Fsmn_vad`, from PyPI) loads and runs, checked against our model."""

import numpy as np
import pytest
import soundfile as sf
import torch
from funasr_onnx import Fsmn_vad
from funasr_onnx.utils.e2e_vad import VADXOptions
from hydra.utils import instantiate
from omegaconf import OmegaConf

from speechcompress.checkpoints import load_task
from speechcompress.cli import main
from speechcompress.evaluation.vad_segments import speech_segments
from speechcompress.export.funasr import export_funasr, segment_options
from speechcompress.export.graphs import FSMNVADStepGraph
from speechcompress.export.onnx import PARITY_TOLERANCE
from speechcompress.features.fbank import kaldi_fbank, stack_frames
from speechcompress.models.fsmn_vad import FSMNVAD

from .conftest import compose_config


def _speech_mask(segments_ms: list[tuple[float, float]], length_ms: int) -> np.ndarray:
    mask = np.zeros(length_ms, bool)
    for start, end in segments_ms:
        mask[int(start) : int(end)] = True
    return mask


def test_funasr_onnx_runs_an_exported_vad_folder_as_our_model_does(tiny_vad_run, tmp_path):
    cfg, _, checkpoint = tiny_vad_run
    assert main(["export", "--checkpoint", str(checkpoint), "--format", "funasr", "--quantize", "dynamic-int8",
                 "--out", str(tmp_path)]) == 0
    folder = tmp_path / "funasr"  # the format's folder in the export folder, as in a run's export/
    assert {p.name for p in folder.iterdir()} == {"model.onnx", "model_quant.onnx", "config.yaml", "am.mvn"}
    task = load_task(checkpoint)
    model = task.model.eval()
    datamodule = instantiate(cfg.data)
    datamodule.setup("test")
    batch = next(iter(datamodule.split_loader("test")))
    runtime = Fsmn_vad(str(folder), intra_op_num_threads=1)
    caches = FSMNVADStepGraph(model).cache_shapes()
    for wave in batch["noisy"][:3].numpy().astype(np.float32):
        # FunASR's front-end (kaldi-native-fbank) computes our fbank: on the same frames, log energies
        # within 1e-2 (measured: about 6e-4; both are Kaldi's recipe, one in fp32 torch)
        features, _ = runtime.frontend.fbank(wave)
        ours = kaldi_fbank(torch.from_numpy(wave), model.sample_rate, model.n_mels, model.window, model.hop).numpy()
        assert features.shape == ours.shape and np.abs(features - ours).max() < 1e-2
        # its LFR stacking and am.mvn are our stacking and CMVN: the same features on those frames
        # (all but the last lfr_m // 2, where it repeats the last frame and we see the zeros after the end)
        speech, _ = runtime.extract_feat([wave])
        stacked = stack_frames(model.cmvn(torch.from_numpy(ours)[None]), model.lfr_m).numpy()
        assert np.abs(speech[:, : stacked.shape[1]] - stacked).max() < 1e-2
        # and the file is our network exactly: on FunASR's own features it gives torch's probabilities
        scores, *_ = runtime.ort_infer([speech, *(np.zeros(shape, np.float32) for shape in caches.values())])
        with torch.no_grad():
            expected = FSMNVADStepGraph(model)(torch.from_numpy(speech), *map(torch.zeros, caches.values()))[0]
        assert np.abs(scores - expected.numpy()).max() <= PARITY_TOLERANCE
        # its framing is not ours: its frame t starts at hop·t, our centred frame t + 1 is 40 samples
        # (2.5 ms) after it, our frame t 120 before; at the end it repeats the last fbank frame where we
        # see zeros. So decisions are compared a frame apart, and agree on nearly all frames, not all.
        theirs = 1 - scores[0, :, 0]
        with torch.no_grad():
            probability = model(torch.from_numpy(wave)[None]).speech_probability()[0].numpy()
        aligned = probability[1 : 1 + len(theirs)]
        assert ((theirs >= 0.5) == (aligned >= 0.5)).mean() >= 0.95
        # its segments come from its own state machine (other start, end and padding rules, fed our
        # settings through config.yaml): the speech time they cover overlaps ours. IoU measured 0.72 to
        # 0.96 for tiny models on the current corpus: where a model's probabilities hover near the
        # threshold, the two machines split and pad differently
        length_ms = len(wave) * 1000 // model.sample_rate
        (funasr_segments,) = runtime(wave)
        our_segments = [(1000 * s.start, 1000 * s.end) for s in speech_segments(probability, task.segment_config)]
        theirs_mask, ours_mask = _speech_mask(funasr_segments, length_ms), _speech_mask(our_segments, length_ms)
        assert ours_mask.any()
        assert (theirs_mask & ours_mask).sum() / (theirs_mask | ours_mask).sum() >= 0.6
    # the quantized file is what FunASR's runtime loads with quantize=True
    (segments,) = Fsmn_vad(str(folder), quantize=True, intra_op_num_threads=1)(wave)
    assert segments


def test_the_funasr_model_file_runs_in_vad_like_its_checkpoint(tiny_vad_run, tmp_path):
    _, _, checkpoint = tiny_vad_run
    assert main(["export", "--checkpoint", str(checkpoint), "--format", "funasr", "--out", str(tmp_path / "f")]) == 0
    assert not (tmp_path / "f" / "funasr" / "model_quant.onnx").exists()  # no --quantize: fp32 alone
    t = np.arange(32000) / 16000
    sf.write(tmp_path / "in.wav", 0.2 * np.sin(2 * np.pi * 220 * t) * (t > 1), 16000)
    for name, source in (("torch", checkpoint), ("funasr", tmp_path / "f" / "funasr" / "model.onnx")):
        assert main(["vad", "--checkpoint", str(source), str(tmp_path / "in.wav"), str(tmp_path / name)]) == 0
    torch_p, funasr_p = (np.load(tmp_path / name / "in.npy") for name in ("torch", "funasr"))
    assert torch_p.shape == funasr_p.shape == (200,)
    assert np.abs(torch_p - funasr_p).max() <= PARITY_TOLERANCE


def test_funasr_export_refuses_what_its_runtime_cannot_run(tmp_path, capsys):
    with pytest.raises(ValueError, match="rorder = 0"):
        export_funasr(FSMNVAD(input_affine=24, hidden=32, proj=16, layers=2, output_affine=16, rorder=1), tmp_path)
    uneven = FSMNVAD(input_affine=24, hidden=32, proj=16, layers=2, output_affine=16, channels={"proj1": 12})
    with pytest.raises(ValueError, match=r"project to \[12, 16\] channels"):
        export_funasr(uneven, tmp_path)
    assert not list(tmp_path.iterdir())  # nothing written


def test_funasrs_default_frame_decision_is_our_threshold_of_0_8():
    segments = OmegaConf.to_container(compose_config(["+experiment=fsmn_vad"]).task.segments)
    options = segment_options({**segments, "threshold": 0.8}, hop_ms=10, frame_ms=25, sample_rate=16000)
    assert options["speech_noise_thres"] == pytest.approx(VADXOptions().speech_noise_thres)  # 0.6
