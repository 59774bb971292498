import numpy as np
import pytest
import torch

from rhythmicnet.models.music_transformer import (
    Drum2MusicConfig,
    Drum2MusicModel,
    SamplingConfig,
    encode_drum_bars,
    encode_instrument_bars,
)
from rhythmicnet.models.remi import VOCAB, BarNote, DrumBar, RemiGrammar
from rhythmicnet.models.transformer_xl import RelativeSelfAttention, update_memory

TINY = Drum2MusicConfig(d_model=32, n_heads=4, n_encoder_layers=2, n_decoder_layers=2, d_ff=64, mem_len=24,
                        max_bar_len=40, max_drum_len=32, dropout=0.0)


def _drum_bars(n, seed=0):
    rng = np.random.default_rng(seed)
    return [DrumBar(rng.random((9, 16)) < 0.2, rng.random((9, 16)).astype(np.float32), 120.0) for _ in range(n)]


def test_update_memory_keeps_last_real_tokens_right_aligned():
    mem = torch.arange(4, dtype=torch.float32).view(1, 4, 1)
    mem_valid = torch.tensor([[False, False, True, True]])  # real tokens 2, 3
    hid = torch.tensor([10.0, 11.0, 0.0]).view(1, 3, 1)
    hid_valid = torch.tensor([[True, True, False]])  # 10, 11 real, then a pad
    out, valid = update_memory(mem, mem_valid, hid, hid_valid, 3)
    assert out[0, :, 0].tolist() == [3.0, 10.0, 11.0] and valid.all()
    out, valid = update_memory(mem, mem_valid, hid, hid_valid, 6)
    assert valid[0].tolist() == [False, False, True, True, True, True]
    assert out[0, 2:, 0].tolist() == [2.0, 3.0, 10.0, 11.0]
    out, valid = update_memory(mem, mem_valid, hid, hid_valid, 0)
    assert out.shape == (1, 0, 1) and valid.shape == (1, 0)


def test_relative_attention_depends_on_distance_only():
    # Same content shifted by one position: with no memory, a causal query sees the same relative
    # picture, so its output is the same.
    torch.manual_seed(0)
    attn = RelativeSelfAttention(16, 2).eval()
    x = torch.randn(1, 5, 16)
    no_mem = torch.zeros(1, 0, 16)
    none = torch.zeros(1, 0, dtype=torch.bool)
    y = attn(x, no_mem, none, torch.ones(1, 5, dtype=torch.bool), causal=True)
    # prepend a masked (pad) token: positions shift, distances among real tokens do not
    x2 = torch.cat([torch.randn(1, 1, 16), x], 1)
    valid2 = torch.tensor([[False, True, True, True, True, True]])
    y2 = attn(x2, no_mem, none, valid2, causal=True)
    assert torch.allclose(y, y2[:, 1:], atol=1e-5)


def test_memory_shapes_and_switch():
    torch.manual_seed(0)
    model = Drum2MusicModel(TINY).eval()
    drums = encode_drum_bars(_drum_bars(2), TINY.max_drum_len)
    notes = [[BarNote(0, 60, 80, 4), BarNote(4, 64, 80, 4)], [BarNote(8, 67, 90, 2)]]
    inst = encode_instrument_bars(notes, TINY.max_bar_len)
    mem = model.initial_memory(1)
    assert len(mem.enc) == 2 and len(mem.dec) == 2 and mem.dec[0].shape == (1, 24, 32)
    logits, mem1 = model.forward_bar(drums[:1], inst[:1, :-1], torch.tensor([0]), mem)
    assert logits.shape == (1, TINY.max_bar_len - 1, len(VOCAB))
    n_dec = int((inst[0, :-1] != VOCAB.pad).sum()) - 1  # EndBar is never in the memory
    n_enc = int((drums[0] != VOCAB.pad).sum())
    assert int(mem1.dec_valid.sum()) == min(24, n_dec) and int(mem1.enc_valid.sum()) == min(24, n_enc)
    # The memory changes what the next bar predicts; the no-memory model has none to change.
    with torch.no_grad():
        a, _ = model.forward_bar(drums[1:], inst[1:, :-1], torch.tensor([0]), mem1)
        b, _ = model.forward_bar(drums[1:], inst[1:, :-1], torch.tensor([0]), model.initial_memory(1))
    assert not torch.allclose(a, b)
    torch.manual_seed(0)
    no_mem = Drum2MusicModel(Drum2MusicConfig(**{**TINY.to_dict(), "mem_len": 0})).eval()
    m0 = no_mem.initial_memory(1)
    assert m0.dec[0].shape == (1, 0, 32)
    with torch.no_grad():
        _, m1 = no_mem.forward_bar(drums[:1], inst[:1, :-1], torch.tensor([0]), m0)
        c, _ = no_mem.forward_bar(drums[1:], inst[1:, :-1], torch.tensor([0]), m1)
        d, _ = no_mem.forward_bar(drums[1:], inst[1:, :-1], torch.tensor([0]), m0)
    assert torch.equal(c, d)
    # Same parameter count: the switch is the memory, not the architecture.
    assert no_mem.num_parameters() == model.num_parameters()


def test_padding_a_bar_changes_nothing():
    torch.manual_seed(1)
    model = Drum2MusicModel(TINY).eval()
    drums = encode_drum_bars(_drum_bars(1), TINY.max_drum_len)
    inst = encode_instrument_bars([[BarNote(0, 60, 80, 4)]], TINY.max_bar_len)
    n = int((inst[0] != VOCAB.pad).sum())
    with torch.no_grad():
        full, m_full = model.forward_bar(drums, inst[:, :-1], torch.tensor([1]), model.initial_memory(1))
        short, m_short = model.forward_bar(drums, inst[:, : n - 1], torch.tensor([1]), model.initial_memory(1))
    assert torch.allclose(full[:, : n - 1], short, atol=1e-5)
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(m_full.dec, m_short.dec, strict=True))


@pytest.mark.parametrize("mem_len", [24, 0])
def test_incremental_decoding_equals_full_recomputation(mem_len):
    torch.manual_seed(2)
    model = Drum2MusicModel(Drum2MusicConfig(**{**TINY.to_dict(), "mem_len": mem_len})).eval()
    drums = encode_drum_bars(_drum_bars(4, seed=3), TINY.max_drum_len)
    grammar = RemiGrammar(TINY.max_bar_len)
    sampling = SamplingConfig(temperature=1.5, top_k=None)
    mem_a, mem_b = model.initial_memory(1), model.initial_memory(1)
    gen_a, gen_b = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    lengths = []
    with torch.no_grad():
        for i in range(4):
            a, mem_a = model.generate_bar(drums[i : i + 1], 0, mem_a, grammar, sampling, gen_a)
            b, mem_b = model.generate_bar_full(drums[i : i + 1], 0, mem_b, grammar, sampling, gen_b)
            assert a == b
            assert a[0] == VOCAB.bar and a[-1] == VOCAB.end_bar and len(a) <= TINY.max_bar_len
            for x, y in zip(mem_a.dec, mem_b.dec, strict=True):
                assert torch.allclose(x, y, atol=1e-5)
            lengths.append(len(a))
    assert max(lengths) > 2  # an untrained model still writes notes, not only empty bars


def test_sampling_respects_top_k_and_grammar():
    from rhythmicnet.models.music_transformer import sample_token

    logits = torch.arange(10, dtype=torch.float32)
    allowed = np.zeros(10, bool)
    allowed[[1, 3, 5]] = True
    g = torch.Generator().manual_seed(0)
    picks = {sample_token(logits, allowed, SamplingConfig(temperature=5.0, top_k=2), g) for _ in range(200)}
    assert picks == {3, 5}


def test_first_bar_after_a_reset_plays_and_later_bars_may_rest():
    grammar = RemiGrammar(TINY.max_bar_len)
    grammar.reset(must_play=True)
    grammar.advance(VOCAB.bar)
    assert not grammar.allowed()[VOCAB.end_bar] and grammar.allowed()[VOCAB.position(0)]
    grammar.reset()
    grammar.advance(VOCAB.bar)
    assert grammar.allowed()[VOCAB.end_bar]
    # a model that always wants to rest: its EndBar logit far above the rest
    torch.manual_seed(0)
    model = Drum2MusicModel(TINY).eval()
    head = torch.nn.Linear(TINY.d_model, TINY.vocab_size)
    with torch.no_grad():
        head.weight.copy_(model.head.weight)
        head.bias.zero_()
        head.bias[VOCAB.end_bar] = 100.0
    model.head = head
    drums = encode_drum_bars(_drum_bars(3), TINY.max_drum_len)
    for first_bar_plays, expect in ((True, [True, False, False]), (False, [False, False, False])):
        memory = model.initial_memory(1)
        gen = torch.Generator().manual_seed(0)
        played = []
        with torch.no_grad():
            for i in range(3):
                tokens, memory = model.generate_bar(drums[i : i + 1], 0, memory, grammar,
                                                    SamplingConfig(first_bar_plays=first_bar_plays), gen)
                played.append(len(tokens) > 2)
        assert played == expect
