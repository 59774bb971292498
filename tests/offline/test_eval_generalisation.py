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


def test_rows_without_beats_keep_the_columns_aligned():
    """danceir gives a tempo but no beats: its F and AMLt cells read '-' in the same columns as the numbers."""
    from rhythmicnet.offline.eval_generalisation import format_generalisation

    rows = [{"model": "danceir", "label": "danceir", "f_measure": None, "amlt": None, "acc1": 58.0, "acc2": 70.0,
             "tempo_errors": {"error": 42.0, "listed": 16.0, "x1/2": 12.0}},
            {"model": "full", "label": "full", "f_measure": 88.4, "amlt": 93.6, "acc1": 99.0, "acc2": 99.0,
             "tempo_errors": {"error": 1.0, "listed": 0.0}}]
    table = format_generalisation({"set": rows}).splitlines()
    head, danceir, full = table[-3:]
    import re

    ends = [head.index(col) + len(col) for col in ("F", "AMLt", "Acc1", "Acc2", "1-Acc1", "listed")]
    for line in (danceir, full):  # each of the six values ends under its header
        assert [m.end() for m in re.finditer(r"\S+", line[40:])][:6] == [e - 40 for e in ends], line
    assert danceir.split()[1:5] == ["-", "-", "58.0", "70.0"] and danceir.endswith("x1/2 12.0")
