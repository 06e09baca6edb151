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
        """Outputs for every position of `padded` [B, C, past + n + future] that has its full context."""
        outputs = padded.shape[-1] - self.past - self.future
        current = padded[..., self.past : self.past + outputs]
        memory = current + self.left(padded[..., : self.past + outputs])
        if self.right is not None:
            memory = memory + self.right(padded[..., self.past + self.rstride :])
        return memory

    def forward(self, p: torch.Tensor) -> torch.Tensor:
        """[B, T, C] → [B, T, C], zeros assumed before the start and after the end."""
        if p.shape[1] == 0:  # no frames (an empty input): nothing to filter
            return p
        padded = F.pad(p.transpose(1, 2), (self.past, self.future))
        return self._memory(padded).transpose(1, 2)

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
        output = self._memory(frames) if ready else frames.new_zeros(frames.shape[0], frames.shape[1], 0)
        return output.transpose(1, 2), frames[..., ready:]
