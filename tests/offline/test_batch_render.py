"""Issue 19: ``rhythmicnet render`` on a batch of clips - worker processes, Ray, resuming, failures.

The batch holds short cuts of the two real example clips (3 s of the bundled jumping jacks at 15 fps,
4 s of the squats), a corrupt file and a video with no person (a moving colour gradient). Drums only
(``--instrument none``): the batch machinery is under test, not the accompaniment.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import multiprocessing
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from rhythmicnet.cli import main
from rhythmicnet.offline.batch import completed_record
from rhythmicnet.offline.batch_inputs import clip_folders, expand_inputs, input_sha256, is_batch
from rhythmicnet.offline.batch_pool import run_local
from rhythmicnet.offline.batch_ray import is_address
from rhythmicnet.offline.render import RenderConfig, render, render_request

EXAMPLE = Path(__file__).resolve().parents[2] / "offline" / "examples" / "jumping_jacks.mp4"
FAST = ["--instrument", "none", "-q"]


def _ffmpeg_cut(src: Path, dst: Path, seconds: float, vf: str) -> Path:
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(src), "-t", str(seconds), "-vf", vf, "-c:v", "libx264",
                    "-preset", "veryfast", "-crf", "23", "-pix_fmt", "yuv420p", "-an", str(dst)], check=True)
    return dst


@pytest.fixture(scope="module")
def clips(tmp_path_factory, example_video_dir):
    d = tmp_path_factory.mktemp("clips")
    jj = _ffmpeg_cut(EXAMPLE, d / "jumping.mp4", 3.0, "scale=480:-2,fps=15")
    squats = _ffmpeg_cut(example_video_dir / "tfjs_pose_squats" / "pose_squats.mp4", d / "squats.mp4", 4.0,
                         "scale=360:-2")
    corrupt = d / "corrupt.mp4"
    corrupt.write_bytes(jj.read_bytes()[:3000])
    nobody = d / "nobody.mp4"
    w = cv2.VideoWriter(str(nobody), cv2.VideoWriter_fourcc(*"mp4v"), 10, (160, 120))
    x = np.linspace(0, 255, 160)[None, :, None]
    for i in range(20):  # 2 s of a gradient sliding sideways: movement, but no person
        w.write(np.broadcast_to((x + 12 * i) % 256, (120, 160, 3)).astype(np.uint8))
    w.release()
    return {"jumping": jj, "squats": squats, "corrupt": corrupt, "nobody": nobody}


@pytest.fixture(scope="module")
def singles(clips, tmp_path_factory):
    """The two good clips rendered one at a time, in this process (seed 0, as the batch)."""
    out = {}
    for name in ("jumping", "squats"):
        d = tmp_path_factory.mktemp(f"single_{name}")
        assert main(["render", str(clips[name]), "-o", str(d), *FAST]) == 0
        out[name] = d
    return out


@pytest.fixture(scope="module")
def batch(clips, tmp_path_factory):
    out = tmp_path_factory.mktemp("batch")
    rc = main(["render", *(str(clips[k]) for k in ("jumping", "squats", "corrupt", "nobody")), "-o", str(out),
               "--jobs", "2", *FAST])
    return rc, out


#: Run details that are not results: stage timings, and where the ONNX graphs were cached (a process's
#: graph factory keeps the folder it was made with; a worker reads $RHYTHMICNET_ONNX_CACHE when it starts).
_RUN_DETAILS = ("stage_seconds", "cache_dir", "exported_now")


def _without_stage_seconds(x):
    if isinstance(x, dict):
        return {k: _without_stage_seconds(v) for k, v in x.items() if k not in _RUN_DETAILS}
    if isinstance(x, list):
        return [_without_stage_seconds(v) for v in x]
    return x


def _report(folder: Path) -> dict:
    return json.loads((folder / "report.json").read_text())


def _no_partial_files(root: Path) -> bool:
    return not [p for p in root.rglob("*") if ".part" in p.name]


def test_batch_gives_the_single_renders_and_lists_the_bad_clips(batch, singles, clips, capsys):
    rc, out = batch
    assert rc == 1  # some clips failed
    for name in ("jumping", "squats"):
        for mid in ("drums.mid", "soundtrack.mid"):
            assert (out / name / mid).read_bytes() == (singles[name] / mid).read_bytes(), (name, mid)
        assert _without_stage_seconds(_report(out / name)) == _without_stage_seconds(_report(singles[name]))
        assert _report(out / name)["request"]["input_sha256"] == input_sha256(clips[name])
    summary = json.loads((out / "batch.json").read_text())
    by_name = {c["output"]: c for c in summary["clips"]}
    assert [c["input"] for c in summary["clips"]] == [str(clips[k]) for k in ("jumping", "squats", "corrupt",
                                                                                "nobody")]
    assert by_name["jumping"]["status"] == by_name["squats"]["status"] == "done"
    assert by_name["squats"]["tempo_bpm"] == _report(singles["squats"])["tempo_bpm"]
    assert by_name["squats"]["notes"] == _report(singles["squats"])["notes"]
    assert by_name["corrupt"]["status"] == "failed" and "corrupt.mp4: cannot be decoded" in by_name["corrupt"]["error"]
    assert by_name["nobody"]["status"] == "failed" and "nobody.mp4: no person found" in by_name["nobody"]["error"]
    t = summary["totals"]
    assert (t["done"], t["skipped"], t["failed"]) == (2, 0, 2)
    assert t["video_seconds"] == pytest.approx(by_name["jumping"]["duration_s"] + by_name["squats"]["duration_s"])
    assert t["throughput"] == pytest.approx(t["video_seconds"] / t["wall_seconds"], rel=1e-3)
    assert 0 < t["cpu_utilisation"] <= 1.05 and summary["runner"] == {"kind": "local", "jobs": 2}
    assert set(by_name["jumping"]["stage_seconds"]) >= {"keypoints", "rhythm", "drums", "video"}
    # the bad clips leave no folder; nothing is half-written
    assert not (out / "corrupt").exists() and not (out / "nobody").exists()
    assert _no_partial_files(out)


def test_a_rerun_redoes_only_the_clip_whose_outputs_were_deleted(batch, singles, clips):
    rc, out = batch
    kept = (out / "jumping" / "report.json").stat().st_mtime_ns
    for f in (out / "squats").iterdir():
        f.unlink()
    rc = main(["render", *(str(clips[k]) for k in ("jumping", "squats", "corrupt", "nobody")), "-o", str(out),
               "--jobs", "1", *FAST])
    assert rc == 1
    status = {c["output"]: c["status"] for c in json.loads((out / "batch.json").read_text())["clips"]}
    assert status == {"jumping": "skipped", "squats": "done", "corrupt": "failed", "nobody": "failed"}
    assert (out / "jumping" / "report.json").stat().st_mtime_ns == kept
    assert (out / "squats" / "drums.mid").read_bytes() == (singles["squats"] / "drums.mid").read_bytes()


def test_ray_gives_the_same_midi_as_worker_processes(batch, clips, tmp_path):
    ray = pytest.importorskip("ray")
    _, local = batch
    ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.ERROR, log_to_driver=False)
    try:
        rc = main(["render", *(str(clips[k]) for k in ("jumping", "squats", "corrupt", "nobody")), "-o",
                   str(tmp_path), *FAST, "--ray"])
    finally:
        ray.shutdown()
    assert rc == 1
    summary = json.loads((tmp_path / "batch.json").read_text())
    assert summary["runner"]["kind"] == "ray" and summary["runner"]["cpus"] == 2
    assert [c["status"] for c in summary["clips"]] == ["done", "done", "failed", "failed"]
    for name in ("jumping", "squats"):
        assert (tmp_path / name / "drums.mid").read_bytes() == (local / name / "drums.mid").read_bytes()


def test_a_worker_that_dies_fails_only_its_clip(clips, tmp_path):
    """The first worker is killed (SIGKILL, as the out-of-memory killer does) while it holds a clip: that
    clip fails with the cause, a new worker renders the next one."""
    cfg = {"config": dataclasses.asdict(RenderConfig(instrument="none")), "input_sha256": None}
    tasks = [{"index": i, "input": str(clips[name]), "outdir": str(tmp_path / name), **cfg}
             for i, name in enumerate(["jumping", "corrupt"])]  # the first is killed during its pose stage
    killed: list[int] = []

    def kill_first_worker() -> None:
        deadline = time.monotonic() + 60
        while not killed and time.monotonic() < deadline:
            for p in multiprocessing.active_children():
                if p.name == "rhythmicnet-render-worker" and p.pid:
                    os.kill(p.pid, signal.SIGKILL)
                    killed.append(p.pid)
                    return
            time.sleep(0.01)

    outcomes: dict[int, dict] = {}
    killer = threading.Thread(target=kill_first_worker)
    killer.start()
    cpu = run_local(tasks, 1, lambda task, outcome: outcomes.__setitem__(task["index"], outcome))
    killer.join()
    assert killed
    assert outcomes[0]["status"] == "failed" and "worker process died (killed by SIGKILL" in outcomes[0]["error"]
    assert outcomes[1]["status"] == "failed" and "cannot be decoded as a video" in outcomes[1]["error"]
    assert not multiprocessing.active_children() and cpu > 0  # the second worker reported its CPU time
    assert _no_partial_files(tmp_path)
    from multiprocessing import forkserver

    server = getattr(getattr(forkserver, "_forkserver", None), "_forkserver_pid", None)
    if server and Path(f"/proc/{server}/task").is_dir():  # it forks the workers: it must have one thread
        assert len(list(Path(f"/proc/{server}/task").iterdir())) == 1


def test_ctrl_c_stops_the_workers_and_writes_the_summary(clips, tmp_path, capsys, process_report):
    """SIGINT to this process while its workers render: status 130, every worker gone, no temporary file,
    and batch.json says what did not finish."""
    # eight clips for two workers: the batch outlasts the 0.3 s before the interrupt by several clips (with
    # two short clips, warm workers could finish both first, and the batch ended with status 0)
    library = tmp_path / "library"
    library.mkdir()
    for i in range(8):
        (library / f"jumping{i}.mp4").write_bytes(clips["jumping"].read_bytes())
    out = tmp_path / "out"
    stop = threading.Event()
    sent: list[float] = []

    def interrupt_once_a_worker_runs() -> None:
        while not stop.is_set():
            if any(p.name == "rhythmicnet-render-worker" for p in multiprocessing.active_children()):
                time.sleep(0.3)
                if not stop.is_set():
                    sent.append(time.monotonic())
                    os.kill(os.getpid(), signal.SIGINT)
                return
            time.sleep(0.01)

    sender = threading.Thread(target=interrupt_once_a_worker_runs)
    try:
        sender.start()
        rc = main(["render", str(library), "-o", str(out), "--jobs", "2", *FAST])
        stop.set()
        sender.join()
    except KeyboardInterrupt:  # only if the signal came after the batch had ended
        rc = None
    assert sent, "the batch ended before the interrupt was sent"
    assert rc == 130, f"the interrupt was not seen; this process's threads:\n{process_report(os.getpid())}"
    assert capsys.readouterr().err.strip().splitlines()[-1] == "rhythmicnet: interrupted"
    assert not multiprocessing.active_children()
    summary = json.loads((out / "batch.json").read_text())
    assert summary["interrupted"] is True and summary["totals"]["failed"] >= 1
    assert any("interrupted" in (c["error"] or "") for c in summary["clips"])
    assert _no_partial_files(out)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_ctrl_c_lost_in_a_finalizer_still_stops_the_batch(clips, tmp_path):
    """Python runs the SIGINT handler at the main thread's next bytecode, which can be inside an object's
    __del__ (after a long garbage collection), where its KeyboardInterrupt is dropped ("Exception ignored").
    Here it is made to happen in the first clip's outcome callback: the batch still stops with
    KeyboardInterrupt, its workers gone, instead of rendering every clip."""

    class TakesTheInterrupt:
        def __del__(self) -> None:
            os.kill(os.getpid(), signal.SIGINT)
            for _ in range(10_000):  # the handler runs here, inside __del__
                pass

    cfg = {"config": dataclasses.asdict(RenderConfig(instrument="none")), "input_sha256": None}
    tasks = [{"index": i, "input": str(clips["jumping"]), "outdir": str(tmp_path / f"c{i}"), **cfg} for i in range(3)]
    outcomes: list[int] = []

    def on_outcome(task: dict, outcome: dict) -> None:
        outcomes.append(task["index"])
        if len(outcomes) == 1:
            TakesTheInterrupt()  # made and collected at once: its __del__ runs now

    with pytest.raises(KeyboardInterrupt):
        run_local(tasks, 1, on_outcome)
    assert outcomes == [0] and not multiprocessing.active_children()
    assert _no_partial_files(tmp_path)


@pytest.mark.slow
def test_ctrl_c_in_a_terminal_stops_the_batch(clips, tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "rhythmicnet", "render", str(clips["jumping"]),
                             str(clips["squats"]), "-o", str(tmp_path), "--jobs", "2", *FAST],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(6.0)  # the workers are starting or rendering
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and err.strip().splitlines()[-1] == "rhythmicnet: interrupted"
    summary = json.loads((tmp_path / "batch.json").read_text())
    assert summary["interrupted"] is True
    assert _no_partial_files(tmp_path)


# --- inputs, names and resuming, without rendering ----------------------------------------------------


def test_folder_names_do_not_depend_on_the_input_order(tmp_path):
    a, b, c = tmp_path / "a" / "take.mp4", tmp_path / "b" / "take.MP4", tmp_path / "solo.mov"
    names = clip_folders([a, b, c])
    assert names[2] == "solo" and names[0].startswith("take-") and names[1].startswith("take-")
    assert len(names[0]) == len("take-") + 8 and names[0] != names[1]
    assert clip_folders([c, b, a]) == names[::-1]


def test_inputs_expand_from_folders_globs_and_a_list(tmp_path, monkeypatch):
    lib = tmp_path / "lib"
    (lib / "sub").mkdir(parents=True)
    (lib / ".hidden").mkdir()
    for f in ("a.mp4", "b.webm", "notes.txt", ".x.part.mp4", "sub/c.npz", "sub/c.beats.json", ".hidden/d.mp4"):
        (lib / f).write_bytes(b"x")
    out = lib / "out"
    (out / "a").mkdir(parents=True)
    (out / "a" / "a.keypoints.npz").write_bytes(b"x")  # outputs are never inputs
    monkeypatch.chdir(tmp_path)
    assert [p.as_posix() for p in expand_inputs(["lib"], outdir=out).clips] == ["lib/a.mp4", "lib/b.webm"]
    rec = expand_inputs(["lib", "lib/a.mp4"], recursive=True, outdir=out)
    assert [p.as_posix() for p in rec.clips] == ["lib/a.mp4", "lib/b.webm", "lib/sub/c.npz"]
    assert [p.as_posix() for p in expand_inputs(["lib/**/*.npz"], outdir=out).clips] == ["lib/sub/c.npz"]
    empty = expand_inputs(["lib/*.avi", "lib/sub/../missing.mp4"])
    assert empty.notes == ["lib/*.avi: matches no video or keypoint file"]
    assert [p.as_posix() for p in empty.clips] == ["lib/sub/../missing.mp4"]  # fails as "file not found"
    assert is_batch(["lib"], None) and is_batch(["lib/*.mp4"], None) and not is_batch(["lib/a.mp4"], None)
    listed = tmp_path / "clips.txt"
    listed.write_text("# my clips\nlib/gone.mp4\n\nlib/*.avi\n")
    assert main(["render", "--list", str(listed), "-o", str(tmp_path / "o"), "-q"]) == 1
    summary = json.loads((tmp_path / "o" / "batch.json").read_text())
    assert [(c["input"], c["status"], c["error"]) for c in summary["clips"]] == [
        ("lib/gone.mp4", "failed", "lib/gone.mp4: file not found")]
    assert summary["notes"] == ["lib/*.avi: matches no video or keypoint file"]


def test_nothing_to_run_is_status_2(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["render", str(tmp_path / "empty"), "-o", str(tmp_path / "o")]) == 2
    assert "no videos or keypoint files" in capsys.readouterr().err
    assert main(["render", str(tmp_path / "empty"), str(tmp_path / "empty"), "--ray", "nowhere"]) == 2
    assert "not a Ray address" in capsys.readouterr().err
    assert is_address("auto") and is_address("ray://head:10001") and is_address("10.0.0.5:6379")
    assert not is_address("clip.mp4")


def test_a_clip_is_complete_only_for_the_same_content_and_settings(tmp_path):
    cfg = RenderConfig(instrument="none")
    (tmp_path / "drums.mid").write_bytes(b"x")
    report = {"outputs": {"drums_midi": "drums.mid", "report": "report.json"},
              "request": render_request(cfg, "ab" * 32)}
    (tmp_path / "report.json").write_text(json.dumps(report))
    assert completed_record(tmp_path, render_request(cfg, "ab" * 32)) is not None
    assert completed_record(tmp_path, render_request(RenderConfig(instrument="none", use_cache=False), "ab" * 32))
    assert completed_record(tmp_path, render_request(cfg, "cd" * 32)) is None  # another input at this path
    assert completed_record(tmp_path, render_request(RenderConfig(instrument="none", seed=1), "ab" * 32)) is None
    (tmp_path / "drums.mid").unlink()
    assert completed_record(tmp_path, render_request(cfg, "ab" * 32)) is None


def test_render_is_unchanged_with_models_kept_between_clips(tmp_path, clips, singles):
    """A worker's LoadedModels, used for one clip, gives the next clip what a fresh load gives (the
    keypoints come from the single renders' caches: the models are under test here, not pose)."""
    from rhythmicnet.models.weights import WEIGHTS_DIR
    from rhythmicnet.offline.loaded_models import LoadedModels

    models = LoadedModels()
    cfg = RenderConfig(instrument="none", beat_model="net", weights_dir=str(WEIGHTS_DIR))
    for name in ("jumping", "squats"):
        (tmp_path / name).mkdir()
        cache = f"{name}.keypoints.npz"
        (tmp_path / name / cache).write_bytes((singles[name] / cache).read_bytes())
        render(clips[name], tmp_path / name, cfg, progress=False, models=models)
        assert models.loads == 2  # the beat net and Rhythm2Drum, loaded for the first clip only
    assert (tmp_path / "squats" / "drums.mid").read_bytes() == (singles["squats"] / "drums.mid").read_bytes()
    assert (_without_stage_seconds(_report(tmp_path / "squats"))["notes"]
            == _without_stage_seconds(_report(singles["squats"]))["notes"])


@pytest.mark.slow
def test_bench_batch_prints_its_rows_and_goals(tmp_path):
    """benchmarks/bench_batch.py on 2 clips of 3 s (its 8 clips of 20 s are for people to read)."""
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, str(root / "benchmarks" / "bench_batch.py"), "--clips", "2", "--seconds", "3",
                          "--instrument", "none", "--work", str(tmp_path)], capture_output=True, text=True,
                         timeout=900, check=True).stdout
    for mode in ("jobs1", "jobs2", "ray"):
        assert re.search(rf"^{mode}\s+[\d.]+\s+[\d.]+\s+[\d.]+\s+[\d.]+\s+\d+%\s+\d+%\s+2/0$", out, re.M), out
    assert "goal: --jobs 2 throughput >= 1.4x --jobs 1:" in out and "goal: Ray throughput within 10 %" in out

