import pytest

from rhythmicnet.errors import OutputError
from rhythmicnet.fileio import atomic_path, write_text_atomic


def test_atomic_write_leaves_nothing_on_failure_and_normal_permissions(tmp_path):
    target = tmp_path / "out.txt"
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []
    from rhythmicnet import fileio

    write_text_atomic(target, "done")
    assert target.read_text() == "done"
    assert target.stat().st_mode & 0o777 == 0o666 & ~fileio._UMASK  # not mkstemp's private 0600
    with pytest.raises(OutputError):
        write_text_atomic(tmp_path / "missing" / "x.txt", "x")
