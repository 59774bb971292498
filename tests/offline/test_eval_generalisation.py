"""The generalisation test's runner and table (issue 16) on one clip of each set, onset baseline only."""

from rhythmicnet.offline.eval_generalisation import evaluate_generalisation, format_generalisation


def test_each_set_is_scored_and_tabulated():
    res = evaluate_generalisation(["onset", "no_such_row"], n_clips=1, progress=False)
    assert list(res) == ["generalisation-aist", "generalisation-loguniform", "half-double-time"]
    for records in res.values():
        onset = records[0]
        assert onset["model"] == "onset" and onset["n_clips"] == 1
        assert 0.0 <= onset["f_measure"] <= 100.0 and 0.0 <= onset["amlt"] <= 100.0
        assert onset["tempo_errors"]["error"] == 100.0 - onset["acc1"]
        assert records[1].get("missing")
    text = format_generalisation(res)
    for name in res:
        assert f"{name} (1 clips)" in text
    assert text.count("onset baseline") == 3 and "missing" in text
