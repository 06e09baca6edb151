"""FSMN-VAD (FunASR's `fsmn_vad_streaming` shape) with every size configurable.

waveform → fbank (80 mel, 25 ms Hamming, 10 ms hop) → CMVN → LFR (m = 5) → Linear 400→140 →
Linear 140→250 + ReLU → N × [Linear 250→128 (no bias) → FSMN memory → Linear 128→250 + ReLU] →
Linear 250→140 → Linear 140→classes. One decision per 10 ms frame, class 1 = speech.

With FunASR's sizes and 2 classes it has 394 k parameters (FunASR's own head has 248 classes,
hence its 0.43 M). The LFR window looks 2 frames ahead and the centred fbank window 17.5 ms, so
a stream decides frame t once it holds the audio up to frame t + 2 (plus rorder frames per layer).
Past the end of the audio the LFR window sees the fbank of zeros (FunASR repeats the last frame):
then an item's decisions do not depend on how much padding its batch adds after it (with causal
memories, rorder = 0, as configured; a memory that looks ahead sees zeros past the end alone).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from speechcompress.features.fbank import (
    CMVN,
    edge_padding,
    frame_count,
    kaldi_fbank,
    padded_fbank,
    sliding_stack,
    stack_frames,
)
from speechcompress.models.channels import ChannelGroup, Slice, linear_producers, resized
from speechcompress.models.fsmn import FSMNMemory


@dataclass
class VADOutput:
    logits: torch.Tensor  # [B, frames, classes]; frame i covers samples [hop·i, hop·(i+1))
    features: torch.Tensor  # [B, frames + lfr_m // 2, n_mels] fbank before CMVN: a teacher with the same front-end reuses it

    def speech_probability(self) -> torch.Tensor:
        """[B, frames] probability of class 1 (speech)."""
        return self.logits.softmax(-1)[..., 1]


class FSMNLayer(nn.Module):
    def __init__(self, inputs: int, proj: int, outputs: int, lorder: int, rorder: int, lstride: int, rstride: int) -> None:
        super().__init__()
        self.project = nn.Linear(inputs, proj, bias=False)
        self.memory = FSMNMemory(proj, lorder, rorder, lstride, rstride)
        self.expand = nn.Linear(proj, outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.expand(self.memory(self.project(x))))

    def step(self, x: torch.Tensor, history: torch.Tensor, final: bool) -> tuple[torch.Tensor, torch.Tensor]:
        memory, history = self.memory.step(self.project(x), history, final)
        return torch.relu(self.expand(memory)), history


class FSMNVAD(nn.Module):
    # what it ships as: a whole-signal graph, and FunASR's model folder (its step graph with FSMN caches)
    family, formats = "fsmn_vad", ("onnx", "funasr")
    size_metric = "size/bytes_onnx"  # the bytes it is judged by: the whole-signal graph's file

    def __init__(
        self,
        sample_rate: int = 16000,
        n_mels: int = 80,
        window_ms: float = 25.0,
        hop_ms: float = 10.0,
        lfr_m: int = 5,
        input_affine: int = 140,
        hidden: int = 250,
        proj: int = 128,
        layers: int = 4,
        lorder: int = 20,
        rorder: int = 0,
        lstride: int = 1,
        rstride: int = 1,
        output_affine: int = 140,
        classes: int = 2,
        channels: dict[str, int] | None = None,
    ) -> None:
        """`channels` overrides the size of single channel groups (see `channel_groups`), e.g. as
        structured pruning leaves them: {"hidden0": 200, "proj1": 90, ...}."""
        super().__init__()
        self.sample_rate, self.n_mels, self.lfr_m, self.classes = sample_rate, n_mels, lfr_m, classes
        self.window = int(round(sample_rate * window_ms / 1000))
        self.hop = int(round(sample_rate * hop_ms / 1000))
        self.lookahead = lfr_m // 2  # fbank frames after the last decision that LFR stacking reads
        self.cmvn = CMVN(n_mels)  # applied per fbank frame before stacking: the same as on the stacked frames
        sizes = {"input": input_affine, "hidden0": hidden}
        for i in range(layers):
            sizes |= {f"proj{i}": proj, f"hidden{i + 1}": hidden}
        self.sizes = z = resized(sizes | {"output": output_affine}, channels)
        self.input = nn.Sequential(nn.Linear(n_mels * lfr_m, z["input"]), nn.Linear(z["input"], z["hidden0"]), nn.ReLU())
        self.layers = nn.ModuleList(FSMNLayer(z[f"hidden{i}"], z[f"proj{i}"], z[f"hidden{i + 1}"], lorder, rorder,
                                              lstride, rstride) for i in range(layers))
        self.output = nn.Sequential(nn.Linear(z[f"hidden{layers}"], z["output"]), nn.Linear(z["output"], classes))

    def input_config(self) -> dict[str, float]:
        """What a teacher must share with this model to be distilled into it: the same inputs."""
        return {"sample_rate": self.sample_rate, "n_mels": self.n_mels, "window": self.window, "hop": self.hop,
                "lfr_m": self.lfr_m, "classes": self.classes}

    def channel_groups(self) -> list[ChannelGroup]:
        """The input affine's outputs, the hidden activations before and after each FSMN layer, each
        layer's projection (with its per-channel memory filters) and the output affine's outputs."""
        n = len(self.layers)

        def reads_hidden(i: int) -> tuple[Slice, ...]:
            return (Slice(f"layers.{i}.project.weight", 1),) if i < n else (Slice("output.0.weight", 1),)

        groups = [ChannelGroup("input", self.sizes["input"], linear_producers("input.0"), (Slice("input.1.weight", 1),)),
                  ChannelGroup("hidden0", self.sizes["hidden0"], linear_producers("input.1"), reads_hidden(0))]
        for i, layer in enumerate(self.layers):
            memory = [Slice(f"layers.{i}.memory.{side}.weight", 0) for side in ("left", "right")
                      if getattr(layer.memory, side) is not None]
            groups += [ChannelGroup(f"proj{i}", self.sizes[f"proj{i}"], linear_producers(f"layers.{i}.project", bias=False),
                                    (*memory, Slice(f"layers.{i}.expand.weight", 1))),
                       ChannelGroup(f"hidden{i + 1}", self.sizes[f"hidden{i + 1}"],
                                    linear_producers(f"layers.{i}.expand"), reads_hidden(i + 1))]
        return [*groups, ChannelGroup("output", self.sizes["output"], linear_producers("output.0"),
                                      (Slice("output.1.weight", 1),))]

    # --- front-end ---------------------------------------------------------------------------
    def fbank(self, noisy: torch.Tensor) -> torch.Tensor:
        """[B, T] waveform → [B, ceil(T / hop) + lookahead, n_mels] log-mel energies, before CMVN."""
        return padded_fbank(noisy, self.sample_rate, self.n_mels, self.window, self.hop, self.lookahead)

    def frames(self, samples: int) -> int:
        return frame_count(samples, self.hop)

    # --- network ---------------------------------------------------------------------------------
    def from_features(self, features: torch.Tensor) -> VADOutput:
        """The decisions for fbank `features` [B, frames, n_mels] (before CMVN, as `fbank` returns them)."""
        x = self.input(stack_frames(self.cmvn(features), self.lfr_m))
        for layer in self.layers:
            x = layer(x)
        return VADOutput(self.output(x), features)

    def forward(self, noisy: torch.Tensor) -> VADOutput:
        # log energies in fp32 even under mixed precision: fp16 would round the quiet frames away
        with torch.no_grad(), torch.autocast(noisy.device.type, enabled=False):
            features = self.fbank(noisy)
        return self.from_features(features)

    # --- streaming -------------------------------------------------------------------------------
    def init_state(self, batch: int = 1) -> dict:
        device = self.cmvn.mean.device
        left, _ = edge_padding(0, self.window, self.hop)
        return {
            "samples": torch.zeros(batch, left, device=device),  # padded input not yet framed
            "seen": 0,  # input samples so far
            "fbank_frames": 0,  # fbank frames computed so far
            "lfr": torch.zeros(batch, 0, self.n_mels, device=device),  # normalised frames awaiting their LFR context
            "layers": [layer.memory.init_state(batch, layer.project.out_features, device) for layer in self.layers],
        }

    def _stream_fbank(self, state: dict, chunk: torch.Tensor, final: bool) -> tuple[torch.Tensor, torch.Tensor, int]:
        samples = torch.cat([state["samples"], chunk.float()], dim=-1)
        seen = state["seen"] + chunk.shape[-1]
        if final:  # the zeros `fbank` appends after the end, so that the last frames are the same
            complete = self.frames(seen) + self.lookahead - state["fbank_frames"]
            samples = torch.nn.functional.pad(samples, (0, max(0, (complete - 1) * self.hop + self.window - samples.shape[-1])))
        else:
            complete = max(0, (samples.shape[-1] - self.window) // self.hop + 1)
        used = (complete - 1) * self.hop + self.window if complete else 0
        new = torch.stack([kaldi_fbank(wave[:used], self.sample_rate, self.n_mels, self.window, self.hop) for wave in samples])
        return new, samples[:, complete * self.hop :], seen

    def _stream_lfr(self, state: dict, new: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Stacked frames whose LFR context has arrived (the first frame repeated as in `stack_frames`), and the rest."""
        left = (self.lfr_m - 1) // 2
        buffer = state["lfr"]
        if state["fbank_frames"] == 0 and new.shape[1]:
            buffer = new[:, :1].expand(-1, left, -1)
        buffer = torch.cat([buffer, new], dim=1)
        ready = max(0, buffer.shape[1] - self.lfr_m + 1)
        return sliding_stack(buffer, self.lfr_m, ready), buffer[:, ready:]

    @torch.no_grad()
    def step(self, chunk: torch.Tensor, state: dict, final: bool = False) -> tuple[torch.Tensor, dict]:
        """Feeds [B, n] samples; returns the logits [B, k, classes] of the frames now decided, and the new state.

        The outputs of every step of a stream, the last one with `final=True`, concatenated, equal
        `forward` of the whole signal.
        """
        new, samples, seen = self._stream_fbank(state, chunk, final)
        stacked, lfr = self._stream_lfr(state, self.cmvn(new))
        x = self.input(stacked)
        histories = []
        for layer, history in zip(self.layers, state["layers"], strict=True):
            x, history = layer.step(x, history, final)
            histories.append(history)
        new_state = {"samples": samples, "seen": seen, "fbank_frames": state["fbank_frames"] + new.shape[1],
                     "lfr": lfr, "layers": histories}
        return self.output(x), new_state
