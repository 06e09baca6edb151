"""The FSMN memory block, shared by FSMN-VAD (along time) and FRCRN.

    m_t = p_t + Σ_{k=0}^{lorder−1} a_k ⊙ p_{t − k·lstride} + Σ_{k=1}^{rorder} c_k ⊙ p_{t + k·rstride}

a depthwise (per-channel) filter over `lorder` past frames, the current one included, and
`rorder` future frames, plus a residual. With rorder = 0 it is causal; otherwise the output lags
the input by rorder·rstride frames when streamed.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _depthwise(conv: nn.Conv1d, x: torch.Tensor) -> torch.Tensor:
    """`conv` (depthwise, along the sequence) on maps [N, C, L, W], every column w alike: a 2-D
    convolution with a (k, 1) kernel, which on the CPU also runs faster than the 1-D one."""
    return F.conv2d(x, conv.weight.unsqueeze(-1), dilation=(conv.dilation[0], 1), groups=conv.groups)


class FSMNMemory(nn.Module):
    def __init__(self, channels: int, lorder: int, rorder: int = 0, lstride: int = 1, rstride: int = 1) -> None:
        super().__init__()
        if lorder < 1 or rorder < 0 or lstride < 1 or rstride < 1:
            raise ValueError(f"FSMN memory needs lorder ≥ 1, rorder ≥ 0 and strides ≥ 1; got lorder={lorder}, "
                             f"rorder={rorder}, lstride={lstride}, rstride={rstride}")
        self.past = (lorder - 1) * lstride  # frames of history each output needs
        self.future = rorder * rstride  # frames of look-ahead each output needs
        self.rstride = rstride
        self.left = nn.Conv1d(channels, channels, lorder, dilation=lstride, groups=channels, bias=False)
        self.right = nn.Conv1d(channels, channels, rorder, dilation=rstride, groups=channels, bias=False) if rorder else None

    def _memory(self, padded: torch.Tensor) -> torch.Tensor:
        """Outputs for every position of `padded` [N, C, past + n + future, W] that has its full context."""
        outputs = padded.shape[2] - self.past - self.future
        current = padded[:, :, self.past : self.past + outputs]
        memory = current + _depthwise(self.left, padded[:, :, : self.past + outputs])
        if self.right is not None:
            memory = memory + _depthwise(self.right, padded[:, :, self.past + self.rstride :])
        return memory

    def forward(self, p: torch.Tensor) -> torch.Tensor:
        """[B, T, C] → [B, T, C], zeros assumed before the start and after the end."""
        if p.shape[1] == 0:  # no frames (an empty input): nothing to filter
            return p
        return self.along(p.transpose(1, 2).unsqueeze(-1)).squeeze(-1).transpose(1, 2)

    def along(self, p: torch.Tensor) -> torch.Tensor:
        """The memory along dim 2 of channels-first maps [N, C, L, W], for every column alike."""
        return self._memory(F.pad(p, (0, 0, self.past, self.future)))

    def causal(self, frames: torch.Tensor) -> torch.Tensor:
        """The memory of a causal block (rorder = 0) for frames [N, C, past + n, W] whose first
        `past` frames are the history before them: → [N, C, n, W]. Used by graphs that carry the
        history as a tensor of their own (an exported step's cache)."""
        if self.right is not None:
            raise ValueError("causal() needs rorder = 0: this memory also reads future frames")
        return frames[:, :, self.past :] + _depthwise(self.left, frames)

    def init_state(self, batch: int, channels: int, device: torch.device | None = None) -> torch.Tensor:
        return torch.zeros(batch, channels, self.past, device=device)  # the zeros before the start

    def step(self, p: torch.Tensor, history: torch.Tensor, final: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Streams [B, n, C] frames in; returns the outputs whose look-ahead has arrived, and the new history.

        `final=True` appends the zeros after the end and so returns every remaining output.
        """
        frames = torch.cat([history, p.transpose(1, 2)], dim=-1)
        if final:
            frames = F.pad(frames, (0, self.future))
        ready = max(0, frames.shape[-1] - self.past - self.future)
        output = self._memory(frames.unsqueeze(-1)).squeeze(-1) if ready else frames.new_zeros(*frames.shape[:2], 0)
        return output.transpose(1, 2), frames[..., ready:]


class DeepFSMN(nn.Module):
    """A deep-FSMN unit: x + memory(project(relu(linear(x)))), features in and out alike.

    [B, L, features] → [B, L, features] along any sequence axis L (time, or frequency in FRCRN),
    with `lorder` positions of memory (the current one included) and no look-ahead.
    """

    def __init__(self, features: int, hidden: int, lorder: int) -> None:
        super().__init__()
        self.linear = nn.Linear(features, hidden)
        self.project = nn.Linear(hidden, features, bias=False)
        self.memory = FSMNMemory(features, lorder)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.memory(self.project(torch.relu(self.linear(x))))

    def along(self, x: torch.Tensor) -> torch.Tensor:
        """The same unit along dim 2 of channels-first maps [N, features, L, W] (features in dim 1,
        every column alike): the linear layers as 1×1 convolutions, no transposes."""
        hidden = torch.relu(F.conv2d(x, self.linear.weight[:, :, None, None], self.linear.bias))
        return x + self.memory.along(F.conv2d(hidden, self.project.weight[:, :, None, None]))
