"""``rhythmicnet live``'s performer flags: all in --help, drum maps, one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from rhythmicnet.models.drum_grid import OUTPUT_PITCHES
from rhythmicnet.models.midi_messages import DRUM_MAPS, DrumMap, load_drum_map

FLAGS = ("--osc-port", "--osc-host", "--osc-image-size", "--osc-out", "--link", "--count-in", "--gesture",
         "--drum-map", "--preview", "--latency-offset", "--pose-latency")


def live(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rhythmicnet", "live", *args], capture_output=True, text=True,
                          timeout=120)


def test_every_performer_flag_is_in_help():
    out = live("--help")
    assert out.returncode == 0
    text = " ".join(out.stdout.split())
    for flag in FLAGS:
        assert flag in text, flag
    for words in ("/rhythmicnet/beat", "/mediapipe/pose", "aalink", "Drum Rack", "space tap"):
        assert words in text, words


def test_a_bad_drum_map_or_input_is_one_line(tmp_path):
    bad = tmp_path / "map.json"
    bad.write_text(json.dumps({"notes": {"cowbell": 56}}))
    for args, says in ((["--osc-port", "9999", "--drum-map", str(bad)], "cowbell"),
                       (["--osc-port", "9999", "--drum-map", "nope"], "gm, drum-rack"),
                       (["--osc-port", "70000"], "1-65535")):
        out = live(*args)
        assert out.returncode == 2, (args, out.stderr)
        assert len(out.stderr.strip().splitlines()) == 1 and says in out.stderr, out.stderr
    out = live("--osc-out", "here:port", "--osc-port", "9000")  # argparse: usage, then the error line
    assert out.returncode == 2 and "give HOST:PORT" in out.stderr.strip().splitlines()[-1]


def test_drum_maps_round_trip_and_partial_files(tmp_path):
    assert DRUM_MAPS["gm"].notes == OUTPUT_PITCHES and DRUM_MAPS["gm"].drum_channel == 9
    rack = DRUM_MAPS["drum-rack"]
    assert rack.notes == tuple(range(36, 45)) and max(rack.count_in) <= 51  # all on the 16 pads from C1
    for m in DRUM_MAPS.values():
        f = tmp_path / f"{m.name}.json"
        f.write_text(m.to_json())
        assert load_drum_map(str(f)) == m
    f = tmp_path / "mine.json"
    f.write_text(json.dumps({"drum_channel": 1, "notes": {"kick": 24}}))
    mine = load_drum_map(str(f))
    assert mine.notes[0] == 24 and mine.notes[1:] == OUTPUT_PITCHES[1:] and mine.drum_channel == 0
    with pytest.raises(ValueError):
        DrumMap("x", (200,) * 9)
