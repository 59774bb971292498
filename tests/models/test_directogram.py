import numpy as np

from rhythmicnet.models.directogram import KinematicOffsetStream, directogram, kinematic_offsets


def test_eq1_overlapping_bins():
    # One joint moving at 0 rad with speed 2: bins 0 (distance 0), 1 and 11 (distance exactly 2pi/12) count it.
    vel = np.array([[[2.0, 0.0]]])
    d = directogram(vel, np.ones((1, 1), bool))
    assert d.shape == (1, 12)
    np.testing.assert_allclose(d[0, [0, 1, 11]], 2.0)
    assert np.count_nonzero(d) == 3
    # Between two centres (15 degrees): the two nearest bins only.
    a = np.deg2rad(15)
    d = directogram(np.array([[[np.cos(a), np.sin(a)]]]), np.ones((1, 1), bool))
    assert set(np.flatnonzero(d[0])) == {0, 1}


def test_unseen_joints_do_not_count():
    vel = np.ones((1, 3, 2))
    valid = np.array([[True, False, True]])
    d = directogram(vel, valid)
    np.testing.assert_allclose(d.sum(), 2 * np.sqrt(2) * 2)  # two joints, each in two bins


def test_kinematic_offsets_respond_to_acceleration_only():
    t = 40
    kp = np.zeros((t, 17, 2))
    kp[:, :, 0] = np.arange(t)[:, None] * 0.1  # constant velocity: no acceleration after the start
    kp[25:, 9, 1] += 1.0  # a wrist jumps at frame 25
    conf = np.ones((t, 17))
    ko = kinematic_offsets(kp, conf)
    assert ko.shape == (t,)
    assert ko[0] == ko[1] == 0
    assert np.argmax(ko[3:]) + 3 == 25
    assert np.all(ko[3:25] < 1e-9)


def test_stream_equals_offline_and_carries_state():
    rng = np.random.default_rng(0)
    kp = rng.normal(size=(50, 17, 2))
    conf = (rng.uniform(size=(50, 17)) > 0.1).astype(float)
    off = kinematic_offsets(kp, conf)
    s = KinematicOffsetStream()
    whole = s.process_online(kp, conf)
    np.testing.assert_allclose(whole, off, atol=1e-12)
    s.reset()
    by_frame = np.concatenate([s.process_online(kp[i : i + 1], conf[i : i + 1]) for i in range(50)])
    np.testing.assert_allclose(by_frame, off, atol=1e-12)
    again = s.process_online(kp, conf)  # no reset: the first frames see the previous pass's last frame
    assert not np.allclose(again, off)
