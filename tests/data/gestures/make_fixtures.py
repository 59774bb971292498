"""Make the start/stop gesture fixtures (run once; the outputs are committed beside this script).

``jumping_jacks_live.npz``: the keypoints ``rhythmicnet live --video offline/examples/jumping_jacks.mp4`` sees:
every frame of the bundled clip, downscaled to 640 px as :class:`~rhythmicnet.realtime.video_input.VideoSource`
does, through the live pose estimator (:class:`~rhythmicnet.realtime.video_input.PoseStream`, mediapipe).
The man's arms go overhead on every jump (and in the backflip); the gesture must never fire on it.

``arms_up_start_stop.npz``: the clip's real keypoints twice in a row (the second pass 7.67 s later, as
``--loop`` plays it), each pass with one start/stop motion edited in. Where he stands still after the jumps
(from 2.6 s, for 1.2 s), both arms (elbows and wrists) are replaced by the arms of the clip's own arms-up
frame (frame 54, the top of the second jump, wrists highest), moved with the shoulders (each frame's
shoulder midpoint, so the shoulders' own tracking noise carries into the arms) and scaled by each frame's
torso length (his shoulders narrow as he turns). Everything else is untouched. The gesture must
fire twice (stop, then start), ~1 s into each hold, and nowhere else.

Run: ``.venv/bin/python tests/data/gestures/make_fixtures.py``.
"""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np

from rhythmicnet.models.keypoints import KeypointSequence
from rhythmicnet.offline.keypoint_io import save_keypoints

HERE = Path(__file__).resolve().parent
CLIP = HERE.parents[2] / "offline" / "examples" / "jumping_jacks.mp4"
ARMS = (7, 8, 9, 10)  # elbows, wrists
HOLD_AT_S = 2.6
HOLD_LEN_S = 1.2
ARMS_UP_FRAME = 54


def live_keypoints() -> KeypointSequence:
    from rhythmicnet.realtime.video_input import PoseStream

    cap = cv2.VideoCapture(str(CLIP))
    fps = float(cap.get(cv2.CAP_PROP_FPS) or 30.0)
    pose = PoseStream()
    kps, confs, times = [], [], []
    i = 0
    size = None
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        h, w = frame.shape[:2]
        if max(h, w) > 640:
            s = 640 / max(h, w)
            frame = cv2.resize(frame, (int(w * s), int(h * s)), interpolation=cv2.INTER_AREA)
        size = (frame.shape[1], frame.shape[0])
        kp, conf = pose.estimate(frame, i / fps)
        kps.append(kp)
        confs.append(conf)
        times.append(i / fps)
        i += 1
    pose.close()
    return KeypointSequence(np.stack(kps).astype(np.float32), np.stack(confs).astype(np.float32),
                            np.asarray(times), size)


def _torso(kp: np.ndarray) -> float:
    return float(np.linalg.norm(kp[[5, 6]].mean(0) - kp[[11, 12]].mean(0)))


def with_hold(seq: KeypointSequence) -> KeypointSequence:
    kp = seq.keypoints.copy()
    conf = seq.confidence.copy()
    arms = list(ARMS)
    ref = kp[ARMS_UP_FRAME]
    ref_mid, ref_torso = ref[[5, 6]].mean(0), _torso(ref)
    for f in np.nonzero((seq.times >= HOLD_AT_S) & (seq.times < HOLD_AT_S + HOLD_LEN_S))[0]:
        kp[f, arms] = kp[f, [5, 6]].mean(0) + (ref[arms] - ref_mid) * (_torso(kp[f]) / ref_torso)
        conf[f, arms] = np.maximum(conf[f, arms], conf[ARMS_UP_FRAME, arms])
    return KeypointSequence(kp, conf, seq.times.copy(), seq.image_size)


def twice(seq: KeypointSequence) -> KeypointSequence:
    period = float(seq.times[-1] + np.median(np.diff(seq.times)))
    return KeypointSequence(np.concatenate([seq.keypoints] * 2), np.concatenate([seq.confidence] * 2),
                            np.concatenate([seq.times, seq.times + period]), seq.image_size)


def main() -> None:
    t0 = time.time()
    live = HERE / "jumping_jacks_live.npz"
    if live.is_file():  # the pose pass is the slow part (~30 s): reuse it
        from rhythmicnet.offline.keypoint_io import load_keypoints

        seq = load_keypoints(live)
    else:
        seq = live_keypoints()
        save_keypoints(live, seq)
    save_keypoints(HERE / "arms_up_start_stop.npz", twice(with_hold(seq)))
    print(f"{seq.num_frames} frames, image {seq.image_size}, {time.time() - t0:.1f} s")


if __name__ == "__main__":
    main()
