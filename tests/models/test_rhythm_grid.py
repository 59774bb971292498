import numpy as np
import pytest

from rhythmicnet.models.rhythm_grid import compose_rhythm, sixteenth_grid, snap_to_steps


def test_grid_splits_each_interval_in_four_and_follows_drift():
    beats = np.array([1.0, 1.5, 2.0, 2.6, 3.3])  # tempo slows down
    steps, first = sixteenth_grid(beats, duration=4.0)
    assert steps[first] == pytest.approx(1.0)
    np.testing.assert_allclose(steps[first : first + 17 : 4], beats)
    # Inside the third interval (2.0 -> 2.6) every step is 0.15 s.
    i = first + 8
    np.testing.assert_allclose(np.diff(steps[i : i + 5]), 0.15)
    # Pickup before the first beat uses the first interval; tail after the last uses the last one.
    np.testing.assert_allclose(steps[:first], 1.0 - 0.125 * np.arange(first, 0, -1))
    assert steps[0] >= 0 and steps[-1] < 4.0
    np.testing.assert_allclose(np.diff(steps[-3:]), 0.175)


def test_grid_needs_two_beats():
    with pytest.raises(ValueError, match="two beats"):
        sixteenth_grid(np.array([1.0]), 4.0)


def test_snap_to_nearest_step():
    steps = np.array([0.0, 0.1, 0.2, 0.35])
    np.testing.assert_array_equal(snap_to_steps(np.array([-0.3, 0.04, 0.06, 0.27, 0.28, 9.0]), steps),
                                  [0, 0, 1, 2, 3, 3])


def test_rhythm_is_beats_union_style():
    beats = np.array([0.5, 1.0, 1.5, 2.0, 2.5])
    rhythm = compose_rhythm(beats, style_times=np.array([0.76, 0.74, 1.62, 2.5]), duration=3.0)
    on = np.flatnonzero(rhythm.onsets)
    first = rhythm.first_downbeat_step
    assert rhythm.step_times[first] == pytest.approx(0.5)
    beat_steps = first + 4 * np.arange(5)
    assert set(beat_steps) <= set(on)
    # 0.74 and 0.76 snap to the same step (0.75): one onset; 2.5 coincides with a beat.
    assert set(on) - set(beat_steps) == {first + 2, first + 9}
    assert rhythm.density() == pytest.approx(7 / rhythm.num_steps)
    # Bars: bar 1 starts on the first beat, earlier steps are a pickup.
    assert rhythm.bar_of_step(first) == 0 and rhythm.bar_of_step(first - 1) == -1
    assert rhythm.step_in_bar(first + 17) == 1


def test_first_downbeat_can_be_given():
    beats = np.arange(8) * 0.5 + 0.5
    rhythm = compose_rhythm(beats, np.zeros(0), duration=4.5, first_downbeat=1.5)
    assert rhythm.step_times[rhythm.first_downbeat_step] == pytest.approx(1.5)
