"""The generalisation test (issue 16) from ``eval beat --generalisation`` on one clip of each set."""

import json

from rhythmicnet.cli import main


def test_eval_beat_generalisation_scores_and_tabulates_each_set(tmp_path, capsys):
    js = tmp_path / "g.json"
    assert main(["eval", "beat", "--generalisation", "--weights", str(tmp_path), "--rows", "onset", "full",
                 "--clips", "1", "--json", str(js), "-q"]) == 0
    text = capsys.readouterr().out
    names = ["generalisation-aist", "generalisation-loguniform", "half-double-time"]
    for name in names:
        assert f"{name} (1 clips)" in text
    assert text.count("onset baseline") >= 4 and "missing" in text  # Table 1 + each set; no weights here
    records = json.loads(js.read_text())
    general = [r for r in records if "set" in r]
    assert [r["set"] for r in general if r["model"] == "onset"] == names
    for r in general:
        if r["model"] == "onset":
            assert r["n_clips"] == 1 and 0.0 <= r["f_measure"] <= 100.0 and 0.0 <= r["amlt"] <= 100.0
            assert r["tempo_errors"]["error"] == 100.0 - r["acc1"]
        else:
            assert r.get("missing")
