#!/usr/bin/env python3
"""Rebuild ``models/assets/pose_landmarker_full.task``: the offline pose model bundle for mediapipe 1.2.x.

Why this script exists
----------------------
mediapipe 1.2.x has only the Tasks API and ships no model files: ``PoseLandmarker`` wants a
``.task`` bundle, which Google's examples download at run time (impossible offline, and the
project promises that loading never touches the network). mediapipe 0.10.21's wheel still carries
the BlazePose GHUM 3D models (Apache-2.0) used by the legacy ``mp.solutions.pose``:

* ``mediapipe/modules/pose_detection/pose_detection.tflite``      (person detector, 224x224 input)
* ``mediapipe/modules/pose_landmark/pose_landmark_full.tflite``   (33-landmark model, 256x256 input)

A PoseLandmarker bundle is an uncompressed, 4-byte aligned zip holding exactly these two models
under the names ``pose_detector.tflite`` and ``pose_landmarks_detector.tflite``. The Tasks graphs
take the input normalisation from each model's TFLite metadata, so the script writes it:

* detector:  RGB, mean 127.5, std 127.5  (input in [-1, 1]); the wheel's copy already carries this
  normalisation under a wrong name ("Full Range Face Detection"), the script rewrites it cleanly;
* landmarks: RGB, mean 0, std 255        (input in [0, 1]); the wheel's copy has no metadata.

mediapipe 1.2.3 still ships ``mediapipe.tasks.python.metadata.metadata_writers`` but not the
compiled ``_pywrap_metadata_version`` module it needs (``import`` fails with
``No module named 'mediapipe.tasks.cc'``), so the metadata step runs in a child process with the
0.10.21 wheel unpacked into a throwaway folder first on ``PYTHONPATH``. The installed mediapipe is
never touched. (Importing 0.10.21 next to a newer protobuf prints one harmless line,
``AttributeError: 'MessageFactory' object has no attribute 'GetPrototype'``; the metadata writer
does not use that code path.)

Steps
-----
1. ``pip download --no-deps --only-binary=:all: mediapipe==0.10.21`` (cp311 manylinux x86_64), unless
   ``--wheel`` points at it already;
2. unpack the wheel into a temporary folder (equivalent to ``pip install --no-deps --target``);
3. check the SHA-256 of the two ``.tflite`` files against the values pinned below;
4. in a child process on the old mediapipe: write the metadata (``MetadataWriter``), then zip the
   two models into the bundle (``model_asset_bundle_utils.AlignZipFile``, fixed zip timestamps so
   the output is byte-for-byte reproducible);
5. load the bundle with the *installed* mediapipe's ``PoseLandmarker`` (VIDEO mode) on a blank frame
   as a smoke test.

Usage::

    python scripts/build_pose_bundle.py                      # writes models/assets/pose_landmarker_full.task
    python scripts/build_pose_bundle.py --wheel /tmp/mp01021/mediapipe-0.10.21-cp311-cp311-manylinux_2_28_x86_64.whl
    python scripts/build_pose_bundle.py --output /tmp/x.task

Needs: network access to PyPI (or ``--wheel``), Python 3.11 on Linux x86_64 (the wheel's compiled
metadata module is cp311), ``flatbuffers`` and ``numpy`` (dependencies of mediapipe 1.2.3).
Licence of the models: Apache-2.0, see ``models/assets/NOTICE-mediapipe.txt``.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUTPUT = REPO / "models" / "assets" / "pose_landmarker_full.task"
MEDIAPIPE_VERSION = "0.10.21"

#: Source path inside the wheel -> (name inside the bundle, SHA-256 of the wheel's file).
MODELS: dict[str, tuple[str, str]] = {
    "mediapipe/modules/pose_detection/pose_detection.tflite": (
        "pose_detector.tflite",
        "9ba9dd3d42efaaba86b4ff0122b06f29c4122e756b329d89dca1e297fd8f866c",
    ),
    "mediapipe/modules/pose_landmark/pose_landmark_full.tflite": (
        "pose_landmarks_detector.tflite",
        "e9a5c5cb17f736fafd4c2ec1da3b3d331d6edbe8a0d32395855aeb2cdfd64b9f",
    ),
}

_LICENCE = "Apache License 2.0 (https://www.apache.org/licenses/LICENSE-2.0)"
_AUTHOR = "Google LLC (MediaPipe), taken from the mediapipe 0.10.21 wheel"

#: What the child process writes into each model (see module docstring).
METADATA: dict[str, dict[str, Any]] = {
    "pose_detector.tflite": {
        "name": "BlazePose person detector",
        "description": "Detects people (box + alignment keypoints) for the BlazePose GHUM 3D pose landmarker.",
        "mean": [127.5],
        "std": [127.5],
        "outputs": [
            ("raw boxes/keypoints", "Undecoded boxes and alignment keypoints of the SSD anchors."),
            ("scores", "Scores of the SSD anchors."),
        ],
    },
    "pose_landmarks_detector.tflite": {
        "name": "BlazePose GHUM 3D pose landmarks (full)",
        "description": "33 body landmarks (image and world coordinates), pose presence and segmentation.",
        "mean": [0.0],
        "std": [255.0],
        "outputs": [
            ("landmarks", "33 + 6 auxiliary landmarks x (x, y, z, visibility, presence) in input pixels."),
            ("pose presence", "Pose presence flag (logit)."),
            ("segmentation", "Person segmentation mask (logits)."),
            ("heatmap", "Landmark heatmaps used for refinement."),
            ("world landmarks", "33 + 6 landmarks x (x, y, z) in metres, hip-centred."),
        ],
    },
}


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def fetch_wheel(dest: Path) -> Path:
    """Download mediapipe 0.10.21 for CPython 3.11 / manylinux x86_64 (no dependencies)."""
    cmd = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
        "--python-version", "3.11", "--platform", "manylinux_2_28_x86_64", "--implementation", "cp",
        f"mediapipe=={MEDIAPIPE_VERSION}", "-d", str(dest),
    ]  # fmt: skip
    subprocess.run(cmd, check=True)
    wheels = sorted(dest.glob(f"mediapipe-{MEDIAPIPE_VERSION}-cp311-*.whl"))
    if not wheels:
        raise SystemExit(f"{dest}: pip download produced no mediapipe {MEDIAPIPE_VERSION} cp311 wheel")
    return wheels[0]


def unpack_wheel(wheel: Path, target: Path) -> None:
    """Unpack the wheel and verify the two model files against the pinned hashes."""
    with zipfile.ZipFile(wheel) as zf:
        zf.extractall(target)
    for src, (name, digest) in MODELS.items():
        got = sha256((target / src).read_bytes())
        if got != digest:
            raise SystemExit(f"{wheel}: {src} has SHA-256 {got}, expected {digest} (for {name})")


def child_build(old_site: Path, output: Path) -> None:
    """Runs in the child process, with mediapipe 0.10.21 importable: metadata + bundle."""
    from mediapipe.tasks.python.metadata.metadata_writers import (
        metadata_info,
        metadata_writer,
        model_asset_bundle_utils,
    )

    buffers: dict[str, bytes] = {}
    for src, (name, _) in MODELS.items():
        spec = METADATA[name]
        writer = metadata_writer.MetadataWriter.create(bytearray((old_site / src).read_bytes()))
        writer.add_image_input(norm_mean=spec["mean"], norm_std=spec["std"])
        for out_name, out_desc in spec["outputs"]:
            writer.add_feature_output(name=out_name, description=out_desc)
        # add_general_info() takes only name and description; set author/licence too.
        writer._general_md = metadata_info.GeneralMd(
            name=spec["name"],
            version=f"mediapipe-{MEDIAPIPE_VERSION}",
            description=spec["description"],
            author=_AUTHOR,
            licenses=_LICENCE,
        )
        model, _json = writer.populate()
        buffers[name] = bytes(model)

    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(f".{output.name}.part")
    # Same as model_asset_bundle_utils.create_model_asset_bundle(), but with a fixed timestamp per
    # member so that the bundle is reproducible byte for byte.
    with model_asset_bundle_utils.AlignZipFile(tmp, mode="w", alignment=4) as zf:
        for name in ("pose_detector.tflite", "pose_landmarks_detector.tflite"):
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_STORED
            info.external_attr = 0o644 << 16
            zf.writestr(info, buffers[name])
    os.replace(tmp, output)


def smoke_test(bundle: Path) -> None:
    """Load the bundle with the installed mediapipe (1.2.x) in VIDEO mode and run one blank frame."""
    import mediapipe as mp
    import numpy as np
    from mediapipe.tasks.python import vision
    from mediapipe.tasks.python.core.base_options import BaseOptions

    options = vision.PoseLandmarkerOptions(
        base_options=BaseOptions(model_asset_buffer=bundle.read_bytes()),
        running_mode=vision.RunningMode.VIDEO,
        num_poses=1,
    )
    with vision.PoseLandmarker.create_from_options(options) as landmarker:
        frame = mp.Image(image_format=mp.ImageFormat.SRGB, data=np.zeros((480, 640, 3), np.uint8))
        result = landmarker.detect_for_video(frame, 0)
    print(f"smoke test with mediapipe {mp.__version__}: ok ({len(result.pose_landmarks)} poses in a blank frame)")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--wheel", type=Path, help=f"mediapipe {MEDIAPIPE_VERSION} cp311 wheel (else pip download)")
    ap.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="bundle to write (.task)")
    ap.add_argument("--skip-smoke-test", action="store_true")
    ap.add_argument("--child", type=Path, help=argparse.SUPPRESS)  # internal: unpacked wheel folder
    args = ap.parse_args(argv)

    if args.child is not None:
        child_build(args.child, args.output.resolve())
        return 0

    with tempfile.TemporaryDirectory(prefix="mp_old_") as tmpdir:
        tmp = Path(tmpdir)
        wheel = args.wheel if args.wheel is not None else fetch_wheel(tmp / "wheel")
        site = tmp / "site"
        unpack_wheel(wheel, site)
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]))
        subprocess.run(
            [sys.executable, str(Path(__file__).resolve()), "--child", str(site), "--output", str(args.output)],
            check=True,
            env=env,
            cwd=tmp,  # keep the repo's folders off sys.path in the child
        )
    data = args.output.read_bytes()
    print(f"wrote {args.output} ({len(data)} bytes, sha256 {sha256(data)})")
    if not args.skip_smoke_test:
        smoke_test(args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
