"""Ableton Link with a second peer in the same process (over the loopback interface), and the preview's
drawing and its no-display path."""

from __future__ import annotations

import asyncio
import importlib.util

import numpy as np
import pytest

from rhythmicnet.realtime.inputs import event_loop_policy
from rhythmicnet.realtime.preview import PreviewFigures, draw_preview, open_preview


async def _link_follow() -> dict:
    from rhythmicnet.realtime.link_sync import LinkSync, open_link

    loop = asyncio.get_running_loop()
    ours, peer = LinkSync(open_link(100.0)), open_link(90.0)
    try:
        t0 = loop.time()
        while peer.num_peers < 1 and loop.time() - t0 < 10.0:
            await asyncio.sleep(0.01)
        origin, period = loop.time() + 0.3, 0.6  # the groove: 100 BPM
        for _ in range(100):
            ours.update(loop.time(), origin, period)
            await asyncio.sleep(0.005)
        # the dancer speeds up to 130 BPM on a beat: the grid moves, the peer must follow within a bar
        now = loop.time()
        k = np.ceil((now - origin) / period)
        new_period = 60.0 / 130.0
        origin, period = origin + k * period - k * new_period, new_period
        changed, followed = loop.time(), None
        while loop.time() - changed < 4 * period + 1.0:
            ours.update(loop.time(), origin, period)
            if followed is None and abs(peer.tempo - 130.0) < 0.01:
                followed = loop.time() - changed
            await asyncio.sleep(0.005)
        now = loop.time()
        phase_err = (peer.beat - (now - origin) / period + 2.0) % 4.0 - 2.0  # bar phase, beats
        return {"peers": peer.num_peers, "followed": followed, "bar_s": 4 * period, "phase_err": phase_err,
                "tempo": peer.tempo}
    finally:
        ours.close()
        peer.enabled = False


@pytest.mark.skipif(importlib.util.find_spec("aalink") is None, reason="aalink (rhythmicnet[link]) not installed")
def test_link_peer_follows_tempo_within_a_bar_and_shares_the_bar_phase():
    loop = event_loop_policy().new_event_loop()
    try:
        r = loop.run_until_complete(_link_follow())
    finally:
        loop.close()
    assert r["peers"] >= 1, "the two Link peers did not find each other"
    assert r["followed"] is not None and r["followed"] < r["bar_s"], r
    assert abs(r["phase_err"]) < 0.02, r  # 0.02 beats: 9 ms at 130 BPM


def test_preview_drawing_is_pure_and_flashes_bigger_on_the_downbeat():
    frame = np.full((360, 640, 3), 40, np.uint8)
    kp = np.column_stack([np.linspace(200, 440, 17), np.linspace(60, 320, 17)])
    conf = np.ones(17)
    figs = PreviewFigures(beat=8.0, period=0.5, tempo_bpm=120.0, bar=2, state="playing", mode="lock", frame_ms=2.5)
    down = draw_preview(frame, kp, conf, figs)
    assert down.shape == frame.shape and down.dtype == np.uint8 and (frame == 40).all()  # input untouched
    beat = draw_preview(frame, kp, conf, PreviewFigures(beat=9.0, period=0.5))
    between = draw_preview(frame, kp, conf, PreviewFigures(beat=9.5, period=0.5))
    corner = (slice(0, 110), slice(530, 640))
    red = (down[corner][..., 2] > 200) & (down[corner][..., 0] < 80)
    white = (beat[corner] > 200).all(-1)
    assert red.sum() > 3000 and 800 < white.sum() < red.sum()  # 40 px red on the downbeat, 22 px white on a beat
    assert not (between[corner] > 200).all(-1).any()  # no flash half a beat later
    skeleton = (down[..., 2] > 200) & (down[..., 1] > 200) & (down[..., 0] < 60)  # yellow bones
    assert skeleton.sum() > 200
    canvas = draw_preview(None, None, None, PreviewFigures(), size=(320, 240))
    assert canvas.shape == (240, 320, 3) and canvas.any()  # the text on a black canvas


def test_preview_without_a_display_says_so_in_one_line_and_goes_on(monkeypatch, capsys):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    loop = asyncio.new_event_loop()
    try:
        assert open_preview(loop, lambda name: None) is None
    finally:
        loop.close()
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no display" in err[0] and "going on" in err[0]
