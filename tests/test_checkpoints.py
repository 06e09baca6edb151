"""Checkpoints from strangers: nothing in them runs, only speechcompress's own classes are built."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from speechcompress.checkpoints import TASK_CLASS_KEY, load_task, read_checkpoint, save_task
from speechcompress.models.rnnoise import RNNoise
from speechcompress.tasks.denoise import DenoiseTask

MODEL = {"_target_": "speechcompress.models.rnnoise.RNNoise", "cond_size": 8, "gru_size": 8}
LOSS = {"_target_": "speechcompress.tasks.losses.RNNoiseLoss"}


class CreatesAFile:
    """Unpickling this would create `path`: what a malicious checkpoint does to run code."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (Path.touch, (self.path,))


def _task() -> DenoiseTask:
    return DenoiseTask(model=MODEL, loss=LOSS, optimizer={"lr": 1e-3})


def test_a_checkpoint_whose_pickle_would_create_a_file_is_refused_and_creates_nothing(tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.ckpt"
    checkpoint = {"state_dict": _task().state_dict(), "hyper_parameters": {"model": MODEL}, "x": CreatesAFile(marker)}
    torch.save(checkpoint, evil)
    with pytest.raises(ValueError, match="holds Python objects"):
        load_task(evil)
    assert not marker.exists()
    result = subprocess.run([sys.executable, "-m", "speechcompress.cli", "enhance", "--checkpoint", str(evil),
                             str(tmp_path / "in.wav"), str(tmp_path / "out.wav")], capture_output=True, text=True)
    assert result.returncode == 2 and "evil.ckpt" in result.stderr and "Traceback" not in result.stderr
    assert not marker.exists()


@pytest.mark.parametrize("where, name", [
    ("model", "os.system"),
    ("model", "speechcompress.models.rnnoise.nn.Module"),  # reached through our module, defined in torch
    ("loss", "speechcompress.data.synthetic.load_synthetic_split"),  # ours, but no model or loss
    ("task", "builtins.eval"),
])
def test_classes_outside_speechcompress_are_refused(tmp_path, where, name):
    path = save_task(_task(), tmp_path / "ok.ckpt")
    assert isinstance(load_task(path), DenoiseTask)
    checkpoint = read_checkpoint(path)
    if where == "task":
        checkpoint[TASK_CLASS_KEY] = name
    else:
        checkpoint["hyper_parameters"][where]["_target_"] = name
    torch.save(checkpoint, tmp_path / "bad.ckpt")
    with pytest.raises(ValueError, match="refused|not a speechcompress"):
        load_task(tmp_path / "bad.ckpt")


def test_saved_task_loads_back_with_the_same_weights(tmp_path):
    task = _task()
    loaded = load_task(save_task(task, tmp_path / "task.ckpt"))
    assert isinstance(loaded.model, RNNoise) and not loaded.training
    for name, value in task.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[name]), name
    assert not list(tmp_path.glob(".*partial"))  # written through a temporary name, renamed into place


def test_unreadable_files_name_themselves(tmp_path):
    (tmp_path / "truncated.ckpt").write_bytes(b"PK\x03\x04 not a zip")
    with pytest.raises(ValueError, match="truncated.ckpt is not a readable checkpoint"):
        read_checkpoint(tmp_path / "truncated.ckpt")
    with pytest.raises(FileNotFoundError, match="nope.ckpt does not exist"):
        read_checkpoint(tmp_path / "nope.ckpt")
