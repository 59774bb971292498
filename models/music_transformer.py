"""The Drum2Music network (paper: Methods, "Drum2Music"): a Transformer-XL encoder-decoder, one bar at a time.

The encoder reads the REMI tokens of drum bar i (relative self-attention over the bar and the memory
of earlier drum bars); the decoder writes the tokens of the piano or guitar bar i (causal relative
self-attention with the memory of earlier instrument bars, cross-attention to the encoder output of
bar i). Memory = the layer inputs of the last ``mem_len`` (256) real tokens; ``mem_len = 0`` is the
paper's no-memory ablation. Shapes below: B batch, Le drum-bar length, Ld decoder input length
(``max_bar_len - 1``: the last token a bar can hold, ``EndBar``, is only ever a target).

**One model, two instruments.** A learned instrument embedding (0 piano, 1 guitar) is added to every
decoder input. Piano and guitar share nearly all of what they learn (following drums, harmony,
durations), the guitar data is small, and POP909's piano can then help the guitar too; one model
also halves the training budget of the three runs (shipped / without POP909 / no memory). At
generation a pitch range per instrument (piano 21-108, guitar 40-88) is part of the grammar mask.
A copy of the shared model can be fine-tuned for one instrument (``train music --instrument``,
weights ``drum2music_<instrument>``): the piano ships such a copy, fine-tuned with more POP909
than the guitar can take (see ``offline/train_music.py``); the guitar plays the shared model.

Generation samples token by token with cached keys/values (the fixed-shape step graphs of
:mod:`~.step_graphs`, run by :func:`~.music_decoding.decode_bar`), temperature and
top-k (reference defaults 1.2 and 5), under :class:`~.remi.RemiGrammar`, so every bar is valid REMI.
:meth:`Drum2MusicModel.generate_bar_full` recomputes the whole prefix at every token: the tests
check that both give the same tokens for the same seed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, cast

import torch
from torch import Tensor, nn

from rhythmicnet.models.config import config_from_dict
from rhythmicnet.models.remi import PITCH_RANGE, VOCAB, BarNote, DrumBar, RemiGrammar
from rhythmicnet.models.transformer_xl import (
    CrossAttention,
    FeedForward,
    RelativeSelfAttention,
    update_memory,
)

__all__ = [
    "INSTRUMENTS",
    "BarMemory",
    "Drum2MusicConfig",
    "Drum2MusicModel",
    "SamplingConfig",
    "encode_drum_bars",
    "encode_instrument_bars",
]

INSTRUMENTS = ("piano", "guitar")
INSTRUMENT_PITCH_RANGE = {"piano": PITCH_RANGE, "guitar": (40, 88)}


@dataclass(frozen=True)
class Drum2MusicConfig:
    vocab_size: int = len(VOCAB)
    d_model: int = 128
    n_heads: int = 8
    n_encoder_layers: int = 4
    n_decoder_layers: int = 8
    d_ff: int = 512
    dropout: float = 0.1
    #: Memory length in real tokens; 0 switches memory off (the ablation).
    mem_len: int = 256
    #: Longest drum bar (tokens, Bar and EndBar included); longer bars drop their last hits.
    max_drum_len: int = 64
    #: Longest instrument bar (tokens, Bar and EndBar included).
    max_bar_len: int = 128
    n_instruments: int = len(INSTRUMENTS)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Drum2MusicConfig:
        return config_from_dict(cls, d)


@dataclass(frozen=True)
class SamplingConfig:
    """Temperature + top-k sampling under the REMI grammar.

    ``first_bar_plays``: the first bar after a reset (empty memory) has at least one note. The model
    is trained on segments that start with a playing bar (``train_music.plays_enough``), but it
    learns that from one token per segment, and within its CPU budget it still ended a first bar at
    once ~40 % of the time, which left a short video's opening silent; later bars rest as they like.
    """

    temperature: float = 1.2
    top_k: int | None = 5
    seed: int | None = 0
    first_bar_plays: bool = True


@dataclass
class BarMemory:
    """Per-layer memories (layer inputs) of the encoder and the decoder, (B, mem_len, D) each."""

    enc: list[Tensor]
    enc_valid: Tensor  # (B, mem_len) bool
    dec: list[Tensor]
    dec_valid: Tensor
    bars: int = 0


class EncoderLayer(nn.Module):
    def __init__(self, c: Drum2MusicConfig) -> None:
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(c.d_model), nn.LayerNorm(c.d_model)
        self.attn = RelativeSelfAttention(c.d_model, c.n_heads)
        self.ff = FeedForward(c.d_model, c.d_ff, c.dropout)
        self.drop = nn.Dropout(c.dropout)

    def forward(self, x: Tensor, x_valid: Tensor, mem: Tensor, mem_valid: Tensor) -> Tensor:
        x = x + self.drop(self.attn(self.ln1(x), self.ln1(mem), mem_valid, x_valid, causal=False))
        return x + self.drop(self.ff(self.ln2(x)))


class DecoderLayer(nn.Module):
    def __init__(self, c: Drum2MusicConfig) -> None:
        super().__init__()
        self.ln1, self.ln2, self.ln3 = nn.LayerNorm(c.d_model), nn.LayerNorm(c.d_model), nn.LayerNorm(c.d_model)
        self.attn = RelativeSelfAttention(c.d_model, c.n_heads)
        self.cross = CrossAttention(c.d_model, c.n_heads)
        self.ff = FeedForward(c.d_model, c.d_ff, c.dropout)
        self.drop = nn.Dropout(c.dropout)

    def finish(self, x: Tensor, cross_kv: tuple[Tensor, Tensor], ctx_valid: Tensor) -> Tensor:
        """Cross-attention and feed-forward after the self-attention residual."""
        x = x + self.drop(self.cross(self.ln2(x), cross_kv, ctx_valid))
        return x + self.drop(self.ff(self.ln3(x)))

    def forward(self, x: Tensor, x_valid: Tensor, mem: Tensor, mem_valid: Tensor,
                cross_kv: tuple[Tensor, Tensor], ctx_valid: Tensor) -> Tensor:
        x = x + self.drop(self.attn(self.ln1(x), self.ln1(mem), mem_valid, x_valid, causal=True))
        return self.finish(x, cross_kv, ctx_valid)


class Drum2MusicModel(nn.Module):
    """Encoder-decoder Transformer-XL over bars of REMI tokens."""

    def __init__(self, config: Drum2MusicConfig = Drum2MusicConfig()) -> None:
        super().__init__()
        c = self.config = config
        self.enc_emb = nn.Embedding(c.vocab_size, c.d_model, padding_idx=VOCAB.pad)
        self.dec_emb = nn.Embedding(c.vocab_size, c.d_model, padding_idx=VOCAB.pad)
        self.instrument_emb = nn.Embedding(c.n_instruments, c.d_model)
        self.encoder = nn.ModuleList(EncoderLayer(c) for _ in range(c.n_encoder_layers))
        self.decoder = nn.ModuleList(DecoderLayer(c) for _ in range(c.n_decoder_layers))
        self.enc_norm, self.dec_norm = nn.LayerNorm(c.d_model), nn.LayerNorm(c.d_model)
        self.head = nn.Linear(c.d_model, c.vocab_size, bias=False)
        self.head.weight = self.dec_emb.weight  # tied input/output embeddings
        self.drop = nn.Dropout(c.dropout)
        self.apply(self._init)

    @staticmethod
    def _init(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, std=0.02)

    def encoder_layers(self) -> list[EncoderLayer]:
        return cast(list[EncoderLayer], list(self.encoder))

    def decoder_layers(self) -> list[DecoderLayer]:
        return cast(list[DecoderLayer], list(self.decoder))

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    # --- memory ------------------------------------------------------------------------------------
    def initial_memory(self, batch: int, device: torch.device | None = None) -> BarMemory:
        c = self.config
        z = torch.zeros(batch, c.mem_len, c.d_model, device=device)
        none = torch.zeros(batch, c.mem_len, dtype=torch.bool, device=device)
        return BarMemory([z] * c.n_encoder_layers, none, [z] * c.n_decoder_layers, none)

    # --- one bar, all tokens at once (training, scoring) ------------------------------------------
    def encode_bar(self, drum_tokens: Tensor, memory: BarMemory) -> tuple[Tensor, Tensor, list[Tensor], Tensor]:
        """Drum bar tokens (B, Le) -> encoder output (B, Le, D), its validity (B, Le), new encoder memory."""
        valid = drum_tokens != VOCAB.pad
        x = self.drop(self.enc_emb(drum_tokens))
        new_mem = []
        m_valid = memory.enc_valid
        for layer, mem in zip(self.encoder_layers(), memory.enc, strict=True):
            m, m_valid = update_memory(mem, memory.enc_valid, x, valid, self.config.mem_len)
            new_mem.append(m.detach())
            x = layer(x, valid, mem, memory.enc_valid)
        return self.enc_norm(x), valid, new_mem, m_valid

    def _decoder_input(self, tokens: Tensor, instrument: Tensor) -> Tensor:
        return self.drop(self.dec_emb(tokens) + self.instrument_emb(instrument)[:, None, :])

    def decode_bar(self, dec_input: Tensor, instrument: Tensor, context: Tensor, context_valid: Tensor,
                   memory: BarMemory) -> tuple[Tensor, list[Tensor], Tensor]:
        """Teacher-forced decoder over one bar.

        dec_input (B, Ld) tokens ``Bar ...`` (pads after); instrument (B,) ids; context (B, Le, D).
        Returns logits (B, Ld, V), the new decoder memory and its validity.
        """
        # EndBar is only ever a target: as an input (teacher forcing of a full bar) it is treated as a
        # pad, so the memory holds what generation feeds (Bar .. the last note), never EndBar.
        valid = (dec_input != VOCAB.pad) & (dec_input != VOCAB.end_bar)
        x = self._decoder_input(dec_input, instrument)
        new_mem = []
        m_valid = memory.dec_valid
        for layer, mem in zip(self.decoder_layers(), memory.dec, strict=True):
            m, m_valid = update_memory(mem, memory.dec_valid, x, valid, self.config.mem_len)
            new_mem.append(m.detach())
            x = layer(x, valid, mem, memory.dec_valid, layer.cross.project_kv(context), context_valid)
        return self.head(self.dec_norm(x)), new_mem, m_valid

    def forward_bar(self, drum_tokens: Tensor, dec_input: Tensor, instrument: Tensor,
                    memory: BarMemory) -> tuple[Tensor, BarMemory]:
        """One bar, teacher forced: logits (B, Ld, V) and the memory for the next bar."""
        context, ctx_valid, enc_mem, enc_valid = self.encode_bar(drum_tokens, memory)
        logits, dec_mem, dec_valid = self.decode_bar(dec_input, instrument, context, ctx_valid, memory)
        return logits, BarMemory(enc_mem, enc_valid, dec_mem, dec_valid, memory.bars + 1)

    # --- generation ----------------------------------------------------------------------------------
    def generate_bar_full(self, drum_tokens: Tensor, instrument: int, memory: BarMemory, grammar: RemiGrammar,
                          sampling: SamplingConfig, generator: torch.Generator) -> tuple[list[int], BarMemory]:
        """Reference generation (batch 1): recomputes the decoder over the whole prefix at every token."""
        context, ctx_valid, enc_mem, enc_valid = self.encode_bar(drum_tokens, memory)
        inst = torch.tensor([instrument])
        tokens = [VOCAB.bar]
        grammar.reset(must_play=sampling.first_bar_plays and memory.bars == 0)
        grammar.advance(VOCAB.bar)
        while True:
            logits, _, _ = self.decode_bar(torch.tensor([tokens]), inst, context, ctx_valid, memory)
            t = sample_token(logits[0, -1], grammar.allowed(), sampling, generator)
            grammar.advance(t)
            if t == VOCAB.end_bar:
                break
            tokens.append(t)
        _, dec_mem, dec_valid = self.decode_bar(torch.tensor([tokens]), inst, context, ctx_valid, memory)
        return tokens + [VOCAB.end_bar], BarMemory(enc_mem, enc_valid, dec_mem, dec_valid, memory.bars + 1)

    def generate_bar(self, drum_tokens: Tensor, instrument: int, memory: BarMemory, grammar: RemiGrammar,
                     sampling: SamplingConfig, generator: torch.Generator) -> tuple[list[int], BarMemory]:
        """Incremental generation (batch 1), one decoder step per token: the step graphs of
        :mod:`~.step_graphs` run by torch through :func:`~.music_decoding.decode_bar` (the loop every
        backend runs), with the memory converted from and to :class:`BarMemory`."""
        from rhythmicnet.models.music_decoding import MusicMemory, decode_bar, music_graphs

        slots = max(self.config.mem_len, 1)

        def stacked(mems: list[Tensor], valid: Tensor) -> tuple[Tensor, Tensor]:
            x = torch.stack(mems)  # (N, 1, mem_len, D)
            if x.shape[2] < slots:  # no memory: one slot that is never valid
                x = torch.cat([x.new_zeros(x.shape[0], 1, slots - x.shape[2], x.shape[3]), x], dim=2)
                valid = torch.cat([valid.new_zeros(1, slots - valid.shape[1]), valid], dim=1)
            return x, valid

        def listed(x: Tensor, valid: Tensor) -> tuple[list[Tensor], Tensor]:
            keep = self.config.mem_len
            x, valid = x[:, :, x.shape[2] - keep :], valid[:, valid.shape[1] - keep :]
            return list(x.unbind(0)), valid

        graphs = music_graphs(self)  # per call: the step graph's position tables follow the current weights
        enc, enc_valid = stacked(memory.enc, memory.enc_valid)
        dec, dec_valid = stacked(memory.dec, memory.dec_valid)
        tokens, new = decode_bar(graphs, drum_tokens.numpy(), instrument,
                                 MusicMemory(enc, enc_valid, dec, dec_valid, memory.bars), grammar, sampling, generator)
        enc_l, enc_v = listed(new.enc, new.enc_valid)
        dec_l, dec_v = listed(new.dec, new.dec_valid)
        return tokens, BarMemory(enc_l, enc_v, dec_l, dec_v, new.bars)


def sample_token(logits: Tensor, allowed: Any, sampling: SamplingConfig, generator: torch.Generator) -> int:
    """Temperature + top-k sampling among the allowed tokens. logits (V,), allowed (V,) bool."""
    mask = torch.as_tensor(allowed, dtype=torch.bool)
    z = logits.detach().float().masked_fill(~mask, float("-inf")) / max(sampling.temperature, 1e-6)
    if sampling.top_k is not None:
        k = min(int(sampling.top_k), int(mask.sum()))
        kth = torch.topk(z, k).values[-1]
        z = z.masked_fill(z < kth, float("-inf"))
    p = torch.softmax(z, dim=-1)
    return int(torch.multinomial(p, 1, generator=generator))


def encode_drum_bars(bars: Sequence[DrumBar], max_len: int) -> Tensor:
    """Drum bars -> (n_bars, max_len) token ids, pad-filled."""
    out = torch.full((len(bars), max_len), VOCAB.pad, dtype=torch.long)
    for i, bar in enumerate(bars):
        t = VOCAB.encode_drums(bar, max_len)
        out[i, : len(t)] = torch.tensor(t)
    return out


def encode_instrument_bars(bars: Sequence[Sequence[BarNote]], max_len: int) -> Tensor:
    """Instrument bars -> (n_bars, max_len) token ids (``Bar ... EndBar``), pad-filled."""
    out = torch.full((len(bars), max_len), VOCAB.pad, dtype=torch.long)
    for i, notes in enumerate(bars):
        t = VOCAB.encode_notes(notes, max_len)
        out[i, : len(t)] = torch.tensor(t)
    return out

