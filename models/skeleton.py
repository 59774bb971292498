"""The COCO-17 skeleton: joint order, bones, the ST-GCN graph, mediapipe mapping and normalisation.

One definition used everywhere (pose extraction, style stream, beat network, preview drawing).

Keypoints are ``(T, 17, 2)`` in **pixels** with the aspect ratio kept, so the angle of a joint
velocity is a true angle (the directogram needs that). Normalisation only ever uses a centre and a
scale that change slowly — one per clip offline, a running estimate over >= 2 s live — never a
per-frame hip centre, which would erase the bounce of the body, the strongest beat cue.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

COCO17_NAMES: tuple[str, ...] = (
    "nose",
    "left_eye",
    "right_eye",
    "left_ear",
    "right_ear",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_hip",
    "right_hip",
    "left_knee",
    "right_knee",
    "left_ankle",
    "right_ankle",
)
NUM_JOINTS = len(COCO17_NAMES)

#: mediapipe Pose (33 landmarks) index for each COCO-17 joint, in COCO order.
MEDIAPIPE_TO_COCO17: tuple[int, ...] = (0, 2, 5, 7, 8, 11, 12, 13, 14, 15, 16, 23, 24, 25, 26, 27, 28)

#: Bones of the COCO-17 skeleton (undirected), used for drawing and for the ST-GCN graph.
COCO17_EDGES: tuple[tuple[int, int], ...] = (
    (0, 1), (0, 2), (1, 3), (2, 4),  # face
    (5, 6), (5, 7), (7, 9), (6, 8), (8, 10),  # shoulders and arms
    (5, 11), (6, 12), (11, 12),  # torso
    (11, 13), (13, 15), (12, 14), (14, 16),  # legs
    (0, 5), (0, 6),  # head to shoulders
)  # fmt: skip

#: The graph centre for the spatial partition. COCO-17 has no neck joint (ST-GCN's centre for
#: COCO-18), so a joint's distance to the centre is its hop count to the nearer shoulder.
CENTRE_JOINTS: tuple[int, ...] = (5, 6)

HIP_JOINTS: tuple[int, int] = (11, 12)
SHOULDER_JOINTS: tuple[int, int] = (5, 6)


def adjacency(edges: tuple[tuple[int, int], ...] = COCO17_EDGES, num_nodes: int = NUM_JOINTS) -> np.ndarray:
    """Symmetric 0/1 adjacency without self loops. Shape: (V, V)."""
    a = np.zeros((num_nodes, num_nodes), dtype=np.float32)
    for i, j in edges:
        a[i, j] = a[j, i] = 1.0
    return a


def hop_distance(a: np.ndarray, max_hop: int) -> np.ndarray:
    """Shortest-path hop count between joints, ``inf`` beyond ``max_hop``. Shape: (V, V)."""
    v = a.shape[0]
    dist = np.full((v, v), np.inf)
    reach = [np.linalg.matrix_power(a + np.eye(v), d) > 0 for d in range(max_hop + 1)]
    for d in range(max_hop, -1, -1):
        dist[reach[d]] = d
    return dist


def normalize_digraph(a: np.ndarray) -> np.ndarray:
    """Column-normalise ``a`` (A D^-1), as ST-GCN does. Shape: (V, V)."""
    deg = a.sum(axis=0)
    inv = np.where(deg > 0, 1.0 / np.maximum(deg, 1e-12), 0.0)
    return (a * inv[None, :]).astype(np.float32)


def spatial_partition(max_hop: int = 1) -> np.ndarray:
    """ST-GCN's "spatial" partition of the COCO-17 graph: root, centripetal, centrifugal.

    A neighbour j of i is centripetal when it is closer (in hops) to the body centre than i,
    centrifugal when further, and part of the root subset when equally close.

    Convention: ``A[k, j, i]`` weighs source joint j into output joint i (x_out[i] = sum_j x[j] A[k, j, i]).

    Returns:
        (K=3, V, V) float32 stack (root, centripetal, centrifugal) of normalised adjacency matrices;
        summed they give the column-normalised adjacency with self loops.
    """
    a = adjacency()
    v = a.shape[0]
    hop = hop_distance(a, max_hop)
    norm = normalize_digraph((hop <= max_hop).astype(np.float32))
    # Distance of every joint to the centre: the nearer of the centre joints.
    centre_dist = np.min(hop_distance(a, v)[list(CENTRE_JOINTS)], axis=0)
    root = np.zeros((v, v), np.float32)
    close = np.zeros((v, v), np.float32)
    far = np.zeros((v, v), np.float32)
    for i in range(v):
        for j in range(v):
            if hop[j, i] > max_hop:
                continue
            if centre_dist[j] == centre_dist[i]:
                root[j, i] = norm[j, i]
            elif centre_dist[j] < centre_dist[i]:
                close[j, i] = norm[j, i]
            else:
                far[j, i] = norm[j, i]
    return np.stack([root, close, far])


@dataclass(frozen=True)
class BodyFrame:
    """A slowly changing reference frame: keypoints_norm = (keypoints_px - centre) / scale."""

    centre: np.ndarray  # (2,) px
    scale: float  # px per body unit (torso length)


def _torso_length(kp: np.ndarray, conf: np.ndarray) -> np.ndarray:
    """Per-frame shoulder-midpoint to hip-midpoint distance, NaN where unseen. Shape: (T,)."""
    sh = kp[:, list(SHOULDER_JOINTS)].mean(axis=1)
    hp = kp[:, list(HIP_JOINTS)].mean(axis=1)
    ok = (conf[:, list(SHOULDER_JOINTS)].min(axis=1) > 0) & (conf[:, list(HIP_JOINTS)].min(axis=1) > 0)
    d = np.linalg.norm(sh - hp, axis=-1)
    return np.where(ok, d, np.nan)


def clip_body_frame(keypoints: np.ndarray, confidence: np.ndarray) -> BodyFrame:
    """One centre and scale for a whole clip (offline normalisation).

    Centre: the median position of the visible hips over the clip; scale: the median torso length.
    Both are clip-level so every bounce, sway and jump survives normalisation.

    Args:
        keypoints: (T, 17, 2) pixels.
        confidence: (T, 17) in [0, 1]; 0 means unseen.
    """
    hips_ok = confidence[:, list(HIP_JOINTS)].min(axis=1) > 0
    if hips_ok.any():
        centre = np.median(keypoints[hips_ok][:, list(HIP_JOINTS)].mean(axis=1), axis=0)
    else:
        vis = confidence > 0
        centre = np.median(keypoints[vis], axis=0) if vis.any() else np.zeros(2)
    torso = _torso_length(keypoints, confidence)
    scale = float(np.nanmedian(torso)) if np.isfinite(torso).any() else 1.0
    return BodyFrame(centre=np.asarray(centre, np.float64), scale=max(scale, 1e-6))


def apply_body_frame(keypoints: np.ndarray, frame: BodyFrame) -> np.ndarray:
    """Normalise pixel keypoints with a fixed body frame. Shape: (T, 17, 2) -> (T, 17, 2)."""
    return ((keypoints - frame.centre) / frame.scale).astype(np.float32)


def normalize_clip(keypoints: np.ndarray, confidence: np.ndarray) -> np.ndarray:
    """Offline normalisation with one clip-level centre and scale. Shape: (T, 17, 2)."""
    return apply_body_frame(keypoints, clip_body_frame(keypoints, confidence))


@dataclass(frozen=True)
class RunningFrameState:
    """The running centre (2,) and scale of :class:`RunningBodyFrame` (None before the first seen frame)."""

    centre: np.ndarray | None = None
    scale: float | None = None


@dataclass
class RunningBodyFrame:
    """Live normalisation: an exponential running estimate of centre and scale.

    The time constant ``tau_s`` (default 3 s, >= 2 s as the design notes ask) keeps the estimate
    slow enough that a beat's bounce (a few hundred ms) passes through normalisation intact.
    Streaming contract: ``reset()``, ``process_online(kp_frame, conf_frame, dt)``, and the pure
    :meth:`advance` on an explicit :class:`RunningFrameState`.
    """

    tau_s: float = 3.0
    centre: np.ndarray | None = field(default=None)
    scale: float | None = None

    def reset(self) -> None:
        self.centre = None
        self.scale = None

    def advance(self, state: RunningFrameState, keypoints: np.ndarray, confidence: np.ndarray, dt: float
                ) -> tuple[np.ndarray, RunningFrameState]:
        """Pure: one frame -> its normalised keypoints and the new state. Shapes: (17, 2), (17,) -> (17, 2)."""
        kp = keypoints[None]
        conf = confidence[None]
        hips_ok = conf[0, list(HIP_JOINTS)].min() > 0
        torso = float(_torso_length(kp, conf)[0])
        alpha = 1.0 - float(np.exp(-dt / self.tau_s))
        centre_est, scale_est = state.centre, state.scale
        if hips_ok:
            c = kp[0, list(HIP_JOINTS)].mean(axis=0).astype(np.float64)
            centre_est = c if centre_est is None else centre_est + alpha * (c - centre_est)
        if np.isfinite(torso):
            scale_est = torso if scale_est is None else scale_est + alpha * (torso - scale_est)
        centre = centre_est if centre_est is not None else np.zeros(2)
        scale = scale_est if scale_est else 1.0
        return ((keypoints - centre) / max(scale, 1e-6)).astype(np.float32), RunningFrameState(centre_est, scale_est)

    def process_online(self, keypoints: np.ndarray, confidence: np.ndarray, dt: float) -> np.ndarray:
        """Update with one frame and normalise it. Shapes: (17, 2), (17,) -> (17, 2)."""
        out, new = self.advance(RunningFrameState(self.centre, self.scale), keypoints, confidence, dt)
        self.centre, self.scale = new.centre, new.scale
        return out


def normalize_running(keypoints: np.ndarray, confidence: np.ndarray, fps: float, tau_s: float = 3.0) -> np.ndarray:
    """The live normalisation over a whole clip, causally (what :class:`RunningBodyFrame` gives frame
    by frame). Shapes: (T, 17, 2), (T, 17) -> (T, 17, 2)."""
    frame = RunningBodyFrame(tau_s=tau_s)
    dt = 1.0 / float(fps)
    out = np.empty(keypoints.shape, dtype=np.float32)
    for t in range(len(keypoints)):
        out[t] = frame.process_online(keypoints[t], confidence[t], dt)
    return out
