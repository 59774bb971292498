"""TCN baseline of the paper's Table 1 ([47]: dance beat tracking from visual information alone).

A small temporal convolutional network on the same input as :class:`~rhythmicnet.models.beat_net.BeatNet`
(``beat_features``: velocity, position and confidence per joint), flattened per frame: no graph, no
attention. [47] uses the beat-tracking TCN of Davies and Boeck (2019); this follows that design:

* input batch norm over the 17 x C joint channels, a 1x1 conv to ``channels``;
* ``n_layers`` residual blocks, block i: dilated conv (``kernel_size``, dilation 2^i) -> ELU ->
  channel dropout -> 1x1 conv, added to the block input;
* a 1x1 conv to two logits per frame (beat, downbeat), trained with the same
  :func:`~rhythmicnet.models.beat_net.beat_loss`.

Defaults: 32 channels, kernel 5, 6 blocks (dilations 1..32): receptive field
``1 + (k - 1) * (2^n - 1)`` = 253 frames (8.4 s at 30 fps), about the 240-frame training window;
~40 k parameters. ``causal=True`` pads every conv on the left only (the whole receptive field lies in
the past), otherwise symmetrically. Padded frames (``mask``) are zeroed at every conv input, as in
``BeatNet``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn

from rhythmicnet.models.beat_features import FEATURE_CHANNELS, check_feature_batch
from rhythmicnet.models.beat_net import BeatNetOutput
from rhythmicnet.models.config import config_from_dict
from rhythmicnet.models.skeleton import NUM_JOINTS

__all__ = ["TCNBeat", "TCNBeatConfig"]


@dataclass(frozen=True)
class TCNBeatConfig:
    """Hyper-parameters of :class:`TCNBeat` (saved with the weights, rebuilt by ``from_dict``)."""

    in_channels: int = FEATURE_CHANNELS
    channels: int = 32
    kernel_size: int = 5
    n_layers: int = 6
    dropout: float = 0.1
    causal: bool = False

    def __post_init__(self) -> None:
        for name in ("in_channels", "channels", "kernel_size", "n_layers"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if self.kernel_size % 2 != 1:
            raise ValueError(f"kernel_size must be odd, got {self.kernel_size}")
        if not isinstance(self.causal, bool):
            raise ValueError(f"causal must be a bool, got {self.causal!r}")
        if not 0.0 <= float(self.dropout) < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout!r}")

    @property
    def receptive_field(self) -> int:
        """Frames that influence one output (past only when causal, centred otherwise)."""
        return 1 + (self.kernel_size - 1) * (2**self.n_layers - 1)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TCNBeatConfig:
        """Rebuild from :meth:`to_dict`; unknown keys raise ``ValueError`` (missing ones take defaults)."""
        return config_from_dict(cls, data)


class _TCNBlock(nn.Module):
    """Dilated conv, ELU, channel dropout, 1x1 conv, residual. Shape: (B, C, T) -> (B, C, T)."""

    def __init__(self, config: TCNBeatConfig, dilation: int) -> None:
        super().__init__()
        c, k = config.channels, config.kernel_size
        span = (k - 1) * dilation
        self.pad = (span, 0) if config.causal else (span // 2, span // 2)  # (left, right) frames
        self.conv = nn.Conv1d(c, c, k, dilation=dilation)
        self.dropout = nn.Dropout1d(config.dropout)
        self.mix = nn.Conv1d(c, c, 1)

    def forward(self, x: Tensor, frame_mask: Tensor | None) -> Tensor:
        h = x if frame_mask is None else x * frame_mask  # padded frames look like the zero padding
        h = self.conv(F.pad(h, self.pad))  # (B, C, T)
        return x + self.mix(self.dropout(F.elu(h)))


class TCNBeat(nn.Module):
    """Beat and downbeat logits per frame from flattened per-joint features.

    Shape: forward(x (B, T, 17, C_in), mask (B, T) bool or None) -> BeatNetOutput, each (B, T).
    """

    def __init__(self, config: TCNBeatConfig) -> None:
        super().__init__()
        self.config = config
        width = NUM_JOINTS * config.in_channels
        self.input_norm = nn.BatchNorm1d(width)
        self.input_proj = nn.Conv1d(width, config.channels, 1)
        self.blocks = nn.ModuleList(_TCNBlock(config, 2**i) for i in range(config.n_layers))
        self.head = nn.Conv1d(config.channels, 2, 1)  # channel 0 beat, 1 downbeat

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def forward(self, x: Tensor, mask: Tensor | None = None) -> BeatNetOutput:
        cfg = self.config
        b, t = check_feature_batch(x, mask, cfg.in_channels)
        frame_mask = None if mask is None else mask.to(x.dtype).view(b, 1, t)
        h = self.input_proj(self.input_norm(x.reshape(b, t, -1).transpose(1, 2)))  # (B, C, T)
        for block in self.blocks:
            h = block(h, frame_mask)
        logits = self.head(h)  # (B, 2, T)
        return BeatNetOutput(logits[:, 0], logits[:, 1])
