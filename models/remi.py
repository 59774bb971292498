"""REMI tokens for Drum2Music: one 4/4 bar of drums or of piano/guitar as a word sequence.

REMI (Huang & Yang 2020) writes music as Bar / Position / Note events. Drum2Music works one bar at a
time (the encoder reads drum bar i, the decoder writes instrument bar i), so every bar is its own
token sequence, framed by ``Bar`` and ``EndBar``::

    instrument bar:  Bar (Position_s (Pitch_p Velocity_v Duration_d)+ )* EndBar
    drum bar:        Bar Tempo_t (Position_s (Drum_c Velocity_v)+ )* EndBar

Decisions (the reference implementation's 308-event vocabulary, ``remi_vocab_308.json``, has 16
positions, 86 pitches, ~22 velocity bins, 64 durations, tempo classes/values and chords):

* **Our own REMI, not miditok's.** miditok's REMI tokenises whole files at tick resolution with
  time-signature handling; here a bar is always 16 steps of the drum grid, the pairs are cut bar by
  bar from the data readers, drum bars come from the Rhythm2Drum grid as often as from MIDI, and the
  decoder needs a grammar mask at every step. A ~180-word vocabulary and a state machine are less code
  than adapting miditok's token streams, and they stay in step with :class:`~.drum_grid.DrumGrid`.
* **No chord tokens** (chords are unknown at inference), **no tempo in the instrument bar**: the
  tempo comes from the beat tracker and reaches the decoder through the drum bar's ``Tempo`` token
  (16 log-spaced classes over 50-250 BPM).
* 16 positions (the 16th grid of the drums), 88 pitches (piano A0-C8; guitar fits inside), 16
  velocity bins of 8 MIDI steps, durations of 1-32 steps (longer notes are clipped to two bars),
  9 drum classes of the Groove MIDI grid (drum offsets are not tokenised).
* Within a position, notes are sorted by pitch and the grammar makes pitches strictly increase, so a
  chord has no duplicate. Positions strictly increase. A bar never exceeds ``max_len`` tokens
  (``Bar`` and ``EndBar`` included): the encoder truncates longer bars note by note, and the grammar
  only lets a note start when it can still be completed and the bar still closed.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "BarNote",
    "DrumBar",
    "MAX_DURATION_STEPS",
    "PITCH_RANGE",
    "RemiGrammar",
    "RemiVocabulary",
    "STEPS_PER_BAR",
    "VOCAB",
]

STEPS_PER_BAR = 16
#: Longest note duration kept, in 16th steps (two bars); longer notes are clipped.
MAX_DURATION_STEPS = 32
#: Playable pitches (piano A0..C8); notes outside are dropped.
PITCH_RANGE = (21, 108)
N_VELOCITY_BINS = 16
N_TEMPO_CLASSES = 16
TEMPO_RANGE = (50.0, 250.0)
N_DRUM_CLASSES = 9


@dataclass(frozen=True, order=True)
class BarNote:
    """One pitched note inside a 4/4 bar, on the 16th grid.

    ``step`` 0..15 (onset within the bar), ``pitch`` MIDI 21..108, ``velocity`` MIDI 1..127,
    ``duration`` in 16th steps, 1..MAX_DURATION_STEPS (may run past the bar's end).
    """

    step: int
    pitch: int
    velocity: int
    duration: int


@dataclass(frozen=True)
class DrumBar:
    """One bar of drums for the encoder: hits ``(9, 16)`` bool, velocities ``(9, 16)`` in [0, 1], tempo."""

    hits: np.ndarray
    velocity: np.ndarray
    tempo_bpm: float


def velocity_bin(velocity: int) -> int:
    """MIDI velocity 1..127 -> bin 0..15 (8 MIDI steps a bin)."""
    return int(min(N_VELOCITY_BINS - 1, max(0, (int(velocity) - 1) // 8)))


def bin_velocity(b: int) -> int:
    """Bin -> the MIDI velocity at its centre."""
    return int(min(127, 8 * int(b) + 5))


def tempo_class(bpm: float) -> int:
    """Tempo -> one of 16 log-spaced classes over 50-250 BPM (clamped)."""
    lo, hi = np.log(TEMPO_RANGE[0]), np.log(TEMPO_RANGE[1])
    x = (np.log(max(float(bpm), 1e-3)) - lo) / (hi - lo)
    return int(np.clip(np.floor(x * N_TEMPO_CLASSES), 0, N_TEMPO_CLASSES - 1))


def class_tempo(c: int) -> float:
    """Tempo class -> the BPM at its (geometric) centre."""
    lo, hi = np.log(TEMPO_RANGE[0]), np.log(TEMPO_RANGE[1])
    return float(np.exp(lo + (int(c) + 0.5) / N_TEMPO_CLASSES * (hi - lo)))


class RemiVocabulary:
    """The fixed word list: ids are stable (the vocabulary is built from ranges, not from data).

    ``pad`` 0, ``bar`` 1, ``end_bar`` 2, then Position_0..15, Tempo_0..15, Pitch_21..108,
    Drum_0..8, Velocity_0..15, Duration_1..32.
    """

    def __init__(self) -> None:
        words = ["<pad>", "Bar", "EndBar"]
        words += [f"Position_{s}" for s in range(STEPS_PER_BAR)]
        words += [f"Tempo_{t}" for t in range(N_TEMPO_CLASSES)]
        words += [f"Pitch_{p}" for p in range(PITCH_RANGE[0], PITCH_RANGE[1] + 1)]
        words += [f"Drum_{c}" for c in range(N_DRUM_CLASSES)]
        words += [f"Velocity_{v}" for v in range(N_VELOCITY_BINS)]
        words += [f"Duration_{d}" for d in range(1, MAX_DURATION_STEPS + 1)]
        self.words: tuple[str, ...] = tuple(words)
        self.ids: dict[str, int] = {w: i for i, w in enumerate(words)}
        self.pad, self.bar, self.end_bar = 0, 1, 2
        self.position0 = self.ids["Position_0"]
        self.tempo0 = self.ids["Tempo_0"]
        self.pitch0 = self.ids[f"Pitch_{PITCH_RANGE[0]}"]
        self.drum0 = self.ids["Drum_0"]
        self.velocity0 = self.ids["Velocity_0"]
        self.duration1 = self.ids["Duration_1"]
        self.kind = np.empty(len(words), dtype=object)
        for i, w in enumerate(words):
            self.kind[i] = w.split("_")[0]

    def __len__(self) -> int:
        return len(self.words)

    # --- one token -------------------------------------------------------------------------------
    def position(self, s: int) -> int:
        return self.position0 + int(s)

    def tempo(self, c: int) -> int:
        return self.tempo0 + int(c)

    def pitch(self, p: int) -> int:
        return self.pitch0 + int(p) - PITCH_RANGE[0]

    def drum(self, c: int) -> int:
        return self.drum0 + int(c)

    def velocity(self, b: int) -> int:
        return self.velocity0 + int(b)

    def duration(self, d: int) -> int:
        return self.duration1 + int(d) - 1

    def ranges(self) -> dict[str, range]:
        """Token id range of each word kind."""
        return {
            "Position": range(self.position0, self.position0 + STEPS_PER_BAR),
            "Tempo": range(self.tempo0, self.tempo0 + N_TEMPO_CLASSES),
            "Pitch": range(self.pitch0, self.pitch0 + PITCH_RANGE[1] - PITCH_RANGE[0] + 1),
            "Drum": range(self.drum0, self.drum0 + N_DRUM_CLASSES),
            "Velocity": range(self.velocity0, self.velocity0 + N_VELOCITY_BINS),
            "Duration": range(self.duration1, self.duration1 + MAX_DURATION_STEPS),
        }

    def value(self, token: int) -> int:
        """The number a Position/Tempo/Pitch/Drum/Velocity/Duration token carries."""
        return int(self.words[token].rsplit("_", 1)[1])

    def to_json(self) -> str:
        return json.dumps({"words": list(self.words)}, indent=1)

    # --- bars ------------------------------------------------------------------------------------
    def encode_notes(self, notes: Iterable[BarNote], max_len: int) -> list[int]:
        """An instrument bar -> tokens (``Bar`` ... ``EndBar``), at most ``max_len`` long.

        Notes are clipped to the vocabulary's ranges, sorted by (step, pitch), duplicates of one
        (step, pitch) dropped (the first in (step, pitch, -velocity) order kept); when the bar would
        overflow, the remaining notes are left out.
        """
        seen: set[tuple[int, int]] = set()
        kept: list[BarNote] = []
        for n in sorted(notes, key=lambda n: (n.step, n.pitch, -n.velocity)):
            if not (0 <= n.step < STEPS_PER_BAR and PITCH_RANGE[0] <= n.pitch <= PITCH_RANGE[1]):
                continue
            if (n.step, n.pitch) in seen:
                continue
            seen.add((n.step, n.pitch))
            kept.append(n)
        out = [self.bar]
        step = -1
        for n in kept:
            need = 3 + (1 if n.step != step else 0)
            if len(out) + need + 1 > max_len:
                break
            if n.step != step:
                out.append(self.position(n.step))
                step = n.step
            d = int(np.clip(n.duration, 1, MAX_DURATION_STEPS))
            out += [self.pitch(n.pitch), self.velocity(velocity_bin(n.velocity)), self.duration(d)]
        out.append(self.end_bar)
        return out

    def decode_notes(self, tokens: Sequence[int]) -> list[BarNote]:
        """Tokens of one instrument bar -> notes; tolerant (an incomplete note is skipped)."""
        notes: list[BarNote] = []
        step, pitch, vel = -1, -1, -1
        for t in tokens:
            t = int(t)
            kind = self.kind[t]
            if kind == "EndBar":
                break
            if kind == "Position":
                step, pitch, vel = self.value(t), -1, -1
            elif kind == "Pitch":
                pitch, vel = self.value(t), -1
            elif kind == "Velocity" and pitch >= 0:
                vel = bin_velocity(self.value(t))
            elif kind == "Duration" and step >= 0 and pitch >= 0 and vel >= 0:
                notes.append(BarNote(step, pitch, vel, self.value(t)))
                pitch, vel = -1, -1
        return notes

    def encode_drums(self, bar: DrumBar, max_len: int) -> list[int]:
        """A drum bar (9 x 16 hits and velocities, tempo) -> tokens, at most ``max_len`` long.

        Hits are written by step, then class; a bar that would overflow drops its last hits.
        """
        hits = np.asarray(bar.hits, dtype=bool)
        if hits.shape != (N_DRUM_CLASSES, STEPS_PER_BAR):
            raise ValueError(f"a drum bar is (9, 16), got {hits.shape}")
        vel = np.asarray(bar.velocity, dtype=np.float64)
        out = [self.bar, self.tempo(tempo_class(bar.tempo_bpm))]
        for s in range(STEPS_PER_BAR):
            classes = np.flatnonzero(hits[:, s])
            if len(classes) == 0:
                continue
            if len(out) + 1 + 2 + 1 > max_len:
                break
            out.append(self.position(s))
            for c in classes:
                if len(out) + 2 + 1 > max_len:
                    break
                midi_v = int(np.clip(round(vel[c, s] * 127), 1, 127))
                out += [self.drum(int(c)), self.velocity(velocity_bin(midi_v))]
        out.append(self.end_bar)
        return out

    def decode_drums(self, tokens: Sequence[int]) -> DrumBar:
        """Tokens of one drum bar -> hits, velocities (bin centres / 127) and tempo (class centre)."""
        hits = np.zeros((N_DRUM_CLASSES, STEPS_PER_BAR), bool)
        vel = np.zeros((N_DRUM_CLASSES, STEPS_PER_BAR), np.float32)
        tempo, step, drum = 120.0, -1, -1
        for t in tokens:
            kind = self.kind[int(t)]
            if kind == "EndBar":
                break
            if kind == "Tempo":
                tempo = class_tempo(self.value(int(t)))
            elif kind == "Position":
                step, drum = self.value(int(t)), -1
            elif kind == "Drum" and step >= 0:
                drum = self.value(int(t))
            elif kind == "Velocity" and drum >= 0:
                hits[drum, step] = True
                vel[drum, step] = bin_velocity(self.value(int(t))) / 127.0
                drum = -1
        return DrumBar(hits, vel, tempo)


VOCAB = RemiVocabulary()


class RemiGrammar:
    """Which tokens may come next in an instrument bar: the decoder samples only from these.

    State machine over ``Bar (Position (Pitch Velocity Duration)+)* EndBar``: positions strictly
    increase, pitches strictly increase within a position, a note starts only when it can be
    finished (3 tokens) and the bar still closed within ``max_len``; after ``EndBar`` only ``<pad>``.
    ``pitch_range`` (inclusive) limits the pitches an instrument may play. ``reset(must_play=True)``
    forbids an empty bar (``Bar EndBar``): the bar holds at least one note.
    """

    def __init__(self, max_len: int, pitch_range: tuple[int, int] = PITCH_RANGE,
                 vocab: RemiVocabulary = VOCAB) -> None:
        if max_len < 2:
            raise ValueError("a bar needs at least Bar and EndBar")
        self.vocab, self.max_len = vocab, int(max_len)
        r = vocab.ranges()
        self._pitch_ids = np.array([vocab.pitch(p) for p in range(pitch_range[0], pitch_range[1] + 1)])
        self._position = np.array(r["Position"])
        self._velocity = np.array(r["Velocity"])
        self._duration = np.array(r["Duration"])
        self.reset()

    def reset(self, must_play: bool = False) -> None:
        self.length = 0
        self.last = -1  # last token id
        self.step = -1
        self.pitch = -1
        self.done = False
        self.must_play = must_play

    def allowed(self) -> np.ndarray:
        """(V,) bool mask of the tokens allowed next."""
        v = self.vocab
        m = np.zeros(len(v), bool)
        if self.done:
            m[v.pad] = True
            return m
        if self.length == 0:
            m[v.bar] = True
            return m
        kind = v.kind[self.last]
        room = self.max_len - self.length  # tokens still allowed, EndBar included
        if kind in ("Bar", "Duration"):
            m[v.end_bar] = not (kind == "Bar" and self.must_play and room >= 5)
            if kind == "Duration" and room >= 4:  # Pitch Velocity Duration EndBar
                m[self._pitch_ids[self._pitch_ids > v.pitch(self.pitch)]] = True
            if room >= 5:  # Position Pitch Velocity Duration EndBar
                later = self._position > v.position(self.step) if self.step >= 0 else slice(None)
                m[self._position[later]] = True
        elif kind == "Position":
            m[self._pitch_ids] = True
        elif kind == "Pitch":
            m[self._velocity] = True
        elif kind == "Velocity":
            m[self._duration] = True
        return m

    def advance(self, token: int) -> None:
        """Take ``token`` as the next one (it must be allowed)."""
        token = int(token)
        if not self.allowed()[token]:
            raise ValueError(f"token {self.vocab.words[token]} is not allowed here")
        v = self.vocab
        kind = v.kind[token]
        if kind == "Position":
            self.step, self.pitch = v.value(token), -1
        elif kind == "Pitch":
            self.pitch = v.value(token)
        elif kind == "EndBar":
            self.done = True
        self.last = token
        self.length += 1
