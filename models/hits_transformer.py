"""Hits transformer (Rhythm2Drum, step 1): binary rhythm -> one drum-hit token per 16th step.

The paper's encoder-decoder transformer (Methods, "Rhythm2Drum"; 3 layers and 4 heads in both the
encoder and the decoder). The encoder reads the rhythm of a window (a 0/1 flag per 16th step, the
beats plus the style accents from Video2Rhythm); the decoder writes, step by step, one token of the
hits vocabulary per 16th step (the combination of the 9 drum classes hit at that step, see
``hits_vocabulary``). Attention is written out here (no ``nn.Transformer``) so that the decoder's
key/value cache is an explicit value.

Decisions where the paper is open:

* **Width**: ``d_model = 128``, ``d_ff = 512``, dropout 0.1 (1.42 M parameters with a 160-word
  vocabulary). One training step (forward, backward, AdamW) on a batch of 64 two-bar windows takes
  ~0.2 s on a 2-core CPU, so an epoch of ~20 k windows takes ~65 s: ~50 epochs in an hour.
* **Positions**: learned absolute embeddings of the step index within the window (0..max_steps-1),
  one table for the encoder and one for the decoder. A 2-bar window always starts on a downbeat, so
  the absolute index *is* the metrical position (beat, bar); a learned table is also a plain gather
  in an exported step graph.
* **Rhythm embedding**: ``nn.Embedding(2, d_model)`` of the 0/1 flag, plus the position.
* **Blocks**: pre-LayerNorm residual blocks (attention, then a GELU feed-forward), a final
  LayerNorm on each side; the output projection shares its weights with the token embedding.
  Dropout on the embeddings, the attention weights and each residual branch (not on the
  feed-forward hidden layer).
  Initialisation N(0, 0.02), residual output projections scaled by 1/sqrt(2 * layers).
* **Decoder input**: ``[bos, y_0, ..., y_{T-2}]`` predicts ``[y_0, ..., y_{T-1}]``; ``pad`` is the
  ``ignore_index`` of :func:`hits_loss` and is never emitted by :meth:`HitsTransformer.generate`
  (nor is ``bos``) unless a ``logit_mask`` allows it.
* **Aligned memory** (``aligned_memory``, default on; an addition to the paper's plain
  encoder-decoder): the decoder input at step t also gets the encoder output of step t, since the
  token of step t is about the rhythm of step t (beats and accents land on hits). Cross-attention is
  kept for the context of the whole window. Without it the model must first discover the diagonal
  cross-attention: on a toy task (token = rhythm flag x beat position) a d=32 model with 2 + 2
  layers sat at the ln 2 plateau (ignoring the rhythm) for ~150 Adam steps and needed ~500; with
  it, ~40 steps.
  It requires decoder length <= rhythm length (always equal in practice).
* **Encoder attention** is bidirectional over the window: live, the window's rhythm is the bar just
  played plus the *planned* rhythm of the next bar (predicted beats + recent style), all known
  before the bar starts. The decoder is causal.

Incremental decoding (the live path and the bar-by-bar ``render`` path use the same code):
``encode(rhythm) -> memory``, ``init_cache(memory) -> DecoderCache`` (self-attention K/V
preallocated to ``max_steps`` plus a valid length; cross-attention K/V computed once from the
memory), then ``step(token, cache, memory) -> StepOutput(logits, cache)`` once per 16th step (the
memory is read only for the aligned step, one row gathered at ``length``). The step has
static shapes and no Python branch on tensor values: the new key/value is written at position
``length`` with ``torch.where`` and attention masks the slots ``> length``, so it can be exported as
an ONNX step graph with inputs (token, memory, then the fields of :class:`DecoderCache` in order)
and outputs (logits, then the new cache fields in order).
Its logits equal those of :meth:`HitsTransformer.forward` (teacher forcing) to float tolerance.

Long performances are generated bar after bar: a 2-bar window whose first bar is the bar already
played (its tokens forced with ``generate(..., prefix=...)``) and whose second bar is sampled.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, NamedTuple, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rhythmicnet.models.config import config_from_dict

__all__ = [
    "DecoderCache",
    "HitsTransformer",
    "HitsTransformerConfig",
    "StepOutput",
    "hits_loss",
    "sample_step",
    "shift_right",
]


@dataclass(frozen=True)
class HitsTransformerConfig:
    """Hyper-parameters of :class:`HitsTransformer` (saved with the weights, rebuilt by ``from_dict``).

    ``vocab_size``, ``pad_id`` and ``bos_id`` come from the hits vocabulary and have no default, so a
    model can never silently disagree with its vocabulary.
    """

    vocab_size: int
    pad_id: int
    bos_id: int
    d_model: int = 128
    n_heads: int = 4
    n_encoder_layers: int = 3
    n_decoder_layers: int = 3
    d_ff: int = 512
    dropout: float = 0.1
    #: Window length in 16th steps (a 2-bar window of 4/4).
    max_steps: int = 32
    #: Add the encoder state of step t to the decoder input at step t (see the module docstring).
    aligned_memory: bool = True

    def __post_init__(self) -> None:
        for name in ("vocab_size", "d_model", "n_heads", "n_encoder_layers", "n_decoder_layers", "d_ff", "max_steps"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if self.d_model % self.n_heads != 0:
            raise ValueError(f"d_model ({self.d_model}) must be a multiple of n_heads ({self.n_heads})")
        for name in ("pad_id", "bos_id"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < self.vocab_size:
                raise ValueError(f"{name} must be an int in [0, {self.vocab_size}), got {value!r}")
        if self.pad_id == self.bos_id:
            raise ValueError(f"pad_id and bos_id must differ, both are {self.pad_id}")
        if self.vocab_size < 3:
            raise ValueError(f"vocab_size must leave room for pad, bos and a hit word, got {self.vocab_size}")
        if not 0.0 <= float(self.dropout) < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout!r}")
        if not isinstance(self.aligned_memory, bool):
            raise ValueError(f"aligned_memory must be a bool, got {self.aligned_memory!r}")

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HitsTransformerConfig:
        """Rebuild from :meth:`to_dict`; unknown keys raise ``ValueError`` (missing ones take defaults)."""
        return config_from_dict(cls, data)


class DecoderCache(NamedTuple):
    """Decoder state between two :meth:`HitsTransformer.step` calls. Never changed in place.

    Shape:
        self_k, self_v: (L, B, H, max_steps, Dh) self-attention keys/values, valid in slots < length.
        cross_k, cross_v: (L, B, H, S, Dh) cross-attention keys/values of the encoder memory (S steps).
        length: () int64, number of tokens already fed (the position of the next one).
    L = decoder layers, H = heads, Dh = d_model / H.
    """

    self_k: Tensor
    self_v: Tensor
    cross_k: Tensor
    cross_v: Tensor
    length: Tensor


class StepOutput(NamedTuple):
    """Result of one decoder step. Shape: logits (B, V); cache as in :class:`DecoderCache`."""

    logits: Tensor
    cache: DecoderCache


def shift_right(targets: Tensor, bos_id: int) -> Tensor:
    """Teacher-forcing decoder input: ``[bos, y_0, ..., y_{T-2}]``. Shape: (B, T) -> (B, T)."""
    bos = torch.full_like(targets[:, :1], bos_id)
    return torch.cat([bos, targets[:, :-1]], dim=1)  # (B, T)


def hits_loss(logits: Tensor, targets: Tensor, pad_id: int) -> Tensor:
    """Mean token cross-entropy, ignoring ``pad`` targets. Shape: logits (B, T, V), targets (B, T) -> ()."""
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=pad_id)


class _Attention(nn.Module):
    """Multi-head scaled dot-product attention with separate Q/K/V projections.

    Shape: query input (B, Tq, D); keys/values (B, H, Tk, Dh); mask broadcastable to (B, H, Tq, Tk),
    True where a query may attend; output (B, Tq, D).
    """

    def __init__(self, config: HitsTransformerConfig) -> None:
        super().__init__()
        self.n_heads = config.n_heads
        self.head_dim = config.head_dim
        self.q_proj = nn.Linear(config.d_model, config.d_model)
        self.k_proj = nn.Linear(config.d_model, config.d_model)
        self.v_proj = nn.Linear(config.d_model, config.d_model)
        self.out_proj = nn.Linear(config.d_model, config.d_model)
        self.dropout = nn.Dropout(config.dropout)

    def _split(self, x: Tensor) -> Tensor:
        b, t, _ = x.shape
        return x.view(b, t, self.n_heads, self.head_dim).transpose(1, 2)  # (B, T, D) -> (B, H, T, Dh)

    def project_kv(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Keys and values of ``x``. Shape: (B, T, D) -> 2 x (B, H, T, Dh)."""
        return self._split(self.k_proj(x)), self._split(self.v_proj(x))

    def attend(self, x: Tensor, k: Tensor, v: Tensor, mask: Tensor | None) -> Tensor:
        q = self._split(self.q_proj(x))  # (B, H, Tq, Dh)
        scores = torch.matmul(q, k.transpose(-2, -1)) / math.sqrt(self.head_dim)  # (B, H, Tq, Tk)
        if mask is not None:
            scores = scores.masked_fill(~mask, float("-inf"))
        weights = self.dropout(torch.softmax(scores, dim=-1))  # (B, H, Tq, Tk)
        out = torch.matmul(weights, v)  # (B, H, Tq, Dh)
        b, _, tq, _ = out.shape
        return self.out_proj(out.transpose(1, 2).reshape(b, tq, self.n_heads * self.head_dim))  # (B, Tq, D)


class _FeedForward(nn.Module):
    def __init__(self, config: HitsTransformerConfig) -> None:
        super().__init__()
        self.fc1 = nn.Linear(config.d_model, config.d_ff)
        self.fc2 = nn.Linear(config.d_ff, config.d_model)

    def forward(self, x: Tensor) -> Tensor:
        # No dropout on the 4x wider hidden layer (the block's residual dropout follows): dropout's
        # random masks are a third of a CPU training step otherwise.
        return self.fc2(F.gelu(self.fc1(x)))  # (B, T, D)


class _EncoderLayer(nn.Module):
    def __init__(self, config: HitsTransformerConfig) -> None:
        super().__init__()
        self.ln_attn = nn.LayerNorm(config.d_model)
        self.attn = _Attention(config)
        self.ln_ff = nn.LayerNorm(config.d_model)
        self.ff = _FeedForward(config)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: Tensor) -> Tensor:
        h = self.ln_attn(x)
        k, v = self.attn.project_kv(h)
        x = x + self.dropout(self.attn.attend(h, k, v, None))  # bidirectional over the window
        return x + self.dropout(self.ff(self.ln_ff(x)))  # (B, S, D)


class _DecoderLayer(nn.Module):
    """Causal self-attention, cross-attention to the encoder memory, feed-forward (all pre-LN)."""

    def __init__(self, config: HitsTransformerConfig) -> None:
        super().__init__()
        self.ln_self = nn.LayerNorm(config.d_model)
        self.self_attn = _Attention(config)
        self.ln_cross = nn.LayerNorm(config.d_model)
        self.cross_attn = _Attention(config)
        self.ln_ff = nn.LayerNorm(config.d_model)
        self.ff = _FeedForward(config)
        self.dropout = nn.Dropout(config.dropout)

    def _after_self(self, x: Tensor, cross_k: Tensor, cross_v: Tensor) -> Tensor:
        x = x + self.dropout(self.cross_attn.attend(self.ln_cross(x), cross_k, cross_v, None))
        return x + self.dropout(self.ff(self.ln_ff(x)))

    def forward(self, x: Tensor, cross_k: Tensor, cross_v: Tensor, causal_mask: Tensor) -> Tensor:
        """Whole sequence. Shape: x (B, T, D), cross_k/v (B, H, S, Dh), causal_mask (T, T) -> (B, T, D)."""
        h = self.ln_self(x)
        k, v = self.self_attn.project_kv(h)  # (B, H, T, Dh)
        x = x + self.dropout(self.self_attn.attend(h, k, v, causal_mask))
        return self._after_self(x, cross_k, cross_v)

    def step(
        self,
        x: Tensor,
        self_k: Tensor,
        self_v: Tensor,
        cross_k: Tensor,
        cross_v: Tensor,
        *,
        write: Tensor,
        valid: Tensor,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """One position. Shape: x (B, 1, D); self_k/v (B, H, M, Dh); write/valid (M,) bool -> x, self_k, self_v."""
        h = self.ln_self(x)
        k_new, v_new = self.self_attn.project_kv(h)  # (B, H, 1, Dh)
        slot = write.view(1, 1, -1, 1)  # (1, 1, M, 1): the slot at position `length`
        self_k = torch.where(slot, k_new, self_k)  # (B, H, M, Dh)
        self_v = torch.where(slot, v_new, self_v)
        x = x + self.dropout(self.self_attn.attend(h, self_k, self_v, valid.view(1, 1, 1, -1)))
        return self._after_self(x, cross_k, cross_v), self_k, self_v


class HitsTransformer(nn.Module):
    """Encoder-decoder transformer from a binary rhythm to hits-vocabulary tokens.

    Shape:
        rhythm: (B, S) 0/1 per 16th step (any integer, bool or float dtype), S <= max_steps.
        tokens_in: (B, T) int64 decoder input (``shift_right`` of the targets), T <= max_steps.
        forward(rhythm, tokens_in) -> logits (B, T, V).
        encode(rhythm) -> memory (B, S, D); init_cache(memory) -> DecoderCache;
        step(token (B,), cache, memory) -> logits (B, V), new cache.
        generate(rhythm (B, S), ...) -> tokens (B, S).
    """

    def __init__(self, config: HitsTransformerConfig) -> None:
        super().__init__()
        self.config = config
        d = config.d_model
        self.rhythm_embedding = nn.Embedding(2, d)
        self.encoder_positions = nn.Embedding(config.max_steps, d)
        self.encoder_layers = nn.ModuleList(_EncoderLayer(config) for _ in range(config.n_encoder_layers))
        self.encoder_norm = nn.LayerNorm(d)
        self.token_embedding = nn.Embedding(config.vocab_size, d)
        self.decoder_positions = nn.Embedding(config.max_steps, d)
        self.decoder_layers = nn.ModuleList(_DecoderLayer(config) for _ in range(config.n_decoder_layers))
        self.decoder_norm = nn.LayerNorm(d)
        self.embedding_dropout = nn.Dropout(config.dropout)
        self.step_index: Tensor
        self.register_buffer("step_index", torch.arange(config.max_steps), persistent=False)
        self._init_weights()

    def _init_weights(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, mean=0.0, std=0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Embedding):
                nn.init.normal_(module.weight, mean=0.0, std=0.02)
        n_layers = self.config.n_encoder_layers + self.config.n_decoder_layers
        for name, param in self.named_parameters():
            if name.endswith("out_proj.weight") or name.endswith("fc2.weight"):
                nn.init.normal_(param, mean=0.0, std=0.02 / math.sqrt(2 * n_layers))

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def _decoder(self) -> list[_DecoderLayer]:
        return [cast(_DecoderLayer, layer) for layer in self.decoder_layers]

    # ----------------------------------------------------------------------------------- encoder
    def encode(self, rhythm: Tensor) -> Tensor:
        """Encoder memory of a rhythm window. Shape: (B, S) -> (B, S, D)."""
        if rhythm.dim() != 2:
            raise ValueError(f"rhythm must be (batch, steps), got shape {tuple(rhythm.shape)}")
        s = rhythm.shape[1]
        if not 1 <= s <= self.config.max_steps:
            raise ValueError(f"rhythm has {s} steps; the model takes 1..{self.config.max_steps}")
        flags = (rhythm > 0).long()  # (B, S) 0/1
        x = self.rhythm_embedding(flags) + self.encoder_positions(self.step_index[:s])  # (B, S, D)
        x = self.embedding_dropout(x)
        for layer in self.encoder_layers:
            x = layer(x)
        return self.encoder_norm(x)  # (B, S, D)

    def _cross_kv(self, memory: Tensor) -> tuple[Tensor, Tensor]:
        """Per-layer cross-attention keys/values. Shape: (B, S, D) -> 2 x (L, B, H, S, Dh)."""
        pairs = [layer.cross_attn.project_kv(memory) for layer in self._decoder()]
        return torch.stack([k for k, _ in pairs]), torch.stack([v for _, v in pairs])

    # ----------------------------------------------------------------------------------- decoder
    def _logits(self, x: Tensor) -> Tensor:
        return F.linear(self.decoder_norm(x), self.token_embedding.weight)  # (B, T, V), tied weights

    def forward(self, rhythm: Tensor, tokens_in: Tensor) -> Tensor:
        """Teacher-forced logits. Shape: rhythm (B, S), tokens_in (B, T) -> (B, T, V)."""
        if tokens_in.dim() != 2 or tokens_in.shape[0] != rhythm.shape[0]:
            raise ValueError(
                f"tokens_in must be (batch, steps) with batch {rhythm.shape[0]}, got {tuple(tokens_in.shape)}"
            )
        t = tokens_in.shape[1]
        if not 1 <= t <= self.config.max_steps:
            raise ValueError(f"tokens_in has {t} steps; the model takes 1..{self.config.max_steps}")
        if self.config.aligned_memory and t > rhythm.shape[1]:
            raise ValueError(f"tokens_in has {t} steps, more than the rhythm's {rhythm.shape[1]} (aligned_memory)")
        memory = self.encode(rhythm)  # (B, S, D)
        cross_k, cross_v = self._cross_kv(memory)  # (L, B, H, S, Dh)
        x = self.token_embedding(tokens_in) + self.decoder_positions(self.step_index[:t])  # (B, T, D)
        if self.config.aligned_memory:
            x = x + memory[:, :t]  # (B, T, D): step t also reads the encoder state of step t
        x = self.embedding_dropout(x)
        idx = self.step_index[:t]
        causal = idx.view(-1, 1) >= idx.view(1, -1)  # (T, T): query i sees keys j <= i
        for i, layer in enumerate(self._decoder()):
            x = layer(x, cross_k[i], cross_v[i], causal)
        return self._logits(x)  # (B, T, V)

    def init_cache(self, memory: Tensor) -> DecoderCache:
        """Empty decoder state for ``memory``; computes the cross-attention K/V once.

        Shape: memory (B, S, D) -> DecoderCache (see its docstring), length 0.
        """
        cfg = self.config
        b = memory.shape[0]
        cross_k, cross_v = self._cross_kv(memory)  # (L, B, H, S, Dh)
        shape = (cfg.n_decoder_layers, b, cfg.n_heads, cfg.max_steps, cfg.head_dim)
        zeros = torch.zeros(shape, dtype=memory.dtype, device=memory.device)
        length = torch.zeros((), dtype=torch.long, device=memory.device)
        return DecoderCache(zeros, zeros.clone(), cross_k, cross_v, length)

    def step(self, token: Tensor, cache: DecoderCache, memory: Tensor) -> StepOutput:
        """Feed the token at position ``cache.length``; get the logits of the output at that position.

        ``memory`` is the ``encode`` output the cache was made from. Static shapes, no Python branch
        on tensor values (exportable). ``cache.length`` must be < ``max_steps`` and < S (not checked
        here, as that would read a tensor value; ``generate`` never exceeds it). The input cache is
        not modified.
        Shape: token (B,) int64, cache as :class:`DecoderCache`, memory (B, S, D) -> logits (B, V), new cache.
        """
        pos = cache.length.reshape(1)  # (1,)
        x = self.token_embedding(token).unsqueeze(1) + self.decoder_positions(pos).unsqueeze(0)  # (B, 1, D)
        if self.config.aligned_memory:
            x = x + memory.index_select(1, pos)  # (B, 1, D): the encoder state of this step
        x = self.embedding_dropout(x)
        write = self.step_index == cache.length  # (M,)
        valid = self.step_index <= cache.length  # (M,)
        new_k, new_v = [], []
        for i, layer in enumerate(self._decoder()):
            x, k, v = layer.step(
                x, cache.self_k[i], cache.self_v[i], cache.cross_k[i], cache.cross_v[i], write=write, valid=valid
            )
            new_k.append(k)
            new_v.append(v)
        logits = self._logits(x).squeeze(1)  # (B, V)
        new_cache = DecoderCache(torch.stack(new_k), torch.stack(new_v), cache.cross_k, cache.cross_v, cache.length + 1)
        return StepOutput(logits, new_cache)

    # -------------------------------------------------------------------------------- generation
    def default_logit_mask(self, device: torch.device | str | None = None) -> Tensor:
        """Tokens that may be emitted by default: all but pad and bos. Shape: (V,) bool."""
        mask = torch.ones(self.config.vocab_size, dtype=torch.bool, device=device)
        mask[self.config.pad_id] = False
        mask[self.config.bos_id] = False
        return mask

    @torch.no_grad()
    def generate(
        self,
        rhythm: Tensor,
        *,
        temperature: float = 1.0,
        top_k: int | None = None,
        generator: torch.Generator | None = None,
        prefix: Tensor | None = None,
        logit_mask: Tensor | None = None,
        use_cache: bool = True,
    ) -> Tensor:
        """Sample one token per step of ``rhythm``.

        ``temperature`` 0 takes the argmax; ``top_k`` keeps the k most likely allowed tokens;
        ``generator`` makes sampling reproducible (the global RNG is used when it is None);
        ``prefix`` forces the first P tokens (the bar already played); ``logit_mask`` (True = may be
        emitted) replaces :meth:`default_logit_mask` (which forbids pad and bos). ``use_cache=False``
        re-runs the whole decoder at every step (slow; for tests of the cached path, which gives the
        same tokens for the same generator state). Runs under ``no_grad``; call ``eval()`` first for
        deterministic logits.
        Shape: rhythm (B, S); prefix (B, P), P <= S; logit_mask (V,) or (B, V) -> tokens (B, S) int64.
        """
        cfg = self.config
        if temperature < 0 or not math.isfinite(temperature):
            raise ValueError(f"temperature must be finite and >= 0, got {temperature}")
        if top_k is not None and top_k < 1:
            raise ValueError(f"top_k must be >= 1 or None, got {top_k}")
        if rhythm.dim() != 2:
            raise ValueError(f"rhythm must be (batch, steps), got shape {tuple(rhythm.shape)}")
        b, s = rhythm.shape
        device = rhythm.device
        if prefix is None:
            prefix = torch.zeros((b, 0), dtype=torch.long, device=device)
        if prefix.dim() != 2 or prefix.shape[0] != b or prefix.shape[1] > s:
            raise ValueError(f"prefix must be (batch={b}, P <= {s}), got shape {tuple(prefix.shape)}")
        if prefix.numel() and (int(prefix.min()) < 0 or int(prefix.max()) >= cfg.vocab_size):
            raise ValueError(f"prefix tokens must be in [0, {cfg.vocab_size})")
        if logit_mask is None:
            allowed = self.default_logit_mask(device)
        else:
            allowed = logit_mask.to(device=device, dtype=torch.bool)
        if allowed.shape not in ((cfg.vocab_size,), (b, cfg.vocab_size)):
            raise ValueError(f"logit_mask must be (V={cfg.vocab_size},) or (B={b}, V), got {tuple(allowed.shape)}")
        if not bool(allowed.any(dim=-1).all()):
            raise ValueError("logit_mask forbids every token (for at least one batch row)")
        allowed = allowed.expand(b, cfg.vocab_size)

        if not 1 <= s <= cfg.max_steps:
            raise ValueError(f"rhythm has {s} steps; the model takes 1..{cfg.max_steps}")
        if use_cache:
            # the step-graph loop every backend runs (torch here)
            from rhythmicnet.models.hits_decoding import hits_graphs, sample_hits

            out = sample_hits(hits_graphs(self), (rhythm > 0).cpu().numpy(), allowed, temperature=temperature,
                              top_k=top_k, generator=generator, prefix=prefix.cpu().numpy())
            return torch.from_numpy(out).to(device)
        tokens = torch.zeros((b, s), dtype=torch.long, device=device)
        n_forced = prefix.shape[1]
        for t in range(s):
            logits = self.forward(rhythm, shift_right(tokens[:, : t + 1], cfg.bos_id))[:, -1]  # (B, V)
            if t < n_forced:
                token = prefix[:, t]
            else:
                token = sample_step(logits, allowed, temperature=temperature, top_k=top_k, generator=generator)
            tokens[:, t] = token
        return tokens


def sample_step(
    logits: Tensor, allowed: Tensor, *, temperature: float, top_k: int | None, generator: torch.Generator | None
) -> Tensor:
    """One token per row. Shape: logits (B, V), allowed (B, V) bool -> (B,) int64 (on the generator's device)."""
    if generator is not None and logits.device != generator.device:
        logits, allowed = logits.to(generator.device), allowed.to(generator.device)
    logits = logits.float().masked_fill(~allowed, float("-inf"))  # (B, V)
    if temperature == 0:
        return logits.argmax(dim=-1)
    # Subtract the row maximum first (finite: some token is allowed), so that a tiny temperature
    # cannot overflow to +inf.
    logits = (logits - logits.max(dim=-1, keepdim=True).values) / temperature  # (B, V), <= 0
    if top_k is not None and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]  # (B, 1); ties with the k-th are kept
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = torch.softmax(logits, dim=-1)  # (B, V)
    return torch.multinomial(probs, 1, generator=generator).squeeze(1)  # (B,)
