"""Transformer-XL building blocks (Dai et al. 2019) for Drum2Music: relative attention with segment memory.

A segment is one bar of tokens, padded to a fixed length. Each layer keeps a **memory**: its inputs
for the last ``mem_len`` real tokens of earlier segments (stop-gradient), which the next segment's
keys and values also read.

Decisions where the paper and Transformer-XL leave room:

* **Compact, right-aligned memory.** Bars are padded to a fixed length, but the memory keeps real
  tokens only: :func:`update_memory` drops the pads and right-aligns the last ``mem_len`` real tokens,
  so "memory = the last 256 tokens" means 256 *real* tokens (as in the paper) and relative distances
  count real tokens. Memory slot ``m`` sits at position ``m - mem_len`` before the segment's first
  token; unused slots are masked.
* **Relative scores** as Transformer-XL's: ``(q_i + u)·k_j + (q_i + v)·W_r·R(i - j)`` with sinusoidal
  ``R`` and learned global biases ``u``, ``v`` per head. The position term is computed once per
  distinct distance and gathered (no ``rel_shift`` trick), which also serves the encoder's
  bidirectional attention (negative distances) and the one-token incremental step.
* **Pre-LayerNorm** residual blocks (stable at this small scale without warm-up tricks).
* **No dropout on the attention weights** (dropout stays on the residual branches and the feed-forward):
  drawing a Bernoulli mask over every (query, key) pair of 256-token memories took a fifth of the
  CPU training step.
* Masked logits use a large finite negative, so a fully masked row (an all-pad segment of a song that
  ended) gives finite garbage instead of NaN; its positions carry no loss.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["RelativeSelfAttention", "CrossAttention", "FeedForward", "sinusoid", "update_memory", "key_positions"]

NEG = -1e9


def sinusoid(positions: Tensor, dim: int) -> Tensor:
    """Sinusoidal embedding of (possibly negative) positions: ``(N,)`` -> ``(N, dim)``."""
    half = dim // 2
    freq = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32, device=positions.device) / half)
    ang = positions.float()[:, None] * freq[None, :]
    return torch.cat([torch.sin(ang), torch.cos(ang)], dim=-1)


def key_positions(mem_len: int, seg_len: int, device: torch.device | None = None) -> Tensor:
    """Positions of the keys ``[memory slots, segment tokens]``: ``(mem_len + seg_len,)``."""
    return torch.arange(-mem_len, seg_len, device=device)


def update_memory(memory: Tensor, memory_valid: Tensor, hidden: Tensor, hidden_valid: Tensor,
                  mem_len: int) -> tuple[Tensor, Tensor]:
    """The last ``mem_len`` real tokens of ``[memory, hidden]``, right-aligned.

    Shapes: memory (B, M, D), memory_valid (B, M) bool, hidden (B, L, D), hidden_valid (B, L) bool.
    Returns (B, mem_len, D) and (B, mem_len) bool; pads are dropped, order kept.
    """
    b, _, d = hidden.shape
    cat = torch.cat([memory, hidden], dim=1)
    valid = torch.cat([memory_valid, hidden_valid], dim=1)
    # Count of real tokens at or after each position: a real token with count c goes to slot mem_len - c.
    after = valid.flip(1).long().cumsum(1).flip(1)
    slot = mem_len - after
    keep = valid & (slot >= 0)
    out = cat.new_zeros(b, mem_len + 1, d)
    out_valid = torch.zeros(b, mem_len + 1, dtype=torch.bool, device=cat.device)
    target = torch.where(keep, slot, torch.full_like(slot, mem_len))  # dropped tokens go to a spare slot
    out.scatter_(1, target[:, :, None].expand(-1, -1, d), cat)
    out_valid.scatter_(1, target, keep)
    return out[:, :mem_len], out_valid[:, :mem_len]


class RelativeSelfAttention(nn.Module):
    """Multi-head self-attention over ``[memory, segment]`` with Transformer-XL relative positions."""

    def __init__(self, d_model: int, n_heads: int) -> None:
        super().__init__()
        if d_model % n_heads:
            raise ValueError("d_model must be a multiple of n_heads")
        self.h, self.dh = n_heads, d_model // n_heads
        self.qkv = nn.Linear(d_model, 3 * d_model, bias=False)
        self.r_proj = nn.Linear(d_model, d_model, bias=False)
        self.out = nn.Linear(d_model, d_model, bias=False)
        self.u = nn.Parameter(torch.zeros(n_heads, self.dh))
        self.v = nn.Parameter(torch.zeros(n_heads, self.dh))
        self.scale = 1.0 / math.sqrt(self.dh)

    def project_kv(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Keys and values of inputs ``(B, N, D)`` -> two ``(B, H, N, dh)``."""
        _, k, v = self.qkv(x).split(x.shape[-1], dim=-1)
        return self._heads(k), self._heads(v)

    def _heads(self, x: Tensor) -> Tensor:
        b, n, _ = x.shape
        return x.view(b, n, self.h, self.dh).transpose(1, 2)

    def attend(self, q: Tensor, k: Tensor, v: Tensor, mem_len: int, allowed: Tensor) -> Tensor:
        """Scores and weighted sum over keys ``[memory, segment]``.

        q (B, H, L, dh) the segment's queries (positions 0..L-1); k, v (B, H, mem_len + L, dh) at positions
        ``-mem_len .. L-1``; allowed (B, L, mem_len + L) or broadcastable bool. Returns (B, L, D).
        The distance range comes from the shapes (no tensor read), so the graph traces with static shapes.
        """
        seg = q.shape[2]
        q_pos = torch.arange(seg, device=q.device)
        dist = q_pos[:, None] - key_positions(mem_len, seg, q.device)[None, :]  # (L, mem_len + L)
        d_min = 1 - seg
        n_dist = seg - 1 + mem_len - d_min + 1
        r = self.r_proj(sinusoid(torch.arange(d_min, d_min + n_dist, device=q.device), q.shape[1] * q.shape[-1]))
        r = r.view(n_dist, self.h, self.dh)
        content = torch.einsum("bhqd,bhkd->bhqk", q + self.u[None, :, None, :], k)
        pos_all = torch.einsum("bhqd,nhd->bhqn", q + self.v[None, :, None, :], r)
        index = (dist - d_min)[None, None].expand(q.shape[0], self.h, -1, -1)
        pos = torch.gather(pos_all, 3, index)
        scores = (content + pos) * self.scale
        scores = scores.masked_fill(~allowed[:, None], NEG)
        w = torch.softmax(scores, dim=-1)
        y = torch.einsum("bhqk,bhkd->bhqd", w, v)
        b, _, lq, _ = y.shape
        return self.out(y.transpose(1, 2).reshape(b, lq, -1))

    def relative_table(self, n: int, device: torch.device | None = None) -> Tensor:
        """Projected position vectors of distances 0..n-1: (n, H, dh) (for one-token steps)."""
        d = self.h * self.dh
        return self.r_proj(sinusoid(torch.arange(n, device=device), d)).view(n, self.h, self.dh)

    def attend_step(self, q: Tensor, k: Tensor, v: Tensor, r: Tensor, allowed: Tensor) -> Tensor:
        """One query over keys whose distances to it are ``r``'s rows: the same scores as :meth:`attend`.

        q (B, H, 1, dh); k, v (B, H, N, dh); r (N, H, dh) the projected vector of each key's distance;
        allowed (B, 1, N). Returns (B, 1, D).
        """
        content = torch.einsum("bhqd,bhkd->bhqk", q + self.u[None, :, None, :], k)
        pos = torch.einsum("bhqd,khd->bhqk", q + self.v[None, :, None, :], r)
        scores = ((content + pos) * self.scale).masked_fill(~allowed[:, None], NEG)
        y = torch.einsum("bhqk,bhkd->bhqd", torch.softmax(scores, dim=-1), v)
        return self.out(y.transpose(1, 2).reshape(q.shape[0], 1, -1))

    def forward(self, x: Tensor, memory: Tensor, memory_valid: Tensor, x_valid: Tensor, causal: bool) -> Tensor:
        """Full segment. x (B, L, D), memory (B, M, D), memory_valid (B, M), x_valid (B, L) -> (B, L, D)."""
        b, seg, d = x.shape
        m = memory.shape[1]
        q, k_x, v_x = self.qkv(x).split(d, dim=-1)
        if m:
            k_m, v_m = self.project_kv(memory)
            k = torch.cat([k_m, self._heads(k_x)], dim=2)
            v = torch.cat([v_m, self._heads(v_x)], dim=2)
        else:
            k, v = self._heads(k_x), self._heads(v_x)
        keys_valid = torch.cat([memory_valid, x_valid], dim=1)  # (B, M + L)
        allowed = keys_valid[:, None, :].expand(b, seg, m + seg)
        if causal:
            future = torch.ones(seg, seg, dtype=torch.bool, device=x.device).triu(1)
            allowed = allowed & ~F.pad(future, (m, 0))[None]
        return self.attend(self._heads(q), k, v, m, allowed)


class CrossAttention(nn.Module):
    """Plain multi-head attention from the decoder to the encoder output of the same bar."""

    def __init__(self, d_model: int, n_heads: int) -> None:
        super().__init__()
        self.h, self.dh = n_heads, d_model // n_heads
        self.q = nn.Linear(d_model, d_model, bias=False)
        self.kv = nn.Linear(d_model, 2 * d_model, bias=False)
        self.out = nn.Linear(d_model, d_model, bias=False)

    def project_kv(self, context: Tensor) -> tuple[Tensor, Tensor]:
        b, n, d = context.shape
        k, v = self.kv(context).split(d, dim=-1)
        return (k.view(b, n, self.h, self.dh).transpose(1, 2), v.view(b, n, self.h, self.dh).transpose(1, 2))

    def forward(self, x: Tensor, kv: tuple[Tensor, Tensor], context_valid: Tensor) -> Tensor:
        """x (B, L, D); kv from :meth:`project_kv`; context_valid (B, Lc) -> (B, L, D)."""
        b, lq, d = x.shape
        q = self.q(x).view(b, lq, self.h, self.dh).transpose(1, 2)
        mask = torch.zeros(context_valid.shape, dtype=x.dtype, device=x.device).masked_fill(~context_valid, NEG)
        y = F.scaled_dot_product_attention(q, kv[0], kv[1], attn_mask=mask[:, None, None, :])
        return self.out(y.transpose(1, 2).reshape(b, lq, d))


class FeedForward(nn.Module):
    def __init__(self, d_model: int, d_ff: int, dropout: float) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(d_model, d_ff), nn.GELU(), nn.Dropout(dropout), nn.Linear(d_ff, d_model))

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)
