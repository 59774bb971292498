"""Generator 2.0's dance vocabulary: step families off the beat, arm phrases, travel, style; 1.x unchanged."""

import dataclasses

import numpy as np
import pytest

from rhythmicnet.offline.beat_eval_set import TRAIN_CONFIG
from rhythmicnet.offline.dance_vocabulary import (
    FAMILY_GROUPS,
    HELDOUT_STEP_FAMILIES,
    STEP_FAMILIES,
    TRAIN_STEP_FAMILIES,
    arm_phrase,
    draw_style,
    step_channels,
    step_events,
    travel_and_turns,
)
from rhythmicnet.offline.synthetic_dancer import STEP_MOVES, DancerConfig, generate_clip


def test_family_groups_are_disjoint_and_the_held_out_ones_are_not_trained_on():
    groups = list(FAMILY_GROUPS.values())
    names = [f for g in groups for f in g]
    assert len(names) == len(set(names)) and set(names) == set(STEP_FAMILIES) | set(STEP_MOVES)
    assert not set(HELDOUT_STEP_FAMILIES) & set(TRAIN_STEP_FAMILIES)
    assert {f for f, _ in TRAIN_CONFIG.step_families} == set(TRAIN_STEP_FAMILIES)
    for f in STEP_FAMILIES.values():
        assert all(0 <= o < f.cycle_beats for o in f.onsets) and list(f.onsets) == sorted(f.onsets)
    # the held-out families all step off the beat somewhere or leave beats out: their steps are not the beats
    for name in HELDOUT_STEP_FAMILIES:
        f = STEP_FAMILIES[name]
        on_beats = {o for o in f.onsets if o == int(o)}
        assert len(on_beats) != len(f.onsets) or len(on_beats) < f.cycle_beats, name


def test_step_events_repeat_the_cycle_from_the_section_start():
    ev = step_events([(4, 12, "triple"), (12, 16, "and-steps")])
    assert [e for e, _ in ev] == [4, 4.5, 5, 6, 6.5, 7, 8, 8.5, 9, 10, 10.5, 11, 12.5, 13.5, 14.5, 15.5]
    assert {f for _, f in ev} == {"triple", "and-steps"}


def test_feet_land_on_the_onsets_and_the_hips_dip_after_each_landing():
    psi = np.arange(0, 16, 0.01)
    ev = step_events([(0, 16, "skip")])
    ch = step_channels(np.random.default_rng(0), psi, ev, np.ones(len(ev), bool), 1.75, 1.0)
    lift = ch["lift_l"] + ch["lift_r"]
    for at, _ in ev[1:]:
        i = int(round(at / 0.01))
        assert lift[i] < 1e-9  # on the floor at the landing
        assert lift[i - 10] > 0.0 or at - ev[0][0] < 0.2  # in the air just before it
    # one dip per landing, its bottom a little after the landing (the knees absorbing it); landings a beat
    # or more apart so that the dips do not merge
    ev = step_events([(0, 16, "six-over-eight")])
    d = step_channels(np.random.default_rng(0), psi, ev, np.ones(len(ev), bool), 1.75, 1.0)["drop"]
    peaks = [i for i in range(1, len(d) - 1) if d[i] > d[i - 1] and d[i] >= d[i + 1] and d[i] > 0.3 * d.max()]
    assert len(peaks) == len(ev)
    lags = psi[peaks] - np.array([e for e, _ in ev])
    assert np.all((lags > 0.03) & (lags < 0.2))


def test_inactive_steps_do_not_move():
    psi = np.arange(0, 8, 0.01)
    ev = step_events([(0, 8, "cha-cha")])
    ch = step_channels(np.random.default_rng(1), psi, ev, np.zeros(len(ev), bool), 1.75, 1.0)
    assert all(np.allclose(v, 0.0) for k, v in ch.items() if k != "drop")


def test_arm_phrase_poses_change_off_the_beat_and_return_to_neutral():
    psi = np.arange(0, 16, 0.01)
    out = arm_phrase(np.random.default_rng(3), psi, 0, 16, 1.0, (0, 1))
    assert set(out) == {"flex_l", "abd_l", "elbow_l", "flex_r", "abd_r", "elbow_r"}
    assert abs(out["flex_l"][0]) < 1e-9 and abs(out["flex_l"][-1]) < 0.05
    assert np.ptp(out["flex_l"]) > 0.1


def test_travel_stays_within_reach_and_turns_come_back_or_go_full_circle():
    t = np.arange(0, 30, 1 / 30)
    sections = [(a, a + 4.0) for a in np.arange(0, 28, 4.0)]
    off, heading = travel_and_turns(np.random.default_rng(5), t, sections, 1.0, 0.8)
    assert np.all(np.hypot(off[:, 0], off[:, 2]) <= 0.8 + 1e-9) and np.ptp(off[:, 0]) > 0
    assert np.allclose(np.mod(heading[-1] + 1e-9, np.pi / 2), 0.0, atol=1e-6)  # quarter turns come back


def test_style_sets_who_carries_the_beat():
    rng = np.random.default_rng(0)
    styles = [draw_style(rng) for _ in range(300)]
    carriers = {s.carrier for s in styles}
    assert carriers == {"hips", "arms", "head", "torso", "feet"}
    for s in styles:
        if s.carrier == "feet":
            assert s.step_prob == 0.95 and s.bounce_prob < 0.5
        if s.carrier == "hips":
            assert s.bounce_prob == 0.85
        assert s.sharpness[0] < s.sharpness[1]


def test_vocabulary_2_clips_use_the_families_they_are_given():
    cfg = dataclasses.replace(TRAIN_CONFIG, duration_s=(20.0, 20.0), step_families=(("triple", 1.0),),
                              beat_carriers=(("feet", 1.0),), distractor_share=(0.0, 0.0), jump_prob=0.0)
    d = generate_clip(cfg, 11)
    assert d.metadata.style == "feet" and "triple" in d.metadata.moves
    assert not set(d.metadata.moves) & (set(STEP_FAMILIES) - {"triple"}) and not set(d.metadata.moves) & set(STEP_MOVES)
    again = generate_clip(cfg, 11)
    np.testing.assert_array_equal(d.sequence.keypoints, again.sequence.keypoints)


def test_training_config_never_shows_a_held_out_family_and_vocabulary_1_none_of_2():
    seen = set()
    for seed in range(40):
        seen |= set(generate_clip(dataclasses.replace(TRAIN_CONFIG, duration_s=(8.0, 8.0)), seed).metadata.moves)
    assert not seen & set(HELDOUT_STEP_FAMILIES) and seen & set(TRAIN_STEP_FAMILIES) - set(STEP_MOVES)
    old = dataclasses.replace(TRAIN_CONFIG, duration_s=(8.0, 8.0), dance_vocabulary=1)
    for seed in range(10):
        m = generate_clip(old, seed).metadata
        assert m.style == "" and not set(m.moves) & (set(STEP_FAMILIES) | {"arm-phrase"})


def test_config_rejects_unknown_families():
    with pytest.raises(ValueError):
        DancerConfig(step_families=(("moonwalk", 1.0),))
    with pytest.raises(ValueError):
        DancerConfig(dance_vocabulary=3)


def test_generalisation_sets_are_frozen_disjoint_and_use_only_held_out_families():
    from rhythmicnet.offline.beat_eval_set import (
        EVAL_SET,
        GENERALISATION_FINGERPRINT,
        GENERALISATION_SETS,
        TRAIN_SEED_LIMIT,
        clip_fingerprint,
        set_clips,
    )

    names = [d.name for d in GENERALISATION_SETS]
    assert names == ["generalisation-aist", "generalisation-loguniform", "half-double-time"]
    seeds = [s for d in GENERALISATION_SETS for s in d.seeds]
    assert len(seeds) == len(set(seeds)) == 300 and min(seeds) > max(EVAL_SET.seeds) > TRAIN_SEED_LIMIT
    aist, logu, half = GENERALISATION_SETS
    assert aist.config.aist_tempo_share == 1.0 and logu.config.aist_tempo_share == 0.0
    assert len(aist.seeds) == len(logu.seeds) == 100
    for d in (aist, logu):
        assert {f for f, _ in d.config.step_families} == set(HELDOUT_STEP_FAMILIES)
        got = tuple(clip_fingerprint(c) + (c.metadata.moves, c.metadata.style) for c in set_clips(d, 3))
        assert got == GENERALISATION_FINGERPRINT[d.name]
        for c in set_clips(d, 3):
            assert not set(c.metadata.moves) & (set(TRAIN_STEP_FAMILIES))
    assert half.config.rate_change_prob == 1.0 and half.config.step_families == (("double", 1.0),)


def test_the_training_clips_whose_turn_window_rounded_below_its_section_generate():
    """Training batch 134 (12 s clips 2144-2159) drew a turn as long as its section; ``b - dur`` rounded below
    ``a`` and numpy refused the draw, which stopped a training run."""
    from rhythmicnet.offline.beat_eval_set import training_clip

    cfg = dataclasses.replace(TRAIN_CONFIG, duration_s=(12.0, 12.0))
    for i in range(134 * 16, 135 * 16):
        assert training_clip(i, cfg).sequence.num_frames > 0
