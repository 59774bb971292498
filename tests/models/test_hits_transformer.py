"""Hits transformer: shapes, causality, incremental == full decoding, sampling controls, training."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from rhythmicnet.models.hits_transformer import (
    DecoderCache,
    HitsTransformer,
    HitsTransformerConfig,
    hits_loss,
    shift_right,
)

V, PAD, BOS = 24, 0, 1
T = 32


def small_config(**overrides: object) -> HitsTransformerConfig:
    base: dict[str, object] = dict(
        vocab_size=V, pad_id=PAD, bos_id=BOS, d_model=32, n_heads=4, n_encoder_layers=2, n_decoder_layers=2,
        d_ff=64, dropout=0.1, max_steps=T,
    )
    base.update(overrides)
    return HitsTransformerConfig(**base)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def model() -> HitsTransformer:
    torch.manual_seed(0)
    m = HitsTransformer(small_config()).eval()
    # Larger output weights than the N(0, 0.02) init, so that the logits of an untrained model are
    # spread out and sampling/argmax tests are not decided by float noise.
    with torch.no_grad():
        m.token_embedding.weight.mul_(50.0)
    return m


def random_batch(b: int = 3, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    rhythm = (torch.rand(b, T, generator=g) < 0.4).long()
    tokens = torch.randint(2, V, (b, T), generator=g)
    return rhythm, tokens


# ------------------------------------------------------------------------------------------ config
def test_config_round_trip_and_unknown_keys() -> None:
    cfg = small_config()
    assert HitsTransformerConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="unknown HitsTransformerConfig keys"):
        HitsTransformerConfig.from_dict({**cfg.to_dict(), "n_layer": 4})


def test_default_width() -> None:
    cfg = HitsTransformerConfig(vocab_size=160, pad_id=0, bos_id=1)
    assert (cfg.d_model, cfg.n_heads, cfg.n_encoder_layers, cfg.n_decoder_layers, cfg.max_steps) == (128, 4, 3, 3, 32)


@pytest.mark.parametrize(
    "overrides",
    [
        dict(d_model=30), dict(pad_id=1), dict(bos_id=V), dict(dropout=1.0), dict(n_heads=0), dict(max_steps=0),
        dict(aligned_memory=1),
    ],
)
def test_config_rejects_bad_values(overrides: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        small_config(**overrides)


# ------------------------------------------------------------------------------------------ shapes
def test_forward_and_step_shapes(model: HitsTransformer) -> None:
    rhythm, tokens = random_batch(b=3)
    assert model(rhythm, shift_right(tokens, BOS)).shape == (3, T, V)
    assert model(rhythm[:, :16], shift_right(tokens[:, :16], BOS)).shape == (3, 16, V)
    memory = model.encode(rhythm)
    assert memory.shape == (3, T, 32)
    cache = model.init_cache(memory)
    assert isinstance(cache, DecoderCache)
    assert cache.self_k.shape == (2, 3, 4, T, 8) and cache.cross_v.shape == (2, 3, 4, T, 8)
    assert cache.length.shape == () and int(cache.length) == 0
    logits, new = model.step(torch.full((3,), BOS), cache, memory)
    assert logits.shape == (3, V) and int(new.length) == 1
    assert new.self_k.shape == cache.self_k.shape


def test_bad_inputs_raise(model: HitsTransformer) -> None:
    rhythm, tokens = random_batch(b=2)
    with pytest.raises(ValueError, match="steps"):
        model.encode(torch.zeros(2, T + 1, dtype=torch.long))
    with pytest.raises(ValueError):
        model(rhythm, tokens[:1])
    with pytest.raises(ValueError, match="aligned_memory"):
        model(rhythm[:, :8], tokens[:, :9])
    with pytest.raises(ValueError, match="temperature"):
        model.generate(rhythm, temperature=-1.0)
    with pytest.raises(ValueError, match="top_k"):
        model.generate(rhythm, top_k=0)
    with pytest.raises(ValueError, match="prefix"):
        model.generate(rhythm[:, :8], prefix=tokens[:, :9])
    with pytest.raises(ValueError, match="prefix tokens"):
        model.generate(rhythm, prefix=torch.full((2, 4), V))
    with pytest.raises(ValueError, match="forbids every token"):
        model.generate(rhythm, logit_mask=torch.zeros(V, dtype=torch.bool))


# --------------------------------------------------------------------------------------- causality
def test_decoder_is_causal(model: HitsTransformer) -> None:
    rhythm, tokens = random_batch()
    tokens_in = shift_right(tokens, BOS)
    before = model(rhythm, tokens_in)
    changed = tokens_in.clone()
    changed[:, 20] = (changed[:, 20] + 1 - 2) % (V - 2) + 2
    after = model(rhythm, changed)
    torch.testing.assert_close(after[:, :20], before[:, :20], rtol=0, atol=1e-6)
    assert (after[:, 20:] - before[:, 20:]).abs().max() > 1e-3


def test_rhythm_drives_the_output(model: HitsTransformer) -> None:
    rhythm, tokens = random_batch()
    tokens_in = shift_right(tokens, BOS)
    flipped = rhythm.clone()
    flipped[:, 30] = 1 - flipped[:, 30]
    assert (model(flipped, tokens_in) - model(rhythm, tokens_in)).abs().max() > 1e-3


# ------------------------------------------------------------------------ incremental == full decoding
@pytest.mark.parametrize("aligned", [True, False])
def test_incremental_logits_equal_full_decoding(aligned: bool) -> None:
    torch.manual_seed(3)
    model = HitsTransformer(small_config(aligned_memory=aligned)).eval()
    rhythm, tokens = random_batch(b=4)
    full = model(rhythm, shift_right(tokens, BOS))  # (B, T, V)
    memory = model.encode(rhythm)
    cache = model.init_cache(memory)
    token = torch.full((4,), BOS)
    for t in range(T):
        logits, cache = model.step(token, cache, memory)
        torch.testing.assert_close(logits, full[:, t], rtol=0, atol=1e-5)
        token = tokens[:, t]
    assert int(cache.length) == T


def test_step_leaves_its_input_cache_unchanged(model: HitsTransformer) -> None:
    rhythm, _ = random_batch(b=2)
    memory = model.encode(rhythm)
    cache = model.init_cache(memory)
    _, c1 = model.step(torch.full((2,), BOS), cache, memory)
    snapshot = [x.clone() for x in c1]
    _, c2 = model.step(torch.full((2,), 5), c1, memory)
    for before, now in zip(snapshot, c1, strict=True):
        assert torch.equal(before, now)
    assert not torch.equal(c2.self_k, c1.self_k) and int(c2.length) == 2


def test_cached_and_uncached_sampling_match_for_a_seed(model: HitsTransformer) -> None:
    rhythm, _ = random_batch(b=3)
    a = model.generate(rhythm, generator=torch.Generator().manual_seed(7), use_cache=True)
    b = model.generate(rhythm, generator=torch.Generator().manual_seed(7), use_cache=False)
    assert torch.equal(a, b)
    assert a.shape == (3, T) and a.dtype == torch.long


def test_same_seed_same_samples_different_seed_different(model: HitsTransformer) -> None:
    rhythm, _ = random_batch(b=3)
    a = model.generate(rhythm, temperature=3.0, generator=torch.Generator().manual_seed(11))
    b = model.generate(rhythm, temperature=3.0, generator=torch.Generator().manual_seed(11))
    c = model.generate(rhythm, temperature=3.0, generator=torch.Generator().manual_seed(12))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


# --------------------------------------------------------------------------------- sampling controls
def greedy_check(model: HitsTransformer, rhythm: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """Logits of the model fed its own output, with pad/bos forbidden. Shape: (B, T, V)."""
    logits = model(rhythm, shift_right(tokens, BOS))
    return logits.masked_fill(~model.default_logit_mask(), float("-inf"))


def test_temperature_zero_is_argmax_and_never_pad_or_bos(model: HitsTransformer) -> None:
    rhythm, _ = random_batch(b=3)
    tokens = model.generate(rhythm, temperature=0.0)
    assert torch.equal(tokens, greedy_check(model, rhythm, tokens).argmax(-1))
    assert not ((tokens == PAD) | (tokens == BOS)).any()
    # top-1 sampling at any temperature is the argmax too, whatever the seed
    top1 = model.generate(rhythm, temperature=1.5, top_k=1, generator=torch.Generator().manual_seed(3))
    assert torch.equal(top1, tokens)


def test_top_k_restricts_the_support(model: HitsTransformer) -> None:
    rhythm, _ = random_batch(b=8)
    k = 3
    for seed in range(3):
        tokens = model.generate(rhythm, temperature=5.0, top_k=k, generator=torch.Generator().manual_seed(seed))
        logits = greedy_check(model, rhythm, tokens)  # (B, T, V)
        kth = torch.topk(logits, k, dim=-1).values[..., -1]  # (B, T)
        chosen = logits.gather(-1, tokens.unsqueeze(-1)).squeeze(-1)
        assert (chosen >= kth).all()
    # without top-k the same hot temperature leaves the top 3 somewhere
    free = model.generate(rhythm, temperature=5.0, generator=torch.Generator().manual_seed(0))
    logits = greedy_check(model, rhythm, free)
    kth = torch.topk(logits, k, dim=-1).values[..., -1]
    assert (logits.gather(-1, free.unsqueeze(-1)).squeeze(-1) < kth).any()


def test_logit_mask_limits_the_outputs(model: HitsTransformer) -> None:
    rhythm, _ = random_batch(b=4)
    allowed = torch.zeros(V, dtype=torch.bool)
    allowed[[5, 9]] = True
    tokens = model.generate(rhythm, temperature=2.0, logit_mask=allowed, generator=torch.Generator().manual_seed(0))
    assert set(tokens.unique().tolist()) <= {5, 9}
    per_row = torch.zeros(4, V, dtype=torch.bool)
    per_row[torch.arange(4), torch.tensor([3, 4, 5, 6])] = True
    tokens = model.generate(rhythm, logit_mask=per_row, generator=torch.Generator().manual_seed(0))
    assert torch.equal(tokens, torch.tensor([3, 4, 5, 6]).unsqueeze(1).expand(4, T))


def test_prefix_is_forced_and_conditions_the_rest(model: HitsTransformer) -> None:
    rhythm, played = random_batch(b=3, seed=5)
    prefix = played[:, :16]  # the bar already played
    out = model.generate(rhythm, temperature=0.0, prefix=prefix)
    assert torch.equal(out[:, :16], prefix)
    # the generated bar is the greedy continuation *given* the forced bar
    logits = greedy_check(model, rhythm, out)
    assert torch.equal(out[:, 16:], logits[:, 16:].argmax(-1))
    # a whole-window prefix returns it unchanged; sampling with a prefix is reproducible
    assert torch.equal(model.generate(rhythm, prefix=played), played)
    a = model.generate(rhythm, prefix=prefix, generator=torch.Generator().manual_seed(4))
    b = model.generate(rhythm, prefix=prefix, generator=torch.Generator().manual_seed(4), use_cache=False)
    assert torch.equal(a, b) and torch.equal(a[:, :16], prefix)


def test_step_graph_exports_with_static_shapes(model: HitsTransformer) -> None:
    """The step has no Python branch on tensor values: ``torch.export`` traces it (ONNX export builds on this)."""

    class Step(torch.nn.Module):
        def __init__(self, inner: HitsTransformer) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, token: torch.Tensor, memory: torch.Tensor, *state: torch.Tensor) -> tuple[torch.Tensor, ...]:
            logits, cache = self.inner.step(token, DecoderCache(*state), memory)
            return (logits, *cache)

    rhythm, tokens = random_batch(b=2)
    memory = model.encode(rhythm)
    cache = model.init_cache(memory)
    exported = torch.export.export(Step(model).eval(), (torch.full((2,), BOS), memory, *cache))
    run = exported.module()
    state = tuple(cache)
    token = torch.full((2,), BOS)
    ref = cache
    for t in range(4):  # carry the state through a few steps
        outs = run(token, memory, *state)
        logits, ref = model.step(token, ref, memory)
        torch.testing.assert_close(outs[0], logits, rtol=0, atol=1e-5)
        state = tuple(outs[1:])
        token = tokens[:, t]
    assert int(state[-1]) == 4


# ----------------------------------------------------------------------------------------- training
def test_a_few_training_steps_reduce_the_loss() -> None:
    """A real but tiny training run: the target token is a function of the rhythm and the beat position."""
    torch.manual_seed(0)
    model = HitsTransformer(small_config(dropout=0.0))
    g = torch.Generator().manual_seed(0)
    rhythm = (torch.rand(32, T, generator=g) < 0.4).long()
    beat = (torch.arange(T) % 4 == 0).long()
    targets = 2 + rhythm + 2 * beat  # 4 words: {no accent, accent} x {off beat, on beat}
    targets[:4, -3:] = PAD  # pad targets are ignored by the loss
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(40):
        loss = hits_loss(model(rhythm, shift_right(targets, BOS)), targets, PAD)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.25 * losses[0]
    model.eval()
    out = model.generate(rhythm[:4], temperature=0.0)
    assert (out[:, :-3] == targets[:4, :-3]).float().mean() > 0.9


def test_loss_ignores_pad() -> None:
    logits = torch.randn(2, 5, V)
    targets = torch.randint(2, V, (2, 5))
    padded = targets.clone()
    padded[:, 3:] = PAD
    expected = hits_loss(logits[:, :3], targets[:, :3], PAD)
    torch.testing.assert_close(hits_loss(logits, padded, PAD), expected)


def test_config_replace_rebuilds(model: HitsTransformer) -> None:
    cfg = dataclasses.replace(model.config, dropout=0.0)
    rebuilt = HitsTransformer(HitsTransformerConfig.from_dict(cfg.to_dict()))
    rebuilt.load_state_dict(model.state_dict())
    rebuilt.eval()
    rhythm, tokens = random_batch(b=2)
    torch.testing.assert_close(rebuilt(rhythm, tokens), model(rhythm, tokens))
