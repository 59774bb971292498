"""The danceir peer baseline (offline/danceir_baseline.py): the adapter on synthetic dancers, and its eval row."""

import dataclasses
import json

import numpy as np
import pytest

from rhythmicnet.offline.danceir_baseline import danceir_available, danceir_tempo, fill_all_gaps
from rhythmicnet.offline.synthetic_dancer import DancerConfig, generate_clip
from rhythmicnet.offline.tempo_ratios import tempo_ratio_classes

needs_danceir = pytest.mark.skipif(not danceir_available(), reason="the [eval] extra (scripts/setup.sh installs it)")

#: One steady knee-bend bounce on every beat, nothing else: a clear, constant tempo, a near-frontal camera.
STEADY_BOUNCE = DancerConfig(
    duration_s=(15.0, 15.0), aist_tempo_share=0.0, tempo_drift=(0.0, 0.0), bounce_prob=1.0, rate_change_prob=0.0,
    accent_prob=0.0, step_prob=0.0, arm_prob=0.0, head_prob=0.0, torso_prob=0.0, syncopation_prob=0.0, jump_prob=0.0,
    distractor_share=(0.0, 0.0), yaw_deg=(0.0, 10.0), fps=(30.0, 30.0), common_fps_share=1.0,
    irregular_times_share=0.0, frame_drop_prob=(0.0, 0.0), joint_drop_prob=(0.0, 0.0), outlier_prob=(0.0, 0.0),
    person_lost_share=0.0,
    dance_vocabulary=1, observation_model=1,  # generator 1.x's moves and noise: only the bounce moves
)


@needs_danceir
def test_tempo_of_a_synthetic_dancer_lies_in_the_range():
    had_alias = hasattr(np, "complex_")  # NumPy 1 has it, NumPy 2 not
    dance = generate_clip(DancerConfig(duration_s=(8.0, 8.0)), seed=3)
    tempo = danceir_tempo(dance.sequence)
    assert 60.0 <= tempo <= 180.0
    assert hasattr(np, "complex_") == had_alias  # the alias lives only for the danceir call


@needs_danceir
@pytest.mark.parametrize(("bpm", "expected"), [(65.0, "correct"), (140.0, "x1/2")])
def test_steady_bounce(bpm, expected):
    """A slow bounce is found within 4 %; a fast one at half its tempo, at 30 fps. danceir 1.0.0 thins each
    anchor group to one anchor per 24 frames (0.4 s at its assumed 60 fps, 0.8 s at 30 fps), so a beat
    faster than 75 BPM loses every other anchor, and 140 BPM becomes an anchor train at 70 BPM, inside the
    60-180 range: the tempogram settles there (8 of 8 seeds tried; 65 BPM: 8 of 8 within 4 %)."""
    for seed in (0, 2):
        dance = generate_clip(dataclasses.replace(STEADY_BOUNCE, tempo_bpm=(bpm, bpm)), seed)
        tempo = danceir_tempo(dance.sequence)
        assert tempo_ratio_classes([tempo], [dance.tempo_bpm])[0] == expected, (seed, tempo)


@needs_danceir
def test_still_body_has_no_tempo():
    from rhythmicnet.models.keypoints import KeypointSequence

    n = 150
    seq = KeypointSequence(np.full((n, 17, 2), 100.0, np.float32), np.ones((n, 17), np.float32), np.arange(n) / 30.0)
    assert np.isnan(danceir_tempo(seq))  # danceir finds no anchor: no tempo, not a crash


def test_fill_all_gaps():
    kp = np.zeros((5, 3, 2))
    kp[:, 0, 0] = [0, 99, 2, 99, 99]
    kp[:, 1] = 10.0
    conf = np.array([[1, 1, 0], [0, 1, 0], [1, 1, 0], [0, 1, 0], [0, 1, 0]], float)
    out = fill_all_gaps(kp, conf)
    np.testing.assert_allclose(out[:, 0, 0], [0, 1, 2, 2, 2])  # interpolated, then held at the end
    np.testing.assert_allclose(out[:, 2, 0], (out[:, 0, 0] + 10.0) / 2)  # never seen: the mean of the others
    with pytest.raises(ValueError, match="no joint"):
        fill_all_gaps(kp, np.zeros((5, 3)))


@needs_danceir
def test_eval_beat_row(tmp_path, capsys):
    from rhythmicnet.cli import main

    js = tmp_path / "t.json"
    assert main(["eval", "beat", "--rows", "onset", "danceir", "--clips", "2", "--json", str(js), "-q"]) == 0
    text = capsys.readouterr().out
    assert "Tempo errors by ratio" in text and "danceir (tempo only, 30 fps)" in text
    rows = {r["model"]: r for r in json.loads(js.read_text())}
    d = rows["danceir"]
    assert d["n_clips"] == 2 and d["f_measure"] is None and 0.0 <= d["acc1"] <= d["acc2"] <= 100.0
    assert len(d["tempo_est"]) == len(d["tempo_ref"]) == 2
    t = d["tempo_errors"]
    assert t["acc1"] == pytest.approx(d["acc1"]) and t["listed"] + t["other"] == pytest.approx(t["error"])
    assert rows["onset"]["tempo_errors"]["acc1"] == pytest.approx(rows["onset"]["acc1"])


def test_without_danceir_the_row_says_how_to_install_it(monkeypatch):
    from rhythmicnet.errors import RhythmicNetError
    from rhythmicnet.offline import danceir_baseline, eval_beat

    monkeypatch.setattr(eval_beat, "danceir_available", lambda: False)
    (row,) = eval_beat.evaluate_rows(["danceir"], n_clips=1, progress=False)
    assert row["missing"] and "pip install 'rhythmicnet[eval]'" in row["reason"]
    assert "pip install" in eval_beat.format_table([row])
    monkeypatch.setattr(danceir_baseline, "danceir_available", lambda: False)
    with pytest.raises(RhythmicNetError, match=r"rhythmicnet\[eval\]"):
        danceir_tempo(generate_clip(DancerConfig(duration_s=(4.0, 4.0)), seed=1).sequence)
