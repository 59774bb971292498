"""Drum U-Net (Rhythm2Drum, step 2): hits H -> velocities V and offsets O.

The paper treats H, V and O (each 9 drum classes x T 16th steps) as images of one shape and maps H
to (V, O) with a U-Net of 4 down-sampling blocks of 16, 32, 64 and 128 channels, trained with an MSE
loss (Methods, "Rhythm2Drum"; Implementation Details).

Decisions where the paper is open:

* **Pooling along time only.** A 9 x 32 grid cannot be halved four times along the class axis. Each
  down-sampling block is two 3x3 convolutions followed by a (1, 2) max-pool, so a 2-bar window goes
  9 x 32 -> 9 x 16 -> 9 x 8 -> 9 x 4 -> 9 x 2 at the bottom (one bar: 9 x 16 -> ... -> 9 x 1); the
  up-sampling path uses (1, 2) transposed convolutions. We did not pad the classes to 16 rows: the
  class axis has no spatial order to pool over, padding would spend ~78 % more compute on empty rows,
  and the stacked 3x3 convolutions already reach across all 9 classes (receptive field 19 rows at
  the bottom). T must be a multiple of 16 (``2 ** len(channels)``).
* **Which class, which step.** Convolutions are translation-equivariant, but velocity depends on the
  class (a kick is struck harder than a ghost snare) and on the metrical position (downbeats are
  accented). With ``position_bias`` (default on) a learned bias per class row (C0, 9, 1) and per
  step within the bar (C0, 1, 16; step ``t mod 16``) is added to the first convolution's output, so
  the same hit in another class or at another step of the bar can get another velocity. It works for
  any T that is a multiple of 16.
* **Normalisation**: GroupNorm (not BatchNorm), so a window's output never depends on the other
  windows of its batch: one window live equals the same window inside an offline batch.
* **Bottleneck**: two 3x3 convolutions at ``bottleneck_channels`` (default 128, the last block's
  width, so 16/32/64/128 are the only widths and the model stays small; Ronneberger's U-Net would
  double it).
* **Outputs**: a 1x1 convolution to 2 channels; ``V = sigmoid(a)`` in (0, 1), ``O = 0.5 * tanh(b)``
  clamped to ``[-0.5, 0.5 - eps/4]`` where eps is the machine epsilon of the dtype, i.e. the largest
  float below 0.5 (0.49999997 in float32): in float32 ``tanh`` rounds to exactly 1.0 for b > ~9, so
  without the clamp O could reach 0.5, outside the grid's half-open range. The clamp only acts where
  tanh is already saturated, so it costs no useful gradient.
* The model does not zero V and O at non-hit cells; :func:`unet_loss` scores either all cells or only
  the hit cells (``hit_cells_only``), and the drum grid ignores V/O where H is 0.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from rhythmicnet.models.config import config_from_dict

__all__ = ["DrumUNet", "DrumUNetConfig", "UNetLoss", "unet_loss"]


@dataclass(frozen=True)
class DrumUNetConfig:
    """Hyper-parameters of :class:`DrumUNet` (saved with the weights, rebuilt by ``from_dict``)."""

    n_classes: int = 9
    #: Output channels of the down-sampling blocks; each block halves the time axis.
    channels: tuple[int, ...] = (16, 32, 64, 128)
    bottleneck_channels: int = 128
    #: 16th steps per bar (period of the learned step bias).
    steps_per_bar: int = 16
    #: Learned per-class-row and per-step-in-bar bias after the first convolution.
    position_bias: bool = True
    #: GroupNorm groups (capped by each layer's channel count).
    norm_groups: int = 8
    dropout: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "channels", tuple(self.channels))  # a JSON list becomes a tuple
        ints = {"n_classes": self.n_classes, "bottleneck_channels": self.bottleneck_channels,
                "steps_per_bar": self.steps_per_bar, "norm_groups": self.norm_groups}
        for i, c in enumerate(self.channels):
            ints[f"channels[{i}]"] = c
        for name, value in ints.items():
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if not self.channels:
            raise ValueError("channels must name at least one down-sampling block")
        if not isinstance(self.position_bias, bool):
            raise ValueError(f"position_bias must be a bool, got {self.position_bias!r}")
        if not 0.0 <= float(self.dropout) < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout!r}")

    @property
    def time_multiple(self) -> int:
        """T must be a multiple of this (each block halves the time axis)."""
        return 2 ** len(self.channels)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["channels"] = list(self.channels)
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DrumUNetConfig:
        """Rebuild from :meth:`to_dict`; unknown keys raise ``ValueError`` (missing ones take defaults)."""
        return config_from_dict(cls, data)


def _norm(channels: int, groups: int) -> nn.GroupNorm:
    g = min(groups, channels)
    while channels % g:
        g -= 1
    return nn.GroupNorm(g, channels)


class _DoubleConv(nn.Module):
    """(3x3 conv, GroupNorm, ReLU) x 2. Shape: (B, Cin, N, T) -> (B, Cout, N, T)."""

    def __init__(self, c_in: int, c_out: int, config: DrumUNetConfig) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, kernel_size=3, padding=1)
        self.norm1 = _norm(c_out, config.norm_groups)
        self.conv2 = nn.Conv2d(c_out, c_out, kernel_size=3, padding=1)
        self.norm2 = _norm(c_out, config.norm_groups)
        self.act = nn.ReLU()
        self.dropout = nn.Dropout2d(config.dropout)

    def forward(self, x: Tensor, bias: Tensor | None = None) -> Tensor:
        x = self.conv1(x)
        if bias is not None:
            x = x + bias
        x = self.act(self.norm1(x))
        return self.dropout(self.act(self.norm2(self.conv2(x))))


class _Up(nn.Module):
    """Double the time axis, concatenate the skip, double conv. Shape: (B, Cin, N, T), skip (B, Cs, N, 2T)."""

    def __init__(self, c_in: int, c_skip: int, c_out: int, config: DrumUNetConfig) -> None:
        super().__init__()
        self.up = nn.ConvTranspose2d(c_in, c_out, kernel_size=(1, 2), stride=(1, 2))
        self.conv = _DoubleConv(c_out + c_skip, c_out, config)

    def forward(self, x: Tensor, skip: Tensor) -> Tensor:
        return self.conv(torch.cat([self.up(x), skip], dim=1))  # (B, Cout, N, 2T)


class DrumUNet(nn.Module):
    """U-Net from drum hits to velocities and offsets.

    Shape:
        hits: (B, 9, T) 0/1 (any dtype), T a multiple of 16 -> seen as a 1-channel image (B, 1, 9, T).
        forward(hits) -> (velocity (B, 9, T) in (0, 1), offset (B, 9, T) in [-0.5, 0.5)).
    """

    def __init__(self, config: DrumUNetConfig | None = None) -> None:
        super().__init__()
        self.config = config = config if config is not None else DrumUNetConfig()
        chans = config.channels
        self.down = nn.ModuleList()
        c_prev = 1
        for c in chans:
            self.down.append(_DoubleConv(c_prev, c, config))
            c_prev = c
        self.pool = nn.MaxPool2d(kernel_size=(1, 2))
        self.bottleneck = _DoubleConv(c_prev, config.bottleneck_channels, config)
        self.up = nn.ModuleList()
        c_prev = config.bottleneck_channels
        for c in reversed(chans):
            self.up.append(_Up(c_prev, c, c, config))
            c_prev = c
        self.head = nn.Conv2d(c_prev, 2, kernel_size=1)
        self.class_bias: nn.Parameter | None = None
        self.step_bias: nn.Parameter | None = None
        if config.position_bias:
            self.class_bias = nn.Parameter(torch.zeros(chans[0], config.n_classes, 1))  # (C0, N, 1)
            self.step_bias = nn.Parameter(torch.zeros(chans[0], 1, config.steps_per_bar))  # (C0, 1, 16)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def _position_bias(self, n_steps: int) -> Tensor | None:
        if self.class_bias is None or self.step_bias is None:
            return None
        reps = -(-n_steps // self.config.steps_per_bar)  # ceil
        step = self.step_bias.repeat(1, 1, reps)[..., :n_steps]  # (C0, 1, T): step t gets bias of t mod 16
        return (self.class_bias + step).unsqueeze(0)  # (1, C0, N, T)

    def forward(self, hits: Tensor) -> tuple[Tensor, Tensor]:
        """Velocities and offsets for hits. Shape: (B, 9, T) -> ((B, 9, T), (B, 9, T))."""
        cfg = self.config
        if hits.dim() != 3 or hits.shape[1] != cfg.n_classes:
            raise ValueError(f"hits must be (batch, {cfg.n_classes}, steps), got shape {tuple(hits.shape)}")
        n_steps = hits.shape[2]
        if n_steps < 1 or n_steps % cfg.time_multiple:
            raise ValueError(f"hits has {n_steps} steps; the U-Net needs a positive multiple of {cfg.time_multiple}")
        dtype = self.head.weight.dtype
        x = hits.to(dtype).unsqueeze(1)  # (B, 1, N, T)
        skips = []
        for i, block in enumerate(self.down):
            x = block(x, self._position_bias(n_steps) if i == 0 else None)  # (B, C_i, N, T / 2^i)
            skips.append(x)
            x = self.pool(x)  # (B, C_i, N, T / 2^(i+1))
        x = self.bottleneck(x)  # (B, Cb, N, T / 2^len)
        for up, skip in zip(self.up, reversed(skips), strict=True):
            x = up(x, skip)
        out = self.head(x)  # (B, 2, N, T)
        velocity = torch.sigmoid(out[:, 0])  # (B, N, T)
        o_max = 0.5 - torch.finfo(out.dtype).eps / 4  # largest float below 0.5
        offset = torch.clamp(0.5 * torch.tanh(out[:, 1]), min=-0.5, max=o_max)  # (B, N, T)
        return velocity, offset


class UNetLoss(NamedTuple):
    """``loss = mse_velocity + mse_offset``; all three are 0-d tensors."""

    loss: Tensor
    mse_velocity: Tensor
    mse_offset: Tensor


def unet_loss(
    pred_v: Tensor, pred_o: Tensor, target_v: Tensor, target_o: Tensor, hits_mask: Tensor, *, hit_cells_only: bool
) -> UNetLoss:
    """MSE of velocities and offsets, over all cells or over hit cells only.

    With ``hit_cells_only`` the means run over the cells where ``hits_mask`` is set (a batch without
    hits gives 0, not NaN); otherwise over all cells (the targets are 0 at non-hit cells).
    Shape: all inputs (B, 9, T) -> UNetLoss of 0-d tensors.
    """
    for name, t in (("pred_o", pred_o), ("target_v", target_v), ("target_o", target_o), ("hits_mask", hits_mask)):
        if t.shape != pred_v.shape:
            raise ValueError(f"{name} has shape {tuple(t.shape)}, expected {tuple(pred_v.shape)} like pred_v")
    err_v = (pred_v - target_v) ** 2  # (B, N, T)
    err_o = (pred_o - target_o) ** 2
    if hit_cells_only:
        mask = (hits_mask > 0).to(err_v.dtype)  # (B, N, T)
        count = mask.sum().clamp(min=1.0)
        mse_v = (err_v * mask).sum() / count
        mse_o = (err_o * mask).sum() / count
    else:
        mse_v = err_v.mean()
        mse_o = err_o.mean()
    return UNetLoss(mse_v + mse_o, mse_v, mse_o)
