import numpy as np
import pytest

from rhythmicnet.models.remi import (
    VOCAB,
    BarNote,
    DrumBar,
    RemiGrammar,
    bin_velocity,
    class_tempo,
    tempo_class,
    velocity_bin,
)


def _random_notes(rng: np.random.Generator, n: int) -> list[BarNote]:
    notes = {}
    for _ in range(n):
        step, pitch = int(rng.integers(0, 16)), int(rng.integers(21, 109))
        notes[(step, pitch)] = BarNote(step, pitch, bin_velocity(int(rng.integers(0, 16))), int(rng.integers(1, 33)))
    return sorted(notes.values())


def test_vocabulary_is_fixed_and_small():
    assert len(VOCAB) == 3 + 16 + 16 + 88 + 9 + 16 + 32
    assert VOCAB.words[VOCAB.pad] == "<pad>" and VOCAB.words[VOCAB.bar] == "Bar"
    assert VOCAB.words[VOCAB.pitch(60)] == "Pitch_60" and VOCAB.value(VOCAB.duration(7)) == 7
    for v in range(1, 128):
        assert velocity_bin(bin_velocity(velocity_bin(v))) == velocity_bin(v)
        assert abs(bin_velocity(velocity_bin(v)) - v) <= 8
    for bpm in (50, 72, 120, 180, 249):
        assert tempo_class(class_tempo(tempo_class(bpm))) == tempo_class(bpm)
        assert abs(class_tempo(tempo_class(bpm)) / bpm - 1) < 0.06


def test_instrument_bar_round_trip():
    rng = np.random.default_rng(0)
    for _ in range(50):
        notes = _random_notes(rng, int(rng.integers(0, 12)))
        tokens = VOCAB.encode_notes(notes, max_len=256)
        assert tokens[0] == VOCAB.bar and tokens[-1] == VOCAB.end_bar
        assert VOCAB.decode_notes(tokens) == notes


def test_instrument_bar_cleans_and_truncates():
    notes = [BarNote(0, 60, 100, 4), BarNote(0, 60, 50, 8), BarNote(3, 10, 90, 2), BarNote(2, 64, 90, 99)]
    tokens = VOCAB.encode_notes(notes, max_len=64)
    # duplicate (step, pitch): the loudest kept; out of range pitch dropped; duration clipped to 32
    assert VOCAB.decode_notes(tokens) == [BarNote(0, 60, bin_velocity(velocity_bin(100)), 4),
                                          BarNote(2, 64, bin_velocity(velocity_bin(90)), 32)]
    many = [BarNote(s, 40 + k, bin_velocity(7), 1) for s in range(16) for k in range(6)]
    short = VOCAB.encode_notes(many, max_len=40)
    assert len(short) <= 40 and short[-1] == VOCAB.end_bar
    assert VOCAB.decode_notes(short) == sorted(many)[: len(VOCAB.decode_notes(short))]


def test_drum_bar_round_trip():
    rng = np.random.default_rng(1)
    hits = rng.random((9, 16)) < 0.25
    vel = np.where(hits, np.array([bin_velocity(b) for b in rng.integers(0, 16, 144)]).reshape(9, 16) / 127, 0)
    bar = DrumBar(hits, vel.astype(np.float32), class_tempo(tempo_class(96.0)))
    tokens = VOCAB.encode_drums(bar, max_len=128)
    back = VOCAB.decode_drums(tokens)
    assert np.array_equal(back.hits, hits)
    assert np.allclose(back.velocity, vel, atol=1e-6)
    assert back.tempo_bpm == pytest.approx(bar.tempo_bpm)
    assert len(VOCAB.encode_drums(bar, max_len=20)) <= 20
    with pytest.raises(ValueError):
        VOCAB.encode_drums(DrumBar(np.zeros((9, 8), bool), np.zeros((9, 8)), 120), 64)


def test_grammar_accepts_every_encoded_bar():
    rng = np.random.default_rng(2)
    for max_len in (8, 30, 128):
        for _ in range(20):
            tokens = VOCAB.encode_notes(_random_notes(rng, int(rng.integers(0, 30))), max_len=max_len)
            g = RemiGrammar(max_len)
            for t in tokens:
                g.advance(t)
            assert g.done
            assert g.allowed().sum() == 1 and g.allowed()[VOCAB.pad]


def test_grammar_samples_are_valid_bars():
    rng = np.random.default_rng(3)
    for max_len in (5, 17, 64):
        for _ in range(30):
            g = RemiGrammar(max_len, pitch_range=(40, 88))
            tokens = []
            while not g.done:
                choices = np.flatnonzero(g.allowed())
                assert len(choices) > 0
                t = int(rng.choice(choices))
                g.advance(t)
                tokens.append(t)
            assert len(tokens) <= max_len
            notes = VOCAB.decode_notes(tokens)
            # every note complete: 3 tokens a note plus one Position per new step, Bar and EndBar
            assert len(tokens) == 2 + 3 * len(notes) + len({n.step for n in notes})
            assert all(40 <= n.pitch <= 88 for n in notes)
            steps = [n.step for n in notes]
            assert steps == sorted(steps)
            assert VOCAB.encode_notes(notes, max_len=max_len) == tokens


def test_grammar_rejects_invalid_continuations():
    g = RemiGrammar(64)
    with pytest.raises(ValueError):
        g.advance(VOCAB.pitch(60))  # a bar starts with Bar
    g.advance(VOCAB.bar)
    g.advance(VOCAB.position(4))
    for bad in (VOCAB.end_bar, VOCAB.velocity(3), VOCAB.position(5)):
        assert not g.allowed()[bad]
    g.advance(VOCAB.pitch(60))
    g.advance(VOCAB.velocity(3))
    g.advance(VOCAB.duration(2))
    allowed = g.allowed()
    assert not allowed[VOCAB.position(4)] and not allowed[VOCAB.position(2)] and allowed[VOCAB.position(5)]
    assert not allowed[VOCAB.pitch(60)] and allowed[VOCAB.pitch(61)] and allowed[VOCAB.end_bar]
