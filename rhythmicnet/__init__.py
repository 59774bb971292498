"""RhythmicNet Live: turn human movement into music, live or from a recorded video.

The code lives in the user's top-level folders, installed as sub-packages:
``rhythmicnet.models`` (networks, representations, pure signal processing),
``rhythmicnet.offline`` (whole-video pipeline, datasets, training, evaluation),
``rhythmicnet.realtime`` (live loop) and ``rhythmicnet.export`` (ONNX).
"""

__version__ = "0.1.0"
