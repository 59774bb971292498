"""Figures for the beat networks on this machine: parameters and training-step time per ablation row,
and the per-frame cost of the causal streaming step (median, p99) against recomputing the window.

Run: ``python benchmarks/bench_beat_net.py [--threads N] [--frames 600] [--batch 16] [--length 240]``.
The training step is forward + backward + AdamW on a batch of ``--batch`` windows of ``--length``
frames (random inputs; the cost does not depend on the values). CPU time is reported beside wall
time: on a machine shared with another job the wall time says little.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from rhythmicnet.models.beat_net import ABLATION_ROWS, BeatNet, BeatNetStream, ablation_config, beat_loss
from rhythmicnet.models.tcn_beat import TCNBeat, TCNBeatConfig


def _train_step_ms(model: torch.nn.Module, batch: int, length: int, reps: int) -> tuple[float, float]:
    """Best-of-``reps`` (CPU ms, wall ms) of one optimiser step."""
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x = torch.randn(batch, length, 17, 5)
    y = (torch.rand(batch, length) < 0.2).float()
    best = (np.inf, np.inf)
    for i in range(reps + 1):
        c0, w0 = time.process_time(), time.perf_counter()
        loss = beat_loss(model(x), y, y).total
        opt.zero_grad()
        loss.backward()
        opt.step()
        took = ((time.process_time() - c0) * 1e3, (time.perf_counter() - w0) * 1e3)
        if i > 0:  # the first step allocates
            best = min(best, took)
    return best


def _stream_ms(model: BeatNet, frames: int) -> tuple[np.ndarray, np.ndarray, float]:
    """Per-frame (wall ms, CPU ms) of ``process_online`` after a warm-up of one window, and the CPU ms of
    one forward over the last W frames (what a stream without cached state would pay per frame)."""
    model.eval()
    stream = BeatNetStream(model)
    w = model.config.window
    x = np.random.default_rng(0).normal(size=(w + frames, 17, 5)).astype(np.float32)
    stream.process_online(x[:w])  # the window is full from here on
    wall, cpu = np.empty(frames), np.empty(frames)
    for i in range(frames):
        c0, w0 = time.process_time(), time.perf_counter()
        stream.process_online(x[w + i])
        wall[i], cpu[i] = time.perf_counter() - w0, time.process_time() - c0
    window = torch.from_numpy(x[-w:])[None]
    with torch.no_grad():
        model(window)
        c0 = time.process_time()
        for _ in range(5):
            model(window)
    return wall * 1e3, cpu * 1e3, (time.process_time() - c0) / 5 * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--frames", type=int, default=600, help="streamed frames timed")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--length", type=int, default=240)
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {args.threads} thread(s); "
          f"training step: batch {args.batch} x {args.length} frames")
    print(f"{'model':22s} {'params':>8s} {'step CPU ms':>12s} {'step wall ms':>13s}")
    rows: list[tuple[str, torch.nn.Module]] = [("tcn", TCNBeat(TCNBeatConfig()))]
    rows += [(row, BeatNet(ablation_config(row))) for row in ABLATION_ROWS]
    rows.append(("full causal", BeatNet(ablation_config("full", causal=True))))
    for name, model in rows:
        n = sum(p.numel() for p in model.parameters())
        step_cpu, step_wall = _train_step_ms(model, args.batch, args.length, args.reps)
        print(f"{name:22s} {n:8d} {step_cpu:12.0f} {step_wall:13.0f}")
    causal = BeatNet(ablation_config("full", causal=True))
    wall, cpu, recompute = _stream_ms(causal, args.frames)
    print(f"\nstreaming step, full causal model, W = {causal.config.window} frames, {args.frames} frames:")
    print(f"  wall median {np.median(wall):.2f} ms, p99 {np.percentile(wall, 99):.2f} ms")
    print(f"  CPU  median {np.median(cpu):.2f} ms, p99 {np.percentile(cpu, 99):.2f} ms")
    print(f"  recomputing the window instead: {recompute:.1f} ms CPU per frame")


if __name__ == "__main__":
    main()
