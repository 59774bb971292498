"""Drum2Music, the stage object: drum bars in, piano or guitar notes out, one bar at a time.

``render`` (offline) and ``live`` call the same object: :meth:`Drum2Music.reset`, then
:meth:`Drum2Music.next_bar` per drum bar (the Transformer-XL memory of earlier drum and instrument bars
is kept between calls), or :meth:`Drum2Music.generate` for all bars at once (the same loop). Drum bars
come from Rhythm2Drum's :class:`~.drum_grid.DrumGrid` (:func:`drum_bars_from_grid`) or from MIDI.
The network is :class:`~.music_transformer.Drum2MusicModel`; sampling is seeded, so a seed and the same
drums give the same part.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rhythmicnet.errors import WeightsError
from rhythmicnet.models.drum_grid import DrumGrid
from rhythmicnet.models.graphs import GraphFactory, torch_graph
from rhythmicnet.models.music_decoding import MusicMemory, decode_bar, empty_memory, music_graphs
from rhythmicnet.models.music_transformer import (
    INSTRUMENT_PITCH_RANGE,
    INSTRUMENTS,
    Drum2MusicConfig,
    Drum2MusicModel,
    SamplingConfig,
    encode_drum_bars,
)
from rhythmicnet.models.remi import STEPS_PER_BAR, VOCAB, BarNote, DrumBar, RemiGrammar
from rhythmicnet.models.weights import WEIGHTS_DIR, load_into, load_manifest

__all__ = ["Drum2Music", "MusicState", "NO_MEMORY_NAME", "drum_bars_from_grid", "has_music_model", "music_model_name"]

#: GM programs written by default: acoustic grand piano; for guitar the manifest names the program
#: the training data mostly has (this is the fallback when it does not).
DEFAULT_PROGRAMS = {"piano": 0, "guitar": 29}
#: The reference implementation's sampling: temperature 1.2, top-k 5; seed 0.
DEFAULT_SAMPLING = SamplingConfig()


NO_MEMORY_NAME = "drum2music_no_memory"


def has_music_model(weights_dir: str | Path = WEIGHTS_DIR, name: str = "drum2music") -> bool:
    d = Path(weights_dir)
    return (d / f"{name}.json").is_file() and (d / f"{name}.pt").is_file()


def music_model_name(weights_dir: str | Path, instrument: str) -> str | None:
    """The weights that play ``instrument`` in ``weights_dir``: ``drum2music_<instrument>`` (a copy of the
    shared model fine-tuned for that instrument) when it is there, else the shared ``drum2music``;
    None when neither is."""
    for name in (f"drum2music_{instrument}", "drum2music"):
        if has_music_model(weights_dir, name):
            return name
    return None


def drum_bars_from_grid(grid: DrumGrid, tempo_bpm: float | None = None) -> list[DrumBar]:
    """Split a drum grid (9, S) into bars (S padded up to whole bars) for the encoder."""
    g = grid.padded_to_bars()
    bpm = float(tempo_bpm if tempo_bpm is not None else g.bpm)
    return [DrumBar(g.hits[:, i * STEPS_PER_BAR : (i + 1) * STEPS_PER_BAR],
                    g.velocities[:, i * STEPS_PER_BAR : (i + 1) * STEPS_PER_BAR], bpm)
            for i in range(g.num_bars)]


@dataclass(frozen=True)
class MusicState:
    """Drum2Music between two bars: the segment memory (backend values) and the sampler's RNG state
    (``torch.Generator.get_state()``); nothing else, so a bar is a pure function of (state, drum bar)."""

    memory: MusicMemory
    rng: torch.Tensor

    @property
    def bars(self) -> int:
        return self.memory.bars


class Drum2Music:
    """The trained Drum2Music stage for one instrument. Build with :meth:`load`.

    ``graphs`` is the backend: :func:`~.graphs.torch_graph` (default) or ``export``'s ONNX factory.
    """

    def __init__(self, model: Drum2MusicModel, instrument: str = "piano", *, program: int | None = None,
                 sampling: SamplingConfig = DEFAULT_SAMPLING, manifest: dict[str, Any] | None = None,
                 name: str = "drum2music", graphs: GraphFactory = torch_graph) -> None:
        if instrument not in INSTRUMENTS:
            raise ValueError(f"instrument is one of {INSTRUMENTS}, got {instrument!r}")
        self.model = model.eval()
        self.instrument = instrument
        self.instrument_id = INSTRUMENTS.index(instrument)
        self.manifest = manifest or {}
        self.name = name  # of the weights, for reports
        programs = {**DEFAULT_PROGRAMS, **self.manifest.get("programs", {})}
        self.program = int(program if program is not None else programs[instrument])
        self.sampling = sampling
        c = model.config
        self.grammar = RemiGrammar(c.max_bar_len, INSTRUMENT_PITCH_RANGE[instrument])
        self.graphs = music_graphs(model, graphs, name)
        self.backend = self.graphs.step.backend
        self.reset()

    @classmethod
    def load(cls, weights_dir: str | Path = WEIGHTS_DIR, instrument: str = "piano", *, program: int | None = None,
             sampling: SamplingConfig = DEFAULT_SAMPLING, name: str | None = None,
             graphs: GraphFactory = torch_graph) -> Drum2Music:
        """Load ``<name>.json`` + ``<name>.pt`` from ``weights_dir`` (default: :func:`music_model_name`'s
        choice for ``instrument``)."""
        d = Path(weights_dir)
        name = name or music_model_name(d, instrument) or "drum2music"
        manifest = load_manifest(d / f"{name}.json")
        trained_for = manifest.get("data", {}).get("instruments", INSTRUMENTS)
        if instrument not in trained_for:
            raise WeightsError(f"{d / name}: trained for {', '.join(trained_for)} only, not {instrument}")
        try:
            config = Drum2MusicConfig.from_dict(manifest["config"])
        except (KeyError, TypeError, ValueError) as e:
            raise WeightsError(f"{d / name}.json: corrupt weights manifest ({e})") from e
        model = Drum2MusicModel(config)
        load_into(model, d / f"{name}.pt")
        return cls(model, instrument, program=program, sampling=sampling, manifest=manifest, name=name, graphs=graphs)

    def initial_state(self, seed: int | None = None) -> MusicState:
        """The state of a new piece: empty memory, the sampler seeded with ``seed`` or the sampling config's."""
        s = seed if seed is not None else self.sampling.seed
        generator = torch.Generator()
        if s is None:
            generator.seed()
        else:
            generator.manual_seed(int(s))
        return MusicState(empty_memory(self.model), generator.get_state())

    def step(self, state: MusicState, drum_bar: DrumBar) -> tuple[list[int], MusicState]:
        """The instrument bar (REMI tokens ``Bar .. EndBar``) that goes with ``drum_bar``, and the state after
        it. Pure: ``state`` is not changed, and the same state and bar give the same tokens."""
        drums = encode_drum_bars([drum_bar], self.model.config.max_drum_len).numpy()
        generator = torch.Generator()
        generator.set_state(state.rng)
        tokens, memory = decode_bar(self.graphs, drums, self.instrument_id, state.memory, self.grammar,
                                    self.sampling, generator)
        return tokens, MusicState(memory, generator.get_state())

    def reset(self, seed: int | None = None) -> None:
        """Forget the memory (a new piece); reseed the sampler (``seed`` or the sampling config's)."""
        self.state = self.initial_state(seed)

    def next_bar(self, drum_bar: DrumBar) -> list[BarNote]:
        """The instrument notes of the bar that goes with ``drum_bar``; the memory moves on by one bar."""
        tokens, self.state = self.step(self.state, drum_bar)
        return VOCAB.decode_notes(tokens)

    def process_online(self, drum_bar: DrumBar) -> list[BarNote]:
        """Streaming contract: one bar with the kept state (= :meth:`next_bar`)."""
        return self.next_bar(drum_bar)

    def process_offline(self, drum_bars: Sequence[DrumBar]) -> list[list[BarNote]]:
        """Streaming contract: every bar from a fresh state (= :meth:`generate`)."""
        return self.generate(drum_bars)

    def generate(self, drum_bars: Sequence[DrumBar], *, progress: Any = None) -> list[list[BarNote]]:
        """All bars from a fresh memory (``reset`` first, same seed): one list of notes per drum bar.

        ``progress``: an optional callable taking the number of bars done (e.g. a tqdm ``update``).
        """
        self.reset()
        out = []
        for bar in drum_bars:
            out.append(self.next_bar(bar))
            if progress is not None:
                progress(1)
        return out


def notes_to_array(bars: Sequence[Sequence[BarNote]]) -> np.ndarray:
    """Bars of notes -> (N, 4) int array of (absolute step, pitch, velocity, duration)."""
    rows = [(i * STEPS_PER_BAR + n.step, n.pitch, n.velocity, n.duration) for i, bar in enumerate(bars) for n in bar]
    return np.array(rows, dtype=np.int64).reshape(-1, 4)
