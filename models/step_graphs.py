"""The live networks cut into graphs with fixed shapes and explicit state (see :mod:`.graphs`).

Each class wraps a trained network and has a :class:`~.graphs.GraphSpec`; its ``forward`` is what both
backends run (torch eagerly, ONNX Runtime after export), so there is one definition of every step.

* :class:`BeatStepGraph`: the causal beat net, one frame: ``x`` (1, 17, C) + :class:`~.beat_net.BeatNetState`
  fields -> beat/downbeat logits (1,) + the new state fields (``<field>_out``).
* :class:`BeatWindowGraph`: a beat net over a whole window: ``features`` (1, T, 17, C) -> logits (1, T) each.
* :class:`HitsEncoderGraph` / :class:`HitsStepGraph`: the hits transformer's encoder (rhythm (B, S) ->
  memory and cross-attention keys/values) and one decoder step with its key/value cache.
* :class:`DrumUNetGraph`: velocities and offsets of a hits window (B, 9, T).
* :class:`MusicEncoderGraph` / :class:`MusicStepGraph` / :class:`MusicMemoryGraph`: Drum2Music's
  Transformer-XL per bar: the encoder (drum bar + memories -> cross keys/values, the new encoder
  memory, and the decoder's key/value buffers with the memory part filled), one decoder token, and the
  decoder memory after the bar.

The Transformer-XL decoder step has static shapes: the memory's keys/values (computed once per bar by
the encoder graph) and the bar's keys/values (a buffer of ``max_bar_len`` slots per layer) are inputs,
the token's position in the bar is an input, and a mask hides memory slots that are empty and bar
slots not written yet. The step returns the token's key, value and layer inputs as rows, which the
caller writes into the bar's buffers at ``position``; the projected relative-position vectors of every
distance (they depend on the weights only) are computed once when the graph is built.
:class:`MusicMemoryGraph` turns the bar's layer inputs into the next bar's memory. ``mem_len = 0`` (the no-memory
ablation) runs with one memory slot that is never valid, so every graph keeps non-empty shapes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from rhythmicnet.models.beat_net import BEAT_STATE_FIELDS, BeatNet, BeatNetState
from rhythmicnet.models.drum_unet import DrumUNet
from rhythmicnet.models.graphs import GraphModule, GraphSpec
from rhythmicnet.models.hits_transformer import DecoderCache, HitsTransformer
from rhythmicnet.models.music_transformer import Drum2MusicModel
from rhythmicnet.models.remi import VOCAB
from rhythmicnet.models.skeleton import NUM_JOINTS
from rhythmicnet.models.transformer_xl import NEG, update_memory

__all__ = [
    "BEAT_STATE_FIELDS",
    "BeatStepGraph",
    "BeatWindowGraph",
    "DrumUNetGraph",
    "HitsEncoderGraph",
    "HitsPrefillGraph",
    "HitsStepGraph",
    "MusicEncoderGraph",
    "MusicMemoryGraph",
    "MusicStepGraph",
]



# ------------------------------------------------------------------------------------------ beat net
class BeatStepGraph(GraphModule):
    """One frame of the causal beat net. Inputs: x (1, 17, C), then the state fields; outputs: beat_logit,
    downbeat_logit (1,), then ``<field>_out`` of the new state (kept)."""

    def __init__(self, model: BeatNet, source: str = "beat") -> None:
        super().__init__()
        if not model.config.causal:
            raise ValueError("the beat step graph needs a causal beat model")
        self.model = model.eval()
        self.source = source
        outs = tuple(f"{f}_out" for f in BEAT_STATE_FIELDS)
        self.spec = GraphSpec("beat_step", ("x", *BEAT_STATE_FIELDS), ("beat_logit", "downbeat_logit", *outs),
                              kept=outs, step=True)

    def forward(self, x: Tensor, conv_buffer: Tensor, keys: Tensor, values: Tensor, ssm_vectors: Tensor,
                ssm_rows: Tensor, length: Tensor) -> tuple[Tensor, ...]:
        out, new = self.model.step(x, BeatNetState(conv_buffer, keys, values, ssm_vectors, ssm_rows, length))
        return (out.beat_logits, out.downbeat_logits, *(getattr(new, f) for f in BEAT_STATE_FIELDS))

    def initial_state(self) -> dict[str, Tensor]:
        s = self.model.init_state(1)
        return {f: getattr(s, f) for f in BEAT_STATE_FIELDS}

    def example_inputs(self) -> tuple[Tensor, ...]:
        x = torch.zeros(1, NUM_JOINTS, self.model.config.in_channels)
        return (x, *self.initial_state().values())


class BeatWindowGraph(GraphModule):
    """A beat net over a window of T frames: features (1, T, 17, C) -> beat_logits, downbeat_logits (1, T).

    For models with relative attention (their output does not depend on the window's absolute offset)."""

    def __init__(self, model: BeatNet, source: str = "beat") -> None:
        super().__init__()
        if model.config.use_transformer and not model.config.use_rel_attn:
            raise ValueError("the window graph needs relative attention (absolute positions depend on the offset)")
        self.model = model.eval()
        self.source = source
        self.spec = GraphSpec("beat_window", ("features",), ("beat_logits", "downbeat_logits"),
                              dynamic={"features": {1: "frames"}})

    def forward(self, features: Tensor) -> tuple[Tensor, Tensor]:
        out = self.model(features)
        return out.beat_logits, out.downbeat_logits

    def example_inputs(self) -> tuple[Tensor, ...]:
        return (torch.randn(1, 96, NUM_JOINTS, self.model.config.in_channels),)


# ---------------------------------------------------------------------------------- hits transformer
class HitsEncoderGraph(GraphModule):
    """rhythm (B, S) int64 0/1 -> memory (B, S, D), cross_k, cross_v (L, B, H, S, Dh) (all kept)."""

    def __init__(self, model: HitsTransformer, source: str = "rhythm2drum_hits") -> None:
        super().__init__()
        self.model = model.eval()
        self.source = source
        self.spec = GraphSpec("hits_encoder", ("rhythm",), ("memory", "cross_k", "cross_v"),
                              kept=("memory", "cross_k", "cross_v"), dynamic={"rhythm": {0: "batch"}})

    def forward(self, rhythm: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        memory = self.model.encode(rhythm)
        cache = self.model.init_cache(memory)
        return memory, cache.cross_k, cache.cross_v

    def example_inputs(self) -> tuple[Tensor, ...]:
        return (torch.zeros(2, 32, dtype=torch.long),)


class HitsStepGraph(GraphModule):
    """One decoder step: token (B,), self_k/self_v (L, B, H, M, Dh), cross_k/cross_v, length (), memory
    (B, S, D) -> logits (B, V), self_k_out, self_v_out, length_out (kept)."""

    def __init__(self, model: HitsTransformer, source: str = "rhythm2drum_hits") -> None:
        super().__init__()
        self.model = model.eval()
        self.source = source
        batch = {1: "batch"}
        self.spec = GraphSpec(
            "hits_step", ("token", "self_k", "self_v", "cross_k", "cross_v", "length", "memory"),
            ("logits", "self_k_out", "self_v_out", "length_out"), kept=("self_k_out", "self_v_out", "length_out"),
            dynamic={"token": {0: "batch"}, "self_k": batch, "self_v": batch, "cross_k": batch, "cross_v": batch,
                     "memory": {0: "batch"}},
            step=True)

    def forward(self, token: Tensor, self_k: Tensor, self_v: Tensor, cross_k: Tensor, cross_v: Tensor,
                length: Tensor, memory: Tensor) -> tuple[Tensor, ...]:
        out = self.model.step(token, DecoderCache(self_k, self_v, cross_k, cross_v, length), memory)
        return out.logits, out.cache.self_k, out.cache.self_v, out.cache.length

    def empty_cache(self, batch: int) -> tuple[Tensor, Tensor, Tensor]:
        """Zero self-attention K/V (L, B, H, max_steps, Dh) x 2 and length 0."""
        c = self.model.config
        z = torch.zeros(c.n_decoder_layers, batch, c.n_heads, c.max_steps, c.head_dim)
        return z, z.clone(), torch.zeros((), dtype=torch.long)

    def example_inputs(self) -> tuple[Tensor, ...]:
        rhythm = torch.zeros(2, 32, dtype=torch.long)
        with torch.no_grad():
            memory = self.model.encode(rhythm)
            cache = self.model.init_cache(memory)
        k, v, length = self.empty_cache(2)
        return (torch.ones(2, dtype=torch.long), k, v, cache.cross_k, cache.cross_v, length, memory)


class HitsPrefillGraph(GraphModule):
    """The forced prefix of a window (the bar already played) through the decoder in one pass, instead of
    one step per token: tokens_in (B, T) int64 (``bos`` then the forced tokens), cross_k, cross_v
    (L, B, H, S, Dh), memory (B, S, D) -> logits (B, V) of position T - 1 (the first token to sample) and
    the cache after T tokens: self_k_out, self_v_out (L, B, H, max_steps, Dh), length_out () = T (kept).
    The same cache :class:`HitsStepGraph` builds token by token (the tests check it to 1e-4)."""

    def __init__(self, model: HitsTransformer, source: str = "rhythm2drum_hits") -> None:
        super().__init__()
        self.model = model.eval()
        self.source = source
        batch = {1: "batch"}
        self.spec = GraphSpec(
            "hits_prefill", ("tokens_in", "cross_k", "cross_v", "memory"),
            ("logits", "self_k_out", "self_v_out", "length_out"), kept=("self_k_out", "self_v_out", "length_out"),
            dynamic={"tokens_in": {0: "batch", 1: "steps"}, "cross_k": batch, "cross_v": batch,
                     "memory": {0: "batch"}})

    def forward(self, tokens_in: Tensor, cross_k: Tensor, cross_v: Tensor, memory: Tensor) -> tuple[Tensor, ...]:
        m = self.model
        c = m.config
        b, t = tokens_in.shape[0], tokens_in.shape[1]
        idx = m.step_index[:t]
        x = m.token_embedding(tokens_in) + m.decoder_positions(idx)  # (B, T, D)
        if c.aligned_memory:
            x = x + memory[:, :t]
        causal = idx.view(-1, 1) >= idx.view(1, -1)  # (T, T)
        pad = torch.zeros(b, c.n_heads, c.max_steps - t, c.head_dim, dtype=x.dtype, device=x.device)
        ks, vs = [], []
        for i, layer in enumerate(m.decoder_layers):
            h = layer.ln_self(x)
            k, v = layer.self_attn.project_kv(h)  # (B, H, T, Dh)
            ks.append(torch.cat([k, pad], dim=2))
            vs.append(torch.cat([v, pad], dim=2))
            x = x + layer.self_attn.attend(h, k, v, causal)
            x = layer._after_self(x, cross_k[i], cross_v[i])
        logits = F.linear(m.decoder_norm(x[:, -1]), m.token_embedding.weight)  # (B, V), tied weights
        return logits, torch.stack(ks), torch.stack(vs), torch.full((), t, dtype=torch.long, device=x.device)

    def example_inputs(self) -> tuple[Tensor, ...]:
        rhythm = torch.zeros(2, 32, dtype=torch.long)
        with torch.no_grad():
            memory = self.model.encode(rhythm)
            cache = self.model.init_cache(memory)
        tokens = torch.randint(0, self.model.config.vocab_size, (2, 17))
        return (tokens, cache.cross_k, cache.cross_v, memory)


class DrumUNetGraph(GraphModule):
    """hits (B, 9, T) float32 -> velocity, offset (B, 9, T), zero where there is no hit."""

    def __init__(self, model: DrumUNet, source: str = "rhythm2drum_unet") -> None:
        super().__init__()
        self.model = model.eval()
        self.source = source
        self.spec = GraphSpec("drum_unet", ("hits",), ("velocity", "offset"), dynamic={"hits": {0: "batch"}})

    def forward(self, hits: Tensor) -> tuple[Tensor, Tensor]:
        v, o = self.model(hits)
        on = hits > 0
        return torch.where(on, v, 0.0), torch.where(on, o, 0.0)

    def example_inputs(self) -> tuple[Tensor, ...]:
        return (torch.zeros(2, self.model.config.n_classes, 32),)


# ------------------------------------------------------------------------------ Transformer-XL (music)
def _slots(model: Drum2MusicModel) -> int:
    """Memory slots of the graphs: mem_len, or one never-valid slot for the no-memory ablation."""
    return max(model.config.mem_len, 1)


def layer_names(prefix: str, n: int) -> tuple[str, ...]:
    """Per-layer input/output names: ``mem_k.0``, ``mem_k.1``, ..."""
    return tuple(f"{prefix}.{i}" for i in range(n))


#: Per-layer context of a bar that every decoder step reads (outputs of the encoder graph).
BAR_CONTEXT = ("mem_k", "mem_v", "cross_k", "cross_v")


class MusicEncoderGraph(GraphModule):
    """The start of a bar: encoder over the drum bar, and the decoder's per-bar context.

    Inputs: drum_tokens (1, Le) int64, enc_memory (Ne, 1, M, D), enc_valid (1, M) bool, dec_memory
    (Nd, 1, M, D), dec_valid (1, M) bool. Outputs (kept): enc_memory_out, enc_valid_out, ctx_valid (1, Le),
    then per decoder layer i: ``mem_k.i``, ``mem_v.i`` (H, M, dh), the keys/values of the decoder
    memory, and ``cross_k.i``, ``cross_v.i`` (H, Le, dh) (batch 1, its axis dropped). One tensor per
    layer, not a stack: indexing a stacked input copies it in ONNX Runtime, and the step graph reads
    them for every token.
    """

    def __init__(self, model: Drum2MusicModel, source: str = "drum2music") -> None:
        super().__init__()
        self.model = model.eval()
        self.source = source
        n = model.config.n_decoder_layers
        outs = ("enc_memory_out", "enc_valid_out", "ctx_valid", *(x for name in BAR_CONTEXT
                                                                   for x in layer_names(name, n)))
        self.spec = GraphSpec("music_encoder", ("drum_tokens", "enc_memory", "enc_valid", "dec_memory", "dec_valid"),
                              outs, kept=outs)

    def forward(self, drum_tokens: Tensor, enc_memory: Tensor, enc_valid: Tensor, dec_memory: Tensor,
                dec_valid: Tensor) -> tuple[Tensor, ...]:
        m = self.model
        slots = _slots(m)
        valid = drum_tokens != VOCAB.pad  # (1, Le)
        x = m.enc_emb(drum_tokens)
        new_mem = []
        new_valid = enc_valid
        for i, layer in enumerate(m.encoder_layers()):
            mem = enc_memory[i]
            upd, new_valid = update_memory(mem, enc_valid, x, valid, slots)
            new_mem.append(upd)
            x = layer(x, valid, mem, enc_valid)
        if m.config.mem_len == 0:
            new_valid = torch.zeros_like(enc_valid)
        context = m.enc_norm(x)  # (1, Le, D)
        per_layer: dict[str, list[Tensor]] = {name: [] for name in BAR_CONTEXT}
        for i, layer in enumerate(m.decoder_layers()):
            k, v = layer.attn.project_kv(layer.ln1(dec_memory[i]))  # (1, H, M, dh)
            per_layer["mem_k"].append(k[0])
            per_layer["mem_v"].append(v[0])
            k, v = layer.cross.project_kv(context)  # (1, H, Le, dh)
            per_layer["cross_k"].append(k[0])
            per_layer["cross_v"].append(v[0])
        return (torch.stack(new_mem), new_valid, valid, *(t for name in BAR_CONTEXT for t in per_layer[name]))

    def empty_memory(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """enc_memory, enc_valid, dec_memory, dec_valid of a new piece (nothing remembered)."""
        c = self.model.config
        slots = _slots(self.model)
        none = torch.zeros(1, slots, dtype=torch.bool)
        return (torch.zeros(c.n_encoder_layers, 1, slots, c.d_model), none,
                torch.zeros(c.n_decoder_layers, 1, slots, c.d_model), none.clone())

    def example_inputs(self) -> tuple[Tensor, ...]:
        tokens = torch.full((1, self.model.config.max_drum_len), VOCAB.pad, dtype=torch.long)
        tokens[0, :3] = torch.tensor([VOCAB.bar, VOCAB.position(0), VOCAB.position(4)])
        enc, enc_valid, dec, dec_valid = self.empty_memory()
        enc_valid = enc_valid.clone()
        enc_valid[:, -1] = True  # trace with a real memory slot
        return (tokens, torch.randn_like(enc), enc_valid, torch.randn_like(dec), enc_valid.clone())


class MusicStepGraph(GraphModule):
    """One decoder token of a bar.

    Inputs: token (1,) int64, instrument (1,) int64, position () int64 (the token's index in the bar),
    dec_valid (1, M) bool, ctx_valid (1, Le) bool, then per layer i: ``bar_k.i``, ``bar_v.i`` (H, Lb, dh)
    (keys/values of the bar's earlier tokens, slots < position), and the encoder graph's ``mem_k.i``,
    ``mem_v.i``, ``cross_k.i``, ``cross_v.i``. Outputs: logits (1, V), and this token's rows: k_row, v_row
    (Nd, H, 1, dh) and input_row (Nd, 1, D) (each layer's input, for the next memory).

    The bar's buffers are written by the caller (:func:`~.music_decoding.decode_bar`, in place on the
    host), not copied through the graph: a graph cannot update an input in place, and copying three
    buffers per token cost more than the rest of the step. The scores are
    :meth:`~.transformer_xl.RelativeSelfAttention.attend_step`'s, computed in three parts (memory keys,
    the bar's earlier keys, the token itself); the position term is the query times every distance's
    projected vector (a constant table, pre-transposed per layer), gathered per key.
    """

    def __init__(self, model: Drum2MusicModel, source: str = "drum2music") -> None:
        super().__init__()
        self.model = model.eval()
        self.source = source
        c = model.config
        slots = _slots(model)
        n = slots + c.max_bar_len
        h, dh = c.n_heads, c.d_model // c.n_heads
        scale = dh**-0.5
        with torch.no_grad():
            for i, layer in enumerate(model.decoder_layers()):
                attn = layer.attn
                # The attention scale folded into the query weights and the biases u, v (one Mul less per
                # layer): scale * (q + u).k == (scale q + scale u).k
                w = attn.qkv.weight.detach().clone()  # (3D, D): rows q, k, v
                w[: c.d_model] *= scale
                self.register_buffer(f"qkv_{i}", w, persistent=True)
                self.register_buffer(f"u_{i}", (attn.u * scale).view(h, 1, dh).clone(), persistent=True)
                self.register_buffer(f"v_{i}", (attn.v * scale).view(h, 1, dh).clone(), persistent=True)
                # (H, dh, n): column d is the projected position vector of distance d (one buffer per layer:
                # indexing a stacked constant copies it in ONNX Runtime)
                table = attn.relative_table(n).permute(1, 2, 0).contiguous()
                self.register_buffer(f"relative_{i}", table, persistent=True)
                self.register_buffer(f"cross_q_{i}", layer.cross.q.weight.detach() * scale, persistent=True)
        self.mem_index: Tensor
        self.register_buffer("mem_index", torch.arange(slots), persistent=False)
        self.bar_index: Tensor
        self.register_buffer("bar_index", torch.arange(c.max_bar_len), persistent=False)
        self.slots, self.heads, self.head_dim = slots, h, dh
        nd = c.n_decoder_layers
        self.spec = GraphSpec(
            "music_step",
            ("token", "instrument", "position", "dec_valid", "ctx_valid",
             *(x for name in ("bar_k", "bar_v", *BAR_CONTEXT) for x in layer_names(name, nd))),
            ("logits", "k_row", "v_row", "input_row"), step=True)

    def forward(self, token: Tensor, instrument: Tensor, position: Tensor, dec_valid: Tensor, ctx_valid: Tensor,
                *per_layer: Tensor) -> tuple[Tensor, ...]:
        # Written with 2-D activations (1, D) and the layers' weights directly: every op here is one ONNX
        # node, so a token costs ~45 nodes per layer instead of ~55 through the 3-D modules. The math is
        # Drum2MusicModel's decoder layer (pre-LN self-attention with relative positions, cross-attention,
        # feed-forward), checked against the teacher-forced model to 1e-4 in the tests.
        m = self.model
        nd, h, dh, d = m.config.n_decoder_layers, self.heads, self.head_dim, m.config.d_model
        bar_k, bar_v, mem_k, mem_v, cross_k, cross_v = (per_layer[j * nd : (j + 1) * nd] for j in range(6))
        x = m.dec_emb(token) + m.instrument_emb(instrument)  # (1, D)
        earlier = self.bar_index < position  # (Lb,): the bar's keys written before this token
        one = torch.ones(1, dtype=torch.bool, device=x.device)
        allowed = torch.cat([dec_valid.squeeze(0), earlier, one])  # (M + Lb + 1,)
        # distance of each key to this query: memory slot j: M + position - j; bar slot s: position - s; self: 0
        distance = torch.cat([self.slots + position - self.mem_index, (position - self.bar_index).clamp(min=0),
                              torch.zeros(1, dtype=torch.long, device=x.device)])
        ctx_bias = torch.zeros(ctx_valid.shape[1], device=x.device).masked_fill(~ctx_valid.squeeze(0), NEG)  # (Le,)
        inputs, rows_k, rows_v = [], [], []
        for i, layer in enumerate(m.decoder_layers()):
            inputs.append(x)
            a = F.layer_norm(x, (d,), layer.ln1.weight, layer.ln1.bias, layer.ln1.eps)
            q, k, v = F.linear(a, getattr(self, f"qkv_{i}")).split(d, dim=-1)
            q, k, v = q.view(h, 1, dh), k.view(h, 1, dh), v.view(h, 1, dh)
            rows_k.append(k)
            rows_v.append(v)
            qu = q + getattr(self, f"u_{i}")
            content = torch.cat([torch.matmul(qu, mem_k[i].transpose(1, 2)),  # (H, 1, M)
                                 torch.matmul(qu, bar_k[i].transpose(1, 2)),  # (H, 1, Lb)
                                 (qu * k).sum(-1, keepdim=True)], dim=2)  # (H, 1, M + Lb + 1)
            pos_all = torch.matmul(q + getattr(self, f"v_{i}"), getattr(self, f"relative_{i}"))  # (H, 1, n)
            scores = (content + pos_all.index_select(2, distance)).masked_fill(~allowed, NEG)
            w = torch.softmax(scores, dim=-1)  # (H, 1, M + Lb + 1)
            y = (torch.matmul(w[..., : self.slots], mem_v[i]) + torch.matmul(w[..., self.slots : -1], bar_v[i])
                 + w[..., -1:] * v)  # (H, 1, dh)
            x = x + F.linear(y.reshape(1, d), layer.attn.out.weight)
            # cross-attention to this bar's drums
            c = F.layer_norm(x, (d,), layer.ln2.weight, layer.ln2.bias, layer.ln2.eps)
            qc = F.linear(c, getattr(self, f"cross_q_{i}")).view(h, 1, dh)
            wc = torch.softmax(torch.matmul(qc, cross_k[i].transpose(1, 2)) + ctx_bias, dim=-1)  # (H, 1, Le)
            x = x + F.linear(torch.matmul(wc, cross_v[i]).reshape(1, d), layer.cross.out.weight)
            # feed-forward
            f = F.layer_norm(x, (d,), layer.ln3.weight, layer.ln3.bias, layer.ln3.eps)
            lin1, lin2 = layer.ff.net[0], layer.ff.net[3]
            x = x + F.linear(F.gelu(F.linear(f, lin1.weight, lin1.bias)), lin2.weight, lin2.bias)
        logits = m.head(m.dec_norm(x))  # (1, V)
        return logits, torch.stack(rows_k), torch.stack(rows_v), torch.stack(inputs)

    def empty_bar(self) -> tuple[Tensor, Tensor, Tensor]:
        """bar_k, bar_v (Nd, H, Lb, dh) and bar_inputs (Nd, 1, Lb, D) of a bar with no token yet."""
        c = self.model.config
        k = torch.zeros(c.n_decoder_layers, c.n_heads, c.max_bar_len, c.d_model // c.n_heads)
        return k, k.clone(), torch.zeros(c.n_decoder_layers, 1, c.max_bar_len, c.d_model)

    def example_inputs(self) -> tuple[Tensor, ...]:
        enc = MusicEncoderGraph(self.model)
        enc_inputs = enc.example_inputs()
        with torch.no_grad():
            outs = enc(*enc_inputs)
        bar_k, bar_v, _ = (torch.randn_like(t) for t in self.empty_bar())
        return (torch.tensor([VOCAB.bar]), torch.tensor([0]), torch.tensor(3), enc_inputs[4], outs[2],
                *bar_k.unbind(0), *bar_v.unbind(0), *outs[3:])


class MusicMemoryGraph(GraphModule):
    """The decoder memory after a bar: dec_memory (Nd, 1, M, D), dec_valid (1, M), bar_inputs (Nd, 1, Lb, D),
    n_tokens () int64 (tokens fed in the bar) -> dec_memory_out, dec_valid_out (kept)."""

    def __init__(self, model: Drum2MusicModel, source: str = "drum2music") -> None:
        super().__init__()
        self.model = model.eval()
        self.source = source
        self.bar_index: Tensor
        self.register_buffer("bar_index", torch.arange(model.config.max_bar_len), persistent=False)
        self.spec = GraphSpec("music_memory", ("dec_memory", "dec_valid", "bar_inputs", "n_tokens"),
                              ("dec_memory_out", "dec_valid_out"), kept=("dec_memory_out", "dec_valid_out"))

    def forward(self, dec_memory: Tensor, dec_valid: Tensor, bar_inputs: Tensor, n_tokens: Tensor
                ) -> tuple[Tensor, Tensor]:
        fed = (self.bar_index < n_tokens)[None]  # (1, Lb)
        slots = _slots(self.model)
        mems = []
        valid = dec_valid
        for i in range(bar_inputs.shape[0]):
            mem, valid = update_memory(dec_memory[i], dec_valid, bar_inputs[i], fed, slots)
            mems.append(mem)
        if self.model.config.mem_len == 0:
            valid = torch.zeros_like(dec_valid)
        return torch.stack(mems), valid

    def example_inputs(self) -> tuple[Tensor, ...]:
        c = self.model.config
        slots = _slots(self.model)
        valid = torch.zeros(1, slots, dtype=torch.bool)
        valid[:, -1] = True
        return (torch.randn(c.n_decoder_layers, 1, slots, c.d_model), valid,
                torch.randn(c.n_decoder_layers, 1, c.max_bar_len, c.d_model), torch.tensor(5))


def music_graph_modules(model: Drum2MusicModel, source: str = "drum2music"
                        ) -> tuple[MusicEncoderGraph, MusicStepGraph, MusicMemoryGraph]:
    return (MusicEncoderGraph(model, source), MusicStepGraph(model, source), MusicMemoryGraph(model, source))


