"""The networks of ``render``, loaded once per process and reused for every clip it renders.

A batch worker (:mod:`.batch_worker`) renders many clips; loading the beat network, Rhythm2Drum and
Drum2Music (and opening their ONNX Runtime sessions) for each clip would repeat the same work. A
:class:`LoadedModels` keeps them, keyed by what defines them: the weights folder, the backend's graph
factory and, for Drum2Music, the instrument, program and sampling settings.

Reuse never changes a clip's result: the models are stateless between clips. The drum performer is
made per clip from the loaded Rhythm2Drum (``Rhythm2Drum.performer``, seeded from the clip's
settings), and Drum2Music is reset before each clip (memory emptied, sampler reseeded), exactly as
after a fresh load. A single ``rhythmicnet render`` does not use this: it loads each model once anyway.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rhythmicnet.models.beat_model import LearnedBeatModel
    from rhythmicnet.models.drum2music import Drum2Music
    from rhythmicnet.models.graphs import GraphFactory
    from rhythmicnet.models.music_transformer import SamplingConfig
    from rhythmicnet.models.rhythm2drum import Rhythm2Drum

__all__ = ["LoadedModels"]


class LoadedModels:
    """A per-process cache of loaded networks. ``graphs`` is the backend's factory (one per process and
    device, see ``export.backends.graph_factory``), so models on different backends never mix."""

    def __init__(self) -> None:
        self._models: dict[tuple[Hashable, ...], Any] = {}
        self.loads = 0  # how many models were loaded (a check that a worker loads each once)

    def _get(self, key: tuple[Hashable, ...], load: Callable[[], Any]) -> Any:
        if key not in self._models:  # a failed load raises and is not kept: the next clip tries again
            self._models[key] = load()
            self.loads += 1
        return self._models[key]

    def beat_net(self, weights_dir: str | Path, graphs: GraphFactory) -> LearnedBeatModel:
        from rhythmicnet.models.beat_model import LearnedBeatModel

        return self._get(("beat_full", str(weights_dir), graphs),  # type: ignore[no-any-return]
                         lambda: LearnedBeatModel.load("full", weights_dir, graphs))

    def rhythm2drum(self, weights_dir: str | Path, graphs: GraphFactory) -> Rhythm2Drum:
        from rhythmicnet.models.rhythm2drum import Rhythm2Drum

        return self._get(("rhythm2drum", str(weights_dir), graphs),  # type: ignore[no-any-return]
                         lambda: Rhythm2Drum.load(weights_dir, graphs=graphs))

    def drum2music(self, weights_dir: str | Path, instrument: str, program: int | None, sampling: SamplingConfig,
                   graphs: GraphFactory) -> Drum2Music:
        """Drum2Music for ``instrument``; the caller resets it before each clip."""
        from rhythmicnet.models.drum2music import Drum2Music

        return self._get(("drum2music", str(weights_dir), instrument, program, sampling, graphs),  # type: ignore[no-any-return]
                         lambda: Drum2Music.load(weights_dir, instrument, program=program, sampling=sampling,
                                                 graphs=graphs))
