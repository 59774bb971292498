"""The hand-annotated real clips: annotation files are sane; the onset baseline scores on both clips."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rhythmicnet.offline.real_beat_check import (
    ANNOTATIONS_DIR,
    CLIPS,
    evaluate_real_clips,
    format_real_table,
    load_annotation,
)

#: Plausible spacing of consecutive annotated beats (s). Jumping jacks: landings, two per cycle.
#: Squats: this clip's squats are slow with a held bottom, ~5 s apart (not ~2 s as first guessed).
SPACING = {"jumping_jacks": (0.3, 1.0), "squats": (1.5, 6.0)}
CLIP_FRAMES = {"jumping_jacks": 230, "squats": 65}


@pytest.mark.parametrize("name", CLIPS)
def test_annotation_files_are_sane(name: str) -> None:
    ann = load_annotation(ANNOTATIONS_DIR / f"{name}.json")
    duration = CLIP_FRAMES[name] / ann.fps
    assert len(ann.beats) >= 3
    assert np.all(np.diff(ann.beats) > 0)
    assert 0 <= ann.beats[0] and ann.beats[-1] < duration
    assert np.allclose(ann.beats, np.asarray(ann.frames) / ann.fps, atol=1e-3)  # beats rounded to 0.1 ms
    lo, hi = SPACING[name]
    gaps = np.diff(ann.beats)
    assert np.all((gaps >= lo) & (gaps <= hi)), gaps
    assert ann.span[0] <= ann.beats[0] and ann.beats[-1] <= ann.span[1]
    assert ann.method and ann.annotator_note and ann.uncertainty_frames >= 1


def test_jumping_jack_tags() -> None:
    ann = load_annotation(ANNOTATIONS_DIR / "jumping_jacks.json")
    assert set(ann.tags) == {"apart", "together"}
    assert len(ann.beats_tagged("together")) >= 2 and len(ann.beats_tagged("apart")) >= 2
    assert set(ann.reference_sets()) == {"all", "apart", "together"}


def test_annotation_videos_match(example_video_dir: Path) -> None:
    import cv2

    for name in CLIPS:
        ann = load_annotation(ANNOTATIONS_DIR / f"{name}.json")
        cap = cv2.VideoCapture(str(example_video_dir / ann.video))
        try:
            assert cap.isOpened()
            assert cap.get(cv2.CAP_PROP_FPS) == pytest.approx(ann.fps, rel=1e-3)
            assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == CLIP_FRAMES[name]
        finally:
            cap.release()


@pytest.fixture(scope="session")
def onset_records(shared_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    cache = tmp_path_factory.mktemp("real_clip_keypoints")
    missing_weights = tmp_path_factory.mktemp("no_weights")
    return evaluate_real_clips(shared_dir, ["onset", "full"], missing_weights, cache_dir=cache)


def test_onset_baseline_scores_both_clips(onset_records: list[dict[str, Any]]) -> None:
    onset = [r for r in onset_records if r["model"] == "onset"]
    assert {(r["clip"], r["reference"]) for r in onset} == {
        ("jumping_jacks", "all"), ("jumping_jacks", "apart"), ("jumping_jacks", "together"), ("squats", "all")}
    for r in onset:
        assert r["trimmed"] is False and r["min_beat_time"] == 0.0
        for k in ("f_measure", "cemgil", "cmlc", "cmlt", "amlc", "amlt", "f_measure_clip"):
            assert math.isfinite(r[k]) and 0.0 <= r[k] <= 100.0, (r["clip"], k, r[k])
        assert math.isfinite(r["tempo_ref_bpm"])
        assert r["n_est_clip"] >= r["n_est"] > 1  # the DBN keeps a steady beat through each clip
    # A learned row without weights is reported as skipped, not dropped silently.
    skipped = [r for r in onset_records if r["model"] == "full"]
    assert len(skipped) == 2 and all(r["missing"] and "no weights" in r["note"] for r in skipped)
    assert "onset baseline" in format_real_table(onset_records)
