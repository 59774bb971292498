"""Whole-video pipeline: pose extraction, Video2Rhythm on a clip, dataset readers, training, evaluation."""
