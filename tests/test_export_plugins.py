"""A new export format is one class and one config file: a TorchScript exporter written here, outside
the package, is picked up by a training run (`export=torchscript`), `speechcompress export`,
`benchmark` and `enhance` without any other change."""

import textwrap

import numpy as np
import soundfile as sf

from speechcompress.cli import main
from speechcompress.config import CONFIG_PATH_VARIABLE
from speechcompress.export.registry import export_configs, format_classes
from speechcompress.train import run

from .conftest import TINY, compose_config, sandbox_overrides

PLUGIN = '''
"""TorchScript files of a denoiser: the whole format."""
import json

import torch
from torch import nn

from speechcompress.export.exporter import Exporter, Written
from speechcompress.export.onnx import on_cpu_in_eval


class _Enhance(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, noisy):
        return self.model(noisy).enhanced


class _Output:
    def __init__(self, enhanced):
        self.enhanced = enhanced


class TorchScriptModel(nn.Module):
    kind = "denoiser"

    def __init__(self, path):
        super().__init__()
        extra = {"meta.json": ""}
        self.module = torch.jit.load(str(path), _extra_files=extra)
        self.meta = json.loads(extra["meta.json"])
        self.sample_rate = self.meta["sample_rate"]

    def forward(self, noisy):
        return _Output(self.module(noisy.float().cpu()).to(noisy.device))


class TorchScriptFile(Exporter):
    suffix, keys = ".pt", ("torchscript",)

    def applies(self, model):
        return getattr(model, "family", None) in ("rnnoise", "frcrn")  # denoisers whose forward traces

    def write(self, model, folder, context):
        folder.mkdir(parents=True, exist_ok=True)
        with on_cpu_in_eval(model), torch.no_grad():
            traced = torch.jit.trace(_Enhance(model), torch.randn(1, model.sample_rate) * 0.1, check_trace=False)
            path = folder / "model.pt"
            meta = {"sample_rate": model.sample_rate, **context.settings}
            torch.jit.save(traced, str(path), _extra_files={"meta.json": json.dumps(meta)})
            wave = torch.randn(2, 12345) * 0.1
            difference = float((TorchScriptModel(path)(wave).enhanced - model(wave).enhanced).abs().max())
        return [Written("torchscript", path, "TorchScript fp32", lossy=False,
                        figures={"max_abs_difference": difference})]

    @classmethod
    def load(cls, path, threads=None):
        return TorchScriptModel(path)
'''

CONFIG = """
# TorchScript: the traced forward of a denoiser (model.pt), its settings in the file
formats:
  torchscript:
    _target_: torchscript_format.TorchScriptFile
"""


def test_a_format_in_one_file_and_one_config_reaches_training_export_benchmark_and_enhance(tiny_run, tmp_path,
                                                                                            monkeypatch, capsys):
    plugin, configs = tmp_path / "plugin", tmp_path / "conf"
    plugin.mkdir()
    (plugin / "torchscript_format.py").write_text(textwrap.dedent(PLUGIN))
    (configs / "export").mkdir(parents=True)
    (configs / "export" / "torchscript.yaml").write_text(CONFIG)
    monkeypatch.syspath_prepend(str(plugin))
    monkeypatch.setenv(CONFIG_PATH_VARIABLE, str(configs))
    assert "torchscript" in export_configs() and "TorchScriptFile" in [c.__name__ for c in format_classes()]

    # a training run ships it and measures it as deployed
    data = f"paths.data_dir={tiny_run[0].paths.data_dir}"
    overrides = [o for o in TINY if not o.startswith(("trainer.max_steps", "trainer.val_check_interval"))]
    cfg = compose_config(["+experiment=rnnoise", *overrides, "trainer.max_steps=20", "trainer.val_check_interval=20",
                          "export=torchscript", *sandbox_overrides(tmp_path), data])
    metrics = run(cfg)
    assert metrics["size/bytes_torchscript"] > 0 and metrics["latency/rtf_torchscript"] > 0
    assert metrics["deploy/torchscript/max_abs_difference"] < 1e-5
    assert "TorchScript fp32" in capsys.readouterr().out  # its row in the run's summary
    (checkpoint,) = (tmp_path / "experiments" / "runs" / "rnnoise").glob("*/checkpoints/best-*.ckpt")
    assert (checkpoint.parent.parent / "export" / "model.pt").is_file()

    # `speechcompress export --format torchscript`, then `benchmark` and `enhance` open the file
    out = tmp_path / "shipped"
    assert main(["export", "--checkpoint", str(checkpoint), "--format", "torchscript", "--out", str(out)]) == 0
    assert main(["benchmark", str(out / "model.pt"), "--seconds", "1", "--repeats", "1"]) == 0
    assert str(out / "model.pt") in capsys.readouterr().out
    t = np.arange(20000) / 16000
    sf.write(tmp_path / "in.wav", 0.2 * np.sin(2 * np.pi * 220 * t) + 0.05 * np.sin(2 * np.pi * 3000 * t), 16000)
    for name, source in (("torch", checkpoint), ("torchscript", out / "model.pt")):
        assert main(["enhance", "--checkpoint", str(source), str(tmp_path / "in.wav"),
                     str(tmp_path / f"{name}.wav")]) == 0
    torch_out, traced_out = (sf.read(tmp_path / f"{name}.wav")[0] for name in ("torch", "torchscript"))
    assert np.abs(torch_out).max() > 0.01 and np.abs(torch_out - traced_out).max() <= 2 * 2**-15
