"""Beat network of Video2Rhythm: ST-GCN encoder + transformer with relative attention and a self-similarity bias.

The paper's model (Methods, "Music Beats Prediction"; Table 1): the per-joint features of
``beat_features`` go through a 10-layer ST-GCN on the COCO-17 graph of ``skeleton``; the node
features are averaged to one vector per frame (P, ``(B, T, C)``); a 2-layer, 2-head transformer
encoder whose attention logits get Shaw et al. (2018) relative-position terms and the convolved
self-similarity matrix of P reads them; two linear heads give a beat logit and a downbeat logit per
frame, trained with weighted binary cross-entropy (:func:`beat_loss`).

Every component is switchable (:class:`BeatNetConfig`, :data:`ABLATION_ROWS`) so that the ablation
rows of Table 1 are the same code:

* ``use_stgcn=False`` ("TF only"): a linear embedding of the frame's flattened joint features
  replaces the ST-GCN.
* ``use_transformer=False`` ("ST-GCN only"): the heads read P directly.
* ``use_rel_attn=False``: sinusoidal absolute positions are added to the transformer input instead
  (the "common positional sinusoids" the paper compares against), and there are no relative terms.
* ``use_ssm=False``: no self-similarity bias.

Decisions where the paper is open (figures measured on the 2-core development CPU, see the report of
issue 5 for the numbers at the default widths):

* **ST-GCN**: the standard block (graph conv over the 3-partition adjacency, registered as a buffer,
  times a learnable per-layer edge importance; BN, ReLU; temporal conv of ``temporal_kernel`` = 9
  frames, stride 1; BN; residual (linear + BN when the width changes, none in the first layer);
  ReLU), as in ST-GCN, plus ST-GCN's input batch norm over (joint, channel). No dropout inside the
  ST-GCN (its Bernoulli masks were 10 % of a CPU training step; the training data are generated
  on the fly). Widths are small (16 x 10 layers, 40 k parameters): the ST-GCN runs on 17 nodes per
  frame, so it costs ~17x more compute per parameter than the transformer, and it was 60 % of a
  training step at these widths; most parameters are in the transformer (d_model 128, d_ff 256).
* **Relative attention** (Shaw et al.): per layer, learned key and value vectors ``a^K_d``, ``a^V_d``
  of the head size for each clipped distance ``d = clip(j - i, -rel_clip, rel_clip)``, shared by the
  heads as in Shaw's paper. ``e_ij = q_i . (k_j + a^K_d)``, ``z_i = sum_j alpha_ij (v_j + a^V_d)``.
* **Self-similarity matrix**: from the transformer input E (B, T, D) (before positions), layer-normed
  without affine (Z); ``S_ij = softmax_j(-gamma * ||Z_i - Z_j||^2 / D)`` over the keys row i may see
  (every valid frame offline; ``i - W < j <= i`` causal), with a learnable ``gamma`` (init 1; the
  squared distance of layer-normed vectors lies in [0, 4 D]). Each row is multiplied by its number
  of keys ``n_i``, so a uniform row is 1 whatever the window length (a fixed rescale; for a fixed
  window it is a reparametrisation of the conv weights). One ``ssm_kernel`` x ``ssm_kernel`` (5 x 5)
  convolution, one channel in and out, without bias (a per-row constant would not change the
  softmax), gives S-hat: symmetric zero padding offline; causal padding (top and left only) in the
  causal model, so S-hat_ij reads rows i-k+1..i and columns j-k+1..j only. Rows of padded frames are zero. S-hat is
  computed once and added to the logits of **every head of every layer**, **inside** the
  1/sqrt(Dh) scaling, as the paper's formula writes: ``softmax((Q K^T + S-hat + R) / sqrt(Dh))``.
* **Heads**: one ``Linear(width, 2)`` after the final LayerNorm: channel 0 beat, channel 1 downbeat.
* **Transformer**: pre-LayerNorm blocks (attention, then a GELU feed-forward of ``d_ff``), dropout on
  the input embedding and each residual branch (not on the attention weights: cost, as above).

Causal model (``causal=True``): temporal convolutions pad on the left only; attention is causal and
limited to the last ``window`` frames (``i - W < j <= i``) in training too; the SSM softmax runs only
over those frames and its conv is causal. Its receptive field is finite
(:meth:`BeatNet.receptive_field`), so a long sequence can be processed in overlapping pieces exactly
(:meth:`BeatNetStream.process_offline`).

Streaming (:meth:`BeatNet.step`, :class:`BeatNetStream`): one frame in, its beat/downbeat logits
out, with the state in :class:`BeatNetState` (static shapes, shifted buffers, no Python branch on
tensor values, so it mirrors a future ONNX step graph): per ST-GCN layer the last ``k-1`` inputs of
its temporal conv, per transformer layer the keys and values of the last W frames, and for the SSM
the last W layer-normed frame vectors and the last ``ssm_kernel - 1`` rows of S. A step costs
O(W * D) per layer, not O(W^2).

Masks: ``forward(x, mask)`` takes ``mask`` (B, T), True for real frames. Padded frames are zeroed at
the input of every temporal conv and excluded as keys of attention and the SSM, so the outputs on the
real frames equal those of the unpadded sequence (padding must be at the end). Batch-norm statistics
in training mode still include padded frames.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Literal, NamedTuple, cast

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rhythmicnet.models.beat_features import FEATURE_CHANNELS, check_feature_batch
from rhythmicnet.models.config import config_from_dict
from rhythmicnet.models.skeleton import NUM_JOINTS, spatial_partition

__all__ = [
    "ABLATION_ROWS",
    "BEAT_POS_WEIGHT",
    "DOWNBEAT_POS_WEIGHT",
    "BeatLoss",
    "BeatNet",
    "BeatNetConfig",
    "BeatNetOutput",
    "BeatNetState",
    "BeatNetStream",
    "BeatProbabilities",
    "BeatStepOutput",
    "GraphConv",
    "ablation_config",
    "beat_loss",
]

#: Switch settings of each ablation row of the paper's Table 1 (the TCN baseline is ``tcn_beat``).
ABLATION_ROWS: dict[str, dict[str, bool]] = {
    "tf": dict(use_stgcn=False, use_transformer=True, use_ssm=False, use_rel_attn=False),
    "stgcn": dict(use_stgcn=True, use_transformer=False, use_ssm=False, use_rel_attn=False),
    "stgcn_tf": dict(use_stgcn=True, use_transformer=True, use_ssm=False, use_rel_attn=False),
    "stgcn_tf_ssm": dict(use_stgcn=True, use_transformer=True, use_ssm=True, use_rel_attn=False),
    "stgcn_tf_relattn": dict(use_stgcn=True, use_transformer=True, use_ssm=False, use_rel_attn=True),
    "full": dict(use_stgcn=True, use_transformer=True, use_ssm=True, use_rel_attn=True),
}

#: Default positive-class weights of :func:`beat_loss`, about negatives/positives at 120 BPM (the
#: middle of the 60-180 BPM training range; AIST++ music is 80-135): a beat every 15 frames at
#: 30 fps, widened to +-1 frame, makes 3 positive frames in 15 (ratio 4); downbeats (4/4) 3 in 60
#: (ratio 19). Over a uniform 60-180 BPM mix the mean positive fraction is the one at 120 BPM.
BEAT_POS_WEIGHT = 4.0
DOWNBEAT_POS_WEIGHT = 19.0


@dataclass(frozen=True)
class BeatNetConfig:
    """Hyper-parameters of :class:`BeatNet` (saved with the weights, rebuilt by ``from_dict``)."""

    #: Channels per joint of the input features (``beat_features.FEATURE_CHANNELS``).
    in_channels: int = FEATURE_CHANNELS
    #: Output width of each ST-GCN layer (10 layers in the paper).
    stgcn_channels: tuple[int, ...] = (16,) * 10
    #: Frames of each ST-GCN temporal convolution (odd; ST-GCN's 9).
    temporal_kernel: int = 9
    d_model: int = 128
    n_layers: int = 2
    n_heads: int = 2
    d_ff: int = 256
    #: Relative distances beyond this (frames) share one key/value vector; >= 64 frames (2 beats at
    #: 60 BPM at 30 fps) so the attention can represent a beat period.
    rel_clip: int = 96
    #: Side of the square conv kernel on the self-similarity matrix (odd).
    ssm_kernel: int = 5
    use_stgcn: bool = True
    use_transformer: bool = True
    use_ssm: bool = True
    use_rel_attn: bool = True
    #: Causal convs and attention over the last ``window`` frames (the live model).
    causal: bool = False
    #: Attention window of the causal model, frames (6 s at 30 fps). Ignored when ``causal`` is False
    #: (the offline model attends to the whole input it is given).
    window: int = 180
    #: Frames the causal model's output lags its input: the logit it gives at frame t is the beat
    #: activation of frame t - output_delay, so the network sees that many frames after the frame it
    #: scores (0: strictly causal; only with ``causal``; consumers realign with :func:`align_output`).
    output_delay: int = 0
    dropout: float = 0.1

    def __post_init__(self) -> None:
        channels = self.stgcn_channels
        if isinstance(channels, list):  # from JSON
            object.__setattr__(self, "stgcn_channels", tuple(channels))
            channels = self.stgcn_channels
        if not isinstance(channels, tuple) or not channels or not all(_is_pos_int(c) for c in channels):
            raise ValueError(f"stgcn_channels must be a non-empty tuple of positive ints, got {channels!r}")
        for name in ("in_channels", "temporal_kernel", "d_model", "n_layers", "n_heads", "d_ff", "rel_clip",
                     "ssm_kernel", "window"):
            value = getattr(self, name)
            if not _is_pos_int(value):
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        for name in ("temporal_kernel", "ssm_kernel"):
            if getattr(self, name) % 2 != 1:
                raise ValueError(f"{name} must be odd, got {getattr(self, name)}")
        if self.d_model % self.n_heads != 0:
            raise ValueError(f"d_model ({self.d_model}) must be a multiple of n_heads ({self.n_heads})")
        for name in ("use_stgcn", "use_transformer", "use_ssm", "use_rel_attn", "causal"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be a bool, got {getattr(self, name)!r}")
        if not (self.use_stgcn or self.use_transformer):
            raise ValueError("at least one of use_stgcn and use_transformer must be True")
        if not self.use_transformer and (self.use_ssm or self.use_rel_attn):
            raise ValueError("use_ssm and use_rel_attn need use_transformer=True")
        if not isinstance(self.output_delay, int) or isinstance(self.output_delay, bool) or self.output_delay < 0:
            raise ValueError(f"output_delay must be an int >= 0, got {self.output_delay!r}")
        if self.output_delay and not self.causal:
            raise ValueError("output_delay is for the causal model (the offline model sees the whole clip)")
        if not 0.0 <= float(self.dropout) < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout!r}")

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    @property
    def frame_width(self) -> int:
        """Width of the per-frame vector the heads read: d_model, or the last ST-GCN width."""
        return self.d_model if self.use_transformer else self.stgcn_channels[-1]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["stgcn_channels"] = list(self.stgcn_channels)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BeatNetConfig:
        """Rebuild from :meth:`to_dict`; unknown keys raise ``ValueError`` (missing ones take defaults)."""
        return config_from_dict(cls, data)


def _is_pos_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def ablation_config(row: str, **overrides: Any) -> BeatNetConfig:
    """The config of one ablation row (:data:`ABLATION_ROWS`), e.g. ``ablation_config("full", causal=True)``."""
    if row not in ABLATION_ROWS:
        raise ValueError(f"unknown ablation row {row!r}; valid rows: {sorted(ABLATION_ROWS)}")
    clash = sorted(set(overrides) & set(ABLATION_ROWS[row]))
    if clash:
        raise ValueError(f"{clash} are fixed by the ablation row {row!r}")
    params: dict[str, Any] = {**ABLATION_ROWS[row], **overrides}
    return BeatNetConfig(**params)


class BeatNetOutput(NamedTuple):
    """Per-frame logits. Shape: beat_logits (B, T), downbeat_logits (B, T) ((B,) from ``step``)."""

    beat_logits: Tensor
    downbeat_logits: Tensor


@dataclass(frozen=True)
class BeatNetState:
    """Streaming state of the causal :class:`BeatNet` between two :meth:`BeatNet.step` calls.

    Never changed in place; fields in the order of the future ONNX step graph's state inputs/outputs.
    A part the config switches off has a zero-size tensor.

    Shape:
        conv_buffer: (B, temporal_kernel - 1, 17, sum(stgcn_channels)) the last k-1 inputs of every
            ST-GCN temporal conv (oldest first), the layers' channels concatenated on the last axis.
        keys, values: (L, B, H, W, Dh) per transformer layer, the keys/values of the last W frames
            (oldest first; slots before the first frame are zeros and masked).
        ssm_vectors: (B, W, D) the layer-normed transformer inputs of the last W frames.
        ssm_rows: (B, ssm_kernel - 1, W + ssm_kernel - 1) the last k-1 rows of the (row-count scaled)
            self-similarity matrix, oldest first, column c = frame ``t - (W + k - 2) + c``.
        length: () int64 frames already fed (the absolute index of the next frame).
    """

    conv_buffer: Tensor
    keys: Tensor
    values: Tensor
    ssm_vectors: Tensor
    ssm_rows: Tensor
    length: Tensor


class BeatStepOutput(NamedTuple):
    """One streaming step: logits of the new frame (each (B,)) and the new state."""

    output: BeatNetOutput
    state: BeatNetState


# ----------------------------------------------------------------------------------- ST-GCN
def _logical(x: Tensor) -> Tensor:
    """Frame-major (B, T, V, C) storage seen as the (B, C, T, V) of conv/BN layers (channels-last strides)."""
    return x.permute(0, 3, 1, 2)


def _physical(x: Tensor) -> Tensor:
    """Inverse of :func:`_logical`: (B, C, T, V) -> (B, T, V, C)."""
    return x.permute(0, 2, 3, 1)


class GraphConv(nn.Module):
    """Spatial graph convolution over a partitioned adjacency (ST-GCN's ``ConvTemporalGraphical``, 1 frame).

    ``out[i, o] = sum_k sum_j sum_c W[o, k, c] x[j, c] A[k, j, i] + b[o]`` (``A[k, j, i]`` weighs
    source joint j into output joint i, the convention of ``skeleton.spatial_partition``): the joints
    are first aggregated by each partition (one matrix product, rows ``(i, k)``), then one linear
    layer mixes the K * C_in aggregated channels.

    Shape: x (B, T, V, C_in), adjacency (K, V, V) -> (B, T, V, C_out).
    """

    def __init__(self, in_channels: int, out_channels: int, partitions: int) -> None:
        super().__init__()
        self.partitions = partitions
        self.linear = nn.Linear(partitions * in_channels, out_channels)

    def forward(self, x: Tensor, adjacency: Tensor) -> Tensor:
        k, v, _ = adjacency.shape
        b, t, _, c = x.shape
        gather = adjacency.permute(2, 0, 1).reshape(v * k, v)  # (V_i*K, V_j): row i*K + k is A[k, :, i]
        agg = torch.matmul(gather, x)  # (B, T, V*K, C_in): row (i, k) = sum_j A[k, j, i] x[j]
        return self.linear(agg.reshape(b, t, v, k * c))  # (B, T, V, C_out)


class _Projection(nn.Module):
    """Residual path of an ST-GCN layer that changes width: linear + BN. Shape: (B, T, V, C_in) -> (B, C_out, T, V)."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.linear = nn.Linear(c_in, c_out)
        self.bn = nn.BatchNorm2d(c_out)

    def forward(self, x: Tensor) -> Tensor:
        return self.bn(_logical(self.linear(x)))


class _STGCNBlock(nn.Module):
    """One ST-GCN layer, stride 1 in time. Shape: (B, T, V, C_in) -> (B, T, V, C_out).

    Activations are stored frame-major and channels-last (B, T, V, C); the conv and BN layers see them
    as (B, C, T, V) in channels-last memory format, about 2x faster on a CPU than contiguous NCHW at
    these widths (the layout does not change the maths).
    """

    def __init__(self, c_in: int, c_out: int, config: BeatNetConfig, *, residual: bool) -> None:
        super().__init__()
        k = config.temporal_kernel
        self.gcn = GraphConv(c_in, c_out, 3)
        self.edge_importance = nn.Parameter(torch.ones(3, NUM_JOINTS, NUM_JOINTS))
        self.bn_gcn = nn.BatchNorm2d(c_out)
        self.tconv = nn.Conv2d(c_out, c_out, kernel_size=(k, 1))  # padded by hand: causal or centred
        self.bn_tconv = nn.BatchNorm2d(c_out)
        self.pad = (k - 1, 0) if config.causal else ((k - 1) // 2, (k - 1) // 2)  # (left, right) frames
        self.has_residual = residual
        self.projection = _Projection(c_in, c_out) if residual and c_in != c_out else None

    def _spatial(self, x: Tensor, adjacency: Tensor) -> Tensor:
        """Graph conv, BN, ReLU: pointwise in time. Shape: (B, T, V, C_in) -> (B, C_out, T, V)."""
        return F.relu(self.bn_gcn(_logical(self.gcn(x, adjacency * self.edge_importance))))

    def _finish(self, x: Tensor, y: Tensor) -> Tensor:
        """BN of the temporal conv output y (B, C, T, V), residual of x (B, T, V, C_in), ReLU -> (B, T, V, C)."""
        y = self.bn_tconv(y)
        if self.projection is not None:
            y = y + self.projection(x)
        elif self.has_residual:
            y = y + _logical(x)
        return _physical(F.relu(y))

    def forward(self, x: Tensor, adjacency: Tensor, frame_mask: Tensor | None) -> Tensor:
        """Shape: x (B, T, V, C_in), frame_mask (B, 1, T, 1) float or None -> (B, T, V, C_out)."""
        g = self._spatial(x, adjacency)  # (B, C, T, V)
        if frame_mask is not None:
            g = g * frame_mask  # padded frames look like the conv's zero padding
        g = F.pad(g, (0, 0, self.pad[0], self.pad[1]))  # (B, C, T + k - 1, V)
        return self._finish(x, self.tconv(g))

    def step(self, x: Tensor, adjacency: Tensor, buffer: Tensor) -> tuple[Tensor, Tensor]:
        """One frame of the causal layer. Shape: x (B, 1, V, C_in), buffer (B, k-1, V, C_out) -> out, buffer."""
        g = _physical(self._spatial(x, adjacency))  # (B, 1, V, C)
        window = torch.cat([buffer, g], dim=1)  # (B, k, V, C): frames t-k+1 .. t
        return self._finish(x, self.tconv(_logical(window))), window[:, 1:]


# ------------------------------------------------------------------------------ transformer
def sinusoidal_positions(positions: Tensor, dim: int) -> Tensor:
    """Transformer sinusoids of absolute frame indices. Shape: (T,) any numeric -> (T, dim) float32."""
    half = dim // 2
    freq = torch.exp(-math.log(10000.0) * torch.arange(half, device=positions.device, dtype=torch.float32) / half)
    angle = positions.to(torch.float32)[:, None] * freq[None, :]  # (T, half)
    pe = torch.zeros(positions.shape[0], dim, device=positions.device)
    pe[:, 0 : 2 * half : 2] = torch.sin(angle)
    pe[:, 1 : 2 * half : 2] = torch.cos(angle)
    return pe  # (T, dim)


class _SelfSimilarity(nn.Module):
    """Self-similarity bias S-hat of the attention logits (see the module docstring).

    Shape: whole sequence: vectors (B, T, D), allowed (B, 1, T, T) bool -> (B, 1, T, T);
    step: see :meth:`step`.
    """

    def __init__(self, config: BeatNetConfig) -> None:
        super().__init__()
        self.kernel = config.ssm_kernel
        self.causal = config.causal
        self.weight = nn.Parameter(torch.empty(config.ssm_kernel, config.ssm_kernel))  # (k, k)
        nn.init.uniform_(self.weight, -1.0 / config.ssm_kernel, 1.0 / config.ssm_kernel)  # Conv2d's default bound
        self.log_gamma = nn.Parameter(torch.zeros(()))

    @staticmethod
    def normalise(vectors: Tensor) -> Tensor:
        return F.layer_norm(vectors, vectors.shape[-1:])  # (..., D)

    def _logits(self, z_query: Tensor, z_key: Tensor) -> Tensor:
        """-gamma ||z_i - z_j||^2 / D. Shape: (B, Tq, D), (B, Tk, D) -> (B, Tq, Tk)."""
        d = z_query.shape[-1]
        sq_q = (z_query * z_query).sum(-1, keepdim=True)  # (B, Tq, 1)
        sq_k = (z_key * z_key).sum(-1).unsqueeze(-2)  # (B, 1, Tk)
        dist = (sq_q + sq_k - 2.0 * torch.matmul(z_query, z_key.transpose(-2, -1))).clamp_min(0.0)  # (B, Tq, Tk)
        return -torch.exp(self.log_gamma) * dist / d

    def _conv(self, padded: Tensor) -> Tensor:
        """The k x k convolution without padding (cross-correlation, like ``Conv2d``). The batch rows
        are the groups of one depthwise convolution with a shared kernel: on one channel that is
        ~10x faster on a CPU than a batched ``Conv2d(1, 1, k)`` and its backward.
        Shape: (B, R + k - 1, C + k - 1) -> (B, R, C)."""
        b, k = padded.shape[0], self.kernel
        weight = self.weight.view(1, 1, k, k).expand(b, 1, k, k)  # the same kernel for every batch row
        return F.conv2d(padded.unsqueeze(0), weight, groups=b)[0]  # (B, R, C)

    @staticmethod
    def _rows(logits: Tensor, allowed: Tensor) -> Tensor:
        """Row softmax over the allowed keys, times the row's key count; 0 elsewhere. Shape kept."""
        logits = logits.masked_fill(~allowed, torch.finfo(logits.dtype).min)
        count = allowed.sum(-1, keepdim=True).to(logits.dtype)  # (..., 1)
        return torch.softmax(logits, dim=-1) * count * allowed

    def forward(self, vectors: Tensor, allowed: Tensor) -> Tensor:
        z = self.normalise(vectors)  # (B, T, D)
        s = self._rows(self._logits(z, z), allowed[:, 0])  # (B, T, T)
        k = self.kernel
        pad = (k - 1, 0, k - 1, 0) if self.causal else ((k - 1) // 2,) * 4  # (left, right, top, bottom)
        return self._conv(F.pad(s, pad)).unsqueeze(1)  # (B, 1, T, T)

    def step(self, vector: Tensor, z_cache: Tensor, rows: Tensor, valid: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """One new frame (causal model). Shape: vector (B, 1, D), z_cache (B, W, D), rows (B, k-1, W+k-1),
        valid (W,) bool -> bias (B, 1, 1, W), z_cache, rows."""
        b = vector.shape[0]
        z_cache = torch.cat([z_cache[:, 1:], self.normalise(vector)], dim=1)  # (B, W, D), oldest first
        row = self._rows(self._logits(z_cache[:, -1:], z_cache), valid.view(1, 1, -1))  # (B, 1, W)
        k = self.kernel
        old = torch.cat([rows[:, :, 1:], rows.new_zeros(b, k - 1, 1)], dim=2)  # (B, k-1, W+k-1): one frame on
        new = torch.cat([row.new_zeros(b, 1, k - 1), row], dim=2)  # (B, 1, W+k-1)
        stack = torch.cat([old, new], dim=1)  # (B, k, W+k-1): rows t-k+1 .. t
        bias = self._conv(stack).unsqueeze(1)  # (B, 1, 1, W)
        return bias, z_cache, stack[:, 1:]


class _RelativeAttention(nn.Module):
    """Multi-head self-attention with Shaw relative terms and an additive logit bias.

    Shape: whole sequence: x (B, T, D), allowed (B, 1, T, T) bool, rel_index (T, T) int64,
    bias (B, 1, T, T) or None -> (B, T, D).
    """

    def __init__(self, config: BeatNetConfig) -> None:
        super().__init__()
        self.n_heads = config.n_heads
        self.head_dim = config.head_dim
        d = config.d_model
        self.qkv = nn.Linear(d, 3 * d)
        self.out_proj = nn.Linear(d, d)
        self.rel_key: nn.Parameter | None = None
        self.rel_value: nn.Parameter | None = None
        if config.use_rel_attn:
            n_dist = 2 * config.rel_clip + 1
            self.rel_key = nn.Parameter(torch.randn(n_dist, config.head_dim) * 0.02)  # (2c+1, Dh)
            self.rel_value = nn.Parameter(torch.randn(n_dist, config.head_dim) * 0.02)

    def _split(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        b, t, _ = x.shape
        qkv = self.qkv(x).view(b, t, 3, self.n_heads, self.head_dim).permute(2, 0, 3, 1, 4)  # (3, B, H, T, Dh)
        return qkv[0], qkv[1], qkv[2]

    def _merge(self, out: Tensor) -> Tensor:
        b, _, t, _ = out.shape
        return self.out_proj(out.transpose(1, 2).reshape(b, t, self.n_heads * self.head_dim))  # (B, T, D)

    def _weights(self, logits: Tensor, allowed: Tensor) -> Tensor:
        logits = logits / math.sqrt(self.head_dim)
        logits = logits.masked_fill(~allowed, torch.finfo(logits.dtype).min)
        return torch.softmax(logits, dim=-1)

    def forward(self, x: Tensor, allowed: Tensor, rel_index: Tensor, bias: Tensor | None) -> Tensor:
        q, k, v = self._split(x)  # (B, H, T, Dh)
        logits = torch.matmul(q, k.transpose(-2, -1))  # (B, H, T, T)
        index = rel_index.expand(*q.shape[:2], *rel_index.shape)  # (B, H, T, T) index into 2c+1 distances
        if self.rel_key is not None:
            per_dist = torch.matmul(q, self.rel_key.t())  # (B, H, T, 2c+1): q_i . a^K_d
            logits = logits + torch.gather(per_dist, -1, index)  # (B, H, T, T): q_i . a^K_clip(j-i)
        if bias is not None:
            logits = logits + bias
        weights = self._weights(logits, allowed)  # (B, H, T, T)
        out = torch.matmul(weights, v)  # (B, H, T, Dh)
        if self.rel_value is not None:
            per_dist_w = weights.new_zeros(*weights.shape[:3], self.rel_value.shape[0])  # (B, H, T, 2c+1)
            per_dist_w = per_dist_w.scatter_add(-1, index, weights)  # attention mass per clipped distance
            out = out + torch.matmul(per_dist_w, self.rel_value)  # (B, H, T, Dh)
        return self._merge(out)

    def step(
        self, x: Tensor, keys: Tensor, values: Tensor, valid: Tensor, rel_index: Tensor, bias: Tensor | None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """One query against the cached window. Shape: x (B, 1, D), keys/values (B, H, W, Dh), valid (W,) bool,
        rel_index (W,) int64, bias (B, 1, 1, W) or None -> out (B, 1, D), keys, values."""
        q, k_new, v_new = self._split(x)  # (B, H, 1, Dh)
        keys = torch.cat([keys[:, :, 1:], k_new], dim=2)  # (B, H, W, Dh): frames t-W+1 .. t
        values = torch.cat([values[:, :, 1:], v_new], dim=2)
        logits = torch.matmul(q, keys.transpose(-2, -1))  # (B, H, 1, W)
        if self.rel_key is not None:
            logits = logits + torch.matmul(q, self.rel_key.index_select(0, rel_index).t())  # (B, H, 1, W)
        if bias is not None:
            logits = logits + bias
        weights = self._weights(logits, valid.view(1, 1, 1, -1))  # (B, H, 1, W)
        out = torch.matmul(weights, values)  # (B, H, 1, Dh)
        if self.rel_value is not None:
            out = out + torch.matmul(weights, self.rel_value.index_select(0, rel_index))  # (B, H, 1, Dh)
        return self._merge(out), keys, values


class _EncoderLayer(nn.Module):
    def __init__(self, config: BeatNetConfig) -> None:
        super().__init__()
        d = config.d_model
        self.ln_attn = nn.LayerNorm(d)
        self.attn = _RelativeAttention(config)
        self.ln_ff = nn.LayerNorm(d)
        self.ff = nn.Sequential(nn.Linear(d, config.d_ff), nn.GELU(), nn.Linear(config.d_ff, d))
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: Tensor, allowed: Tensor, rel_index: Tensor, bias: Tensor | None) -> Tensor:
        x = x + self.dropout(self.attn(self.ln_attn(x), allowed, rel_index, bias))
        return x + self.dropout(self.ff(self.ln_ff(x)))  # (B, T, D)

    def step(
        self, x: Tensor, keys: Tensor, values: Tensor, valid: Tensor, rel_index: Tensor, bias: Tensor | None
    ) -> tuple[Tensor, Tensor, Tensor]:
        a, keys, values = self.attn.step(self.ln_attn(x), keys, values, valid, rel_index, bias)
        x = x + self.dropout(a)
        return x + self.dropout(self.ff(self.ln_ff(x))), keys, values


# ------------------------------------------------------------------------------------- model
class BeatNet(nn.Module):
    """Beat and downbeat logits per frame from per-joint features.

    Shape:
        forward(x (B, T, 17, C_in), mask (B, T) bool or None, *, offset=0) -> BeatNetOutput, each (B, T).
        ``offset`` is the absolute index of frame 0 (only the sinusoidal positions of the
        ``use_rel_attn=False`` rows depend on it).
        init_state(batch) -> BeatNetState; step(x (B, 17, C_in), state) -> BeatStepOutput (causal model,
        eval mode).
    """

    def __init__(self, config: BeatNetConfig) -> None:
        super().__init__()
        self.config = config
        c_in = config.in_channels
        self.input_norm = nn.BatchNorm1d(NUM_JOINTS * c_in)
        self.adjacency: Tensor
        self.register_buffer("adjacency", torch.from_numpy(spatial_partition()))  # (3, V, V)
        self.blocks = nn.ModuleList()
        self.embed: nn.Linear | None = None
        if config.use_stgcn:
            widths = (c_in, *config.stgcn_channels)
            for i in range(len(config.stgcn_channels)):
                self.blocks.append(_STGCNBlock(widths[i], widths[i + 1], config, residual=i > 0))
            if config.use_transformer:
                self.embed = nn.Linear(config.stgcn_channels[-1], config.d_model)
        else:
            self.embed = nn.Linear(NUM_JOINTS * c_in, config.d_model)
        self.embed_dropout = nn.Dropout(config.dropout)
        self.ssm = _SelfSimilarity(config) if config.use_ssm else None
        n_layers = config.n_layers if config.use_transformer else 0
        self.layers = nn.ModuleList(_EncoderLayer(config) for _ in range(n_layers))
        self.final_norm = nn.LayerNorm(config.frame_width)
        self.head = nn.Linear(config.frame_width, 2)  # channel 0 beat, 1 downbeat
        w = config.window
        slot = torch.arange(w)
        self.step_rel_index: Tensor  # (W,): clipped distance index of cache slot s (frame t - W + 1 + s)
        self.register_buffer("step_rel_index", (slot - (w - 1)).clamp(-config.rel_clip, config.rel_clip)
                             + config.rel_clip, persistent=False)
        self.slot_index: Tensor
        self.register_buffer("slot_index", slot, persistent=False)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def _stgcn(self) -> list[_STGCNBlock]:
        return [cast(_STGCNBlock, b) for b in self.blocks]

    def _encoder(self) -> list[_EncoderLayer]:
        return [cast(_EncoderLayer, layer) for layer in self.layers]

    def receptive_field(self) -> int:
        """Past frames that can influence the output of the causal model at a frame (an upper bound)."""
        cfg = self.config
        conv = (cfg.temporal_kernel - 1) * len(self.blocks)
        attn = len(self.layers) * (cfg.window + cfg.ssm_kernel - 2)
        return conv + attn

    # --------------------------------------------------------------------------- whole sequence
    def _normalise_input(self, x: Tensor) -> Tensor:
        """ST-GCN's input BN over (joint, channel). Shape: (B, T, V, C) -> (B, T, V, C)."""
        b, t, v, c = x.shape
        y = self.input_norm(x.reshape(b, t, v * c).transpose(1, 2))  # (B, V*C, T)
        return y.transpose(1, 2).reshape(b, t, v, c)

    def _allowed(self, t: int, mask: Tensor | None, device: torch.device) -> Tensor:
        """Which keys each query may see. Shape: -> (B or 1, 1, T, T) bool."""
        i = torch.arange(t, device=device)
        if self.config.causal:
            diff = i.view(-1, 1) - i.view(1, -1)  # (T, T): i - j
            allowed = (diff >= 0) & (diff < self.config.window)
        else:
            allowed = torch.ones(t, t, dtype=torch.bool, device=device)
        allowed = allowed.view(1, 1, t, t)
        if mask is not None:
            # Padded frames are neither keys nor queries (their SSM rows stay zero for the conv).
            allowed = allowed & mask.view(mask.shape[0], 1, 1, t) & mask.view(mask.shape[0], 1, t, 1)
        return allowed

    def forward(self, x: Tensor, mask: Tensor | None = None, *, offset: int = 0) -> BeatNetOutput:
        cfg = self.config
        b, t = check_feature_batch(x, mask, cfg.in_channels)
        if mask is not None:
            mask = mask.to(torch.bool)
        h = self._normalise_input(x)  # (B, T, V, C)
        if cfg.use_stgcn:
            g = h  # (B, T, V, C)
            frame_mask = None if mask is None else mask.view(b, 1, t, 1).to(g.dtype)
            for block in self._stgcn():
                g = block(g, self.adjacency, frame_mask)  # (B, T, V, C_l)
            feats = g.mean(dim=2)  # (B, T, C_last): node average, P
        else:
            feats = h.reshape(b, t, -1)  # (B, T, V*C)
        if cfg.use_transformer:
            assert self.embed is not None
            e = self.embed(feats)  # (B, T, D)
            allowed = self._allowed(t, mask, x.device)  # (B|1, 1, T, T)
            bias = self.ssm(e, allowed) if self.ssm is not None else None  # (B, 1, T, T)
            if not cfg.use_rel_attn:
                e = e + sinusoidal_positions(torch.arange(offset, offset + t, device=x.device), cfg.d_model)
            feats = self.embed_dropout(e)
            i = torch.arange(t, device=x.device)
            rel_index = (i.view(1, -1) - i.view(-1, 1)).clamp(-cfg.rel_clip, cfg.rel_clip) + cfg.rel_clip  # (T, T)
            for layer in self._encoder():
                feats = layer(feats, allowed, rel_index, bias)  # (B, T, D)
        logits = self.head(self.final_norm(feats))  # (B, T, 2)
        return BeatNetOutput(logits[..., 0], logits[..., 1])

    # -------------------------------------------------------------------------------- streaming
    def init_state(self, batch: int = 1) -> BeatNetState:
        """Empty streaming state (nothing seen yet)."""
        cfg = self.config
        p = self.adjacency
        conv_ch = sum(cfg.stgcn_channels) if cfg.use_stgcn else 0
        n_layers = len(self.layers)
        w, k = cfg.window, cfg.ssm_kernel
        ssm_on = self.ssm is not None

        def zeros(*shape: int) -> Tensor:
            return torch.zeros(shape, dtype=p.dtype, device=p.device)

        return BeatNetState(
            conv_buffer=zeros(batch, cfg.temporal_kernel - 1, NUM_JOINTS, conv_ch),
            keys=zeros(n_layers, batch, cfg.n_heads, w, cfg.head_dim),
            values=zeros(n_layers, batch, cfg.n_heads, w, cfg.head_dim),
            ssm_vectors=zeros(batch, w if ssm_on else 0, cfg.d_model),
            ssm_rows=zeros(batch, k - 1 if ssm_on else 0, w + k - 1),
            length=torch.zeros((), dtype=torch.long, device=p.device),
        )

    def step(self, x: Tensor, state: BeatNetState) -> BeatStepOutput:
        """Feed frame ``state.length`` of the causal model (eval mode); get its logits.

        Static shapes and no Python branch on tensor values (exportable). The input state is not
        modified. Shape: x (B, 17, C_in), state :class:`BeatNetState` -> logits (B,) each, new state.
        """
        cfg = self.config
        if not cfg.causal:
            raise ValueError("step needs a causal model (BeatNetConfig.causal=True)")
        b = x.shape[0]
        h = self._normalise_input(x.unsqueeze(1))  # (B, 1, V, C)
        conv_buffer = state.conv_buffer
        if cfg.use_stgcn:
            g = h  # (B, 1, V, C)
            buffers = torch.split(state.conv_buffer, list(cfg.stgcn_channels), dim=-1)
            new_buffers = []
            for block, buf in zip(self._stgcn(), buffers, strict=True):
                g, buf = block.step(g, self.adjacency, buf)  # (B, 1, V, C_l)
                new_buffers.append(buf)
            conv_buffer = torch.cat(new_buffers, dim=-1)
            feats = g.mean(dim=2)  # (B, 1, C_last)
        else:
            feats = h.reshape(b, 1, -1)  # (B, 1, V*C)
        keys, values = state.keys, state.values
        ssm_vectors, ssm_rows = state.ssm_vectors, state.ssm_rows
        if cfg.use_transformer:
            assert self.embed is not None
            e = self.embed(feats)  # (B, 1, D)
            valid = self.slot_index >= (cfg.window - 1) - state.length  # (W,): slot s holds frame t - W + 1 + s
            bias = None
            if self.ssm is not None:
                bias, ssm_vectors, ssm_rows = self.ssm.step(e, ssm_vectors, ssm_rows, valid)  # (B, 1, 1, W)
            if not cfg.use_rel_attn:
                e = e + sinusoidal_positions(state.length.reshape(1), cfg.d_model)
            feats = e
            new_k, new_v = [], []
            for i, layer in enumerate(self._encoder()):
                feats, k, v = layer.step(feats, keys[i], values[i], valid, self.step_rel_index, bias)
                new_k.append(k)
                new_v.append(v)
            keys, values = torch.stack(new_k), torch.stack(new_v)
        logits = self.head(self.final_norm(feats))[:, 0]  # (B, 2)
        new_state = BeatNetState(conv_buffer, keys, values, ssm_vectors, ssm_rows, state.length + 1)
        return BeatStepOutput(BeatNetOutput(logits[:, 0], logits[:, 1]), new_state)


# ------------------------------------------------------------------------------------- loss
class BeatLoss(NamedTuple):
    """total = beat + downbeat_weight * downbeat (scalars)."""

    total: Tensor
    beat: Tensor
    downbeat: Tensor


PosWeight = float | Literal["balanced"]


def _weighted_bce(logits: Tensor, targets: Tensor, valid: Tensor, pos_weight: PosWeight) -> Tensor:
    targets = targets.to(logits.dtype)
    if pos_weight == "balanced":
        with torch.no_grad():
            pos = (targets * valid).sum()
            neg = ((1.0 - targets) * valid).sum()
            weight = (neg / pos.clamp_min(1.0)).clamp(1.0, 100.0)
    elif isinstance(pos_weight, int | float) and not isinstance(pos_weight, bool) and pos_weight > 0:
        weight = torch.tensor(float(pos_weight), dtype=logits.dtype, device=logits.device)
    else:
        raise ValueError(f"pos_weight must be a positive number or 'balanced', got {pos_weight!r}")
    per_frame = F.binary_cross_entropy_with_logits(logits, targets, pos_weight=weight, reduction="none")  # (B, T)
    return (per_frame * valid).sum() / valid.sum().clamp_min(1.0)


def beat_loss(
    output: BeatNetOutput,
    beat_targets: Tensor,
    downbeat_targets: Tensor,
    mask: Tensor | None = None,
    *,
    beat_pos_weight: PosWeight = BEAT_POS_WEIGHT,
    downbeat_pos_weight: PosWeight = DOWNBEAT_POS_WEIGHT,
    downbeat_weight: float = 1.0,
) -> BeatLoss:
    """Weighted binary cross-entropy of both heads, mean over the valid frames.

    Targets are 0/1 (or soft in [0, 1]) per frame (beats widened to +-1 frame by the dataset). A
    ``pos_weight`` multiplies the loss of the positive frames: a number, or ``"balanced"`` for
    negatives/positives of this batch (clamped to [1, 100]).
    Shape: output logits (B, T), targets (B, T), mask (B, T) bool or None -> :class:`BeatLoss` of scalars.
    """
    logits = output.beat_logits
    if beat_targets.shape != logits.shape or downbeat_targets.shape != logits.shape:
        raise ValueError(
            f"targets must match the logits {tuple(logits.shape)}, got {tuple(beat_targets.shape)} "
            f"and {tuple(downbeat_targets.shape)}"
        )
    valid = torch.ones_like(logits) if mask is None else mask.to(logits.dtype)
    beat = _weighted_bce(logits, beat_targets, valid, beat_pos_weight)
    downbeat = _weighted_bce(output.downbeat_logits, downbeat_targets, valid, downbeat_pos_weight)
    return BeatLoss(beat + downbeat_weight * downbeat, beat, downbeat)


# -------------------------------------------------------------------------------- streaming
class BeatProbabilities(NamedTuple):
    """Per-frame probabilities. Shape: beat (N,), downbeat (N,) float32."""

    beat: np.ndarray
    downbeat: np.ndarray


class BeatNetStream:
    """The causal beat network as a live stage with cached state.

    Streaming contract: ``reset()``, ``process_online(features (17, C) | (N, 17, C)) ->
    BeatProbabilities`` for those frames (one beat-step graph call per frame, reusing the cached
    state), ``process_offline(features (T, 17, C))`` = the causal model's ``forward`` on the whole
    sequence (the window graph), in overlapping pieces of at most ``max_frames_per_pass`` frames (exact:
    each piece carries ``receptive_field()`` frames of context whose outputs are dropped). The model
    must be causal and in eval mode (batch norm uses its running statistics).

    ``graphs`` is the backend (:func:`~.graphs.torch_graph` by default, or ``export``'s ONNX factory):
    the stream calls :class:`~.step_graphs.BeatStepGraph` and :class:`~.step_graphs.BeatWindowGraph`
    through it, never the module. The state is the step graph's state outputs (backend handles).

    A torch step is ~500 small tensor operations: run it with ``torch.set_num_threads(1)`` (on a busy
    2-core machine two threads made it ~10x slower, each op waiting for a descheduled partner); the
    ONNX step graph runs on one thread without spinning.
    """

    def __init__(self, model: BeatNet, *, max_frames_per_pass: int = 2048, graphs: Any = None,
                 source: str = "beat_full_causal") -> None:
        if not model.config.causal:
            raise ValueError("BeatNetStream needs a causal model (BeatNetConfig.causal=True)")
        if max_frames_per_pass < 1:
            raise ValueError(f"max_frames_per_pass must be >= 1, got {max_frames_per_pass}")
        self.model = model
        self.max_frames_per_pass = max_frames_per_pass
        self._factory = graphs
        self._source = source
        self._step: Any = None
        self._window: Any = None
        self.reset()

    def _graphs(self) -> tuple[Any, Any]:
        """The step and window graphs, built on first use (after the eval-mode check)."""
        if self._step is None:
            from rhythmicnet.models.graphs import torch_graph
            from rhythmicnet.models.step_graphs import BeatStepGraph, BeatWindowGraph

            factory = self._factory or torch_graph
            self._step = factory(BeatStepGraph(self.model, self._source))
            can_window = self.model.config.use_rel_attn or not self.model.config.use_transformer
            self._window = factory(BeatWindowGraph(self.model, self._source)) if can_window else None
        return self._step, self._window

    def reset(self) -> None:
        s = self.model.init_state(1)
        self.state: dict[str, Any] = {f: getattr(s, f).cpu().numpy() for f in BEAT_STATE_FIELDS}

    def _check(self, features: np.ndarray | Tensor) -> np.ndarray:
        if self.model.training:
            raise RuntimeError("call model.eval() before streaming (batch norm must use running statistics)")
        x = np.asarray(features.cpu() if isinstance(features, Tensor) else features, dtype=np.float32)
        if x.ndim == 2:
            x = x[None]  # one frame
        want = (NUM_JOINTS, self.model.config.in_channels)
        if x.ndim != 3 or tuple(x.shape[1:]) != want:
            raise ValueError(f"features must be (N, {want[0]}, {want[1]}) or one frame, got {tuple(x.shape)}")
        return np.ascontiguousarray(x)

    @staticmethod
    def _probabilities(beat_logits: np.ndarray, downbeat_logits: np.ndarray) -> BeatProbabilities:
        """Shape: (N,), (N,) logits -> probabilities."""
        return BeatProbabilities(_sigmoid(beat_logits), _sigmoid(downbeat_logits))

    def process_online(self, features: np.ndarray | Tensor) -> BeatProbabilities:
        x = self._check(features)  # (N, 17, C)
        step, _ = self._graphs()
        beats, downbeats = np.empty(len(x), np.float32), np.empty(len(x), np.float32)
        state = self.state
        for i in range(len(x)):
            out = step.run({"x": x[i : i + 1], **state})
            state = {f: out[f"{f}_out"] for f in BEAT_STATE_FIELDS}
            beats[i] = out["beat_logit"][0]
            downbeats[i] = out["downbeat_logit"][0]
        self.state = state
        return self._probabilities(beats, downbeats)

    @torch.no_grad()
    def process_offline(self, features: np.ndarray | Tensor) -> BeatProbabilities:
        x = self._check(features)  # (T, 17, C)
        _, window = self._graphs()
        t = x.shape[0]
        context = self.model.receptive_field()
        step = self.max_frames_per_pass
        beat = np.empty(t, np.float32)
        downbeat = np.empty(t, np.float32)
        for start in range(0, t, step):
            stop = min(start + step, t)
            first = max(0, start - context)
            if window is not None:
                out = window.run({"features": x[None, first:stop]})
                b, d = out["beat_logits"], out["downbeat_logits"]
            else:  # absolute positions (an ablation row): the window's offset matters, torch only
                o = self.model(torch.from_numpy(x[None, first:stop]).to(self.model.adjacency.device), offset=first)
                b, d = o.beat_logits.cpu().numpy(), o.downbeat_logits.cpu().numpy()
            beat[start:stop] = b[0, start - first :]
            downbeat[start:stop] = d[0, start - first :]
        return self._probabilities(beat, downbeat)


def delay_targets(target: np.ndarray, delay: int) -> np.ndarray:
    """Per-frame targets as a model with ``output_delay = delay`` must output them: frame t carries
    frame t - delay's target (zeros before). Shape: (T,) -> (T,)."""
    if delay <= 0:
        return target
    out = np.zeros_like(target)
    out[delay:] = target[: len(target) - delay]
    return out


def align_output(values: np.ndarray, delay: int) -> np.ndarray:
    """A delayed model's per-frame outputs put back on the frames they score: frame t gets the output
    given at t + delay; the last ``delay`` frames, which the clip ended before scoring, get 0.
    The inverse of :func:`delay_targets` where both are defined. Shape: (T,) -> (T,)."""
    if delay <= 0:
        return values
    out = np.zeros_like(values)
    out[: len(values) - delay] = values[delay:]
    return out


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return (1.0 / (1.0 + np.exp(-np.asarray(x, dtype=np.float64)))).astype(np.float32)


#: Fields of :class:`BeatNetState` in the order of the step graph's state inputs/outputs.
BEAT_STATE_FIELDS = ("conv_buffer", "keys", "values", "ssm_vectors", "ssm_rows", "length")
