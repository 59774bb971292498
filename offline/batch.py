"""A batch of clips: ``rhythmicnet render`` with several inputs, a folder, a glob or ``--list``.

:func:`run_batch` renders every clip into its own folder under OUTDIR (named by
:func:`~.batch_inputs.clip_folders`), on worker processes of this machine (:mod:`.batch_pool`,
``--jobs N``) or as Ray tasks (:mod:`.batch_ray`, ``--ray``), with one progress bar over the clips.

Resuming: a clip whose folder holds a ``report.json`` with the same ``request`` (the input's content
hash and the settings, see ``render.render_request``) and every output it lists is ``skipped``;
``force`` renders it again. Only such clips are hashed here; the others are hashed by their worker.

A clip that fails (missing, corrupt, no person, no steady beat, a dead worker) is ``failed`` with its
one-line error; the others go on. At the end, one summary is printed and written atomically to
``OUTDIR/batch.json``: per clip its status, error, duration, tempo, notes and stage seconds; in total
the clips done, skipped and failed, the wall time, the throughput (seconds of video rendered per
wall-clock second) and the CPU utilisation: CPU seconds of this process and its workers (with their
ffmpeg children; a Ray batch counts its tasks') / (cores x wall time). Ctrl-C stops the workers
cleanly, writes ``batch.json`` with the clips not finished as failed ("interrupted"), and raises
KeyboardInterrupt on (status 130).

Exit status (:func:`exit_status`): 0 when every clip was done or skipped, 1 when some failed; problems
before any clip can run (no inputs found, an unwritable OUTDIR, Ray unreachable) are one-line errors
with status 2, as for a single clip.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from tqdm import tqdm

import rhythmicnet
from rhythmicnet.errors import InputError
from rhythmicnet.fileio import ensure_output_dir, write_text_atomic
from rhythmicnet.offline.batch_inputs import clip_folders, input_sha256
from rhythmicnet.offline.batch_worker import clip_figures
from rhythmicnet.offline.render import RenderConfig, render_request

__all__ = ["available_cores", "completed_record", "exit_status", "run_batch"]


def available_cores() -> int:
    """The cores this process may run on (``--jobs``'s default)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def completed_record(folder: Path, request: dict[str, Any]) -> dict[str, Any] | None:
    """The clip's ``report.json`` when it was made for ``request`` and every output it lists is there;
    None otherwise (the clip is rendered again)."""
    try:
        record = json.loads((folder / "report.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("request") != request:
        return None
    outputs = record.get("outputs")
    if not isinstance(outputs, dict) or not outputs:
        return None
    if not all(isinstance(name, str) and (folder / name).is_file() for name in outputs.values()):
        return None
    return record  # type: ignore[no-any-return]


def exit_status(summary: dict[str, Any]) -> int:
    """0 when every clip was done or skipped, 1 when some failed."""
    return 1 if summary["totals"]["failed"] else 0


def _cpu_seconds(who: int) -> float:
    r = resource.getrusage(who)
    return r.ru_utime + r.ru_stime


def _fmt_clip(c: dict[str, Any]) -> str:
    head = f"  {c['status']:<8}{c['output']:<24}"
    if c["status"] == "failed":
        return head + str(c["error"])
    tempo = f"{c['tempo_bpm']:.1f} BPM" if c.get("tempo_bpm") else "no tempo"
    notes = ", ".join(f"{k} {v}" for k, v in (c.get("notes") or {}).items())
    took = f"{c['seconds']:.1f} s" if c.get("seconds") is not None else "-"
    return head + f"{c.get('duration_s') or 0:6.1f} s  {tempo:>10}  {notes:<24}{took:>8}"


def summary_text(summary: dict[str, Any]) -> str:
    """The summary as printed: one line of totals, one line per clip, where it was written."""
    t = summary["totals"]
    r = summary["runner"]
    how = f"{r['jobs']} worker process(es)" if r["kind"] == "local" else f"Ray, {r['cpus']} CPU(s)"
    lines = [f"{t['clips']} clips: {t['done']} done, {t['skipped']} skipped, {t['failed']} failed in "
             f"{t['wall_seconds']:.1f} s ({how}); {t['video_seconds']:.1f} s of video rendered, "
             f"{t['throughput']:.2f} video-s per wall-s; CPU {100 * t['cpu_utilisation']:.0f} % of "
             f"{t['cores']} cores"]
    lines += [_fmt_clip(c) for c in summary["clips"]]
    return "\n".join(lines)


def run_batch(clips: list[Path], outdir: str | Path, config: RenderConfig, *, jobs: int | None = None,
              ray: str | None = None, force: bool = False, quiet: bool = False,
              notes: list[str] | None = None) -> dict[str, Any]:
    """Render ``clips`` into ``outdir/<clip folder>`` and return the summary written to ``batch.json``.

    ``jobs``: worker processes (default: :func:`available_cores`; for ``ray``, the CPUs of a local Ray
    instance it starts). ``ray``: None runs on this machine; ``""`` a local Ray instance; otherwise a Ray
    address (``auto``, ``host:port``, ``ray://host:10001``). ``force``: render clips already complete.
    ``quiet``: no progress bar and no summary (failed clips still print their error on stderr).
    """
    if not clips:
        raise InputError("no videos or keypoint files found in the inputs")
    out = ensure_output_dir(outdir)
    t_start = time.perf_counter()
    cpu_self0 = _cpu_seconds(resource.RUSAGE_SELF)
    workers_cpu = 0.0
    cluster = None
    if ray is not None:
        from rhythmicnet.offline.batch_ray import connect

        cluster = connect(ray or None, num_cpus=jobs)
    jobs = max(1, jobs or available_cores())
    config_dict = asdict(config)
    names = clip_folders(clips)
    entries: list[dict[str, Any]] = []
    tasks: list[dict[str, Any]] = []
    for i, (clip, name) in enumerate(zip(clips, names, strict=True)):
        entry: dict[str, Any] = {"input": str(clip), "output": name, "status": None, "error": None}
        entries.append(entry)
        folder = out / name
        sha = None
        try:
            if not clip.is_file():
                input_sha256(clip)  # raises the one-line error: not found, a folder, unreadable
            if not force and (folder / "report.json").is_file():
                sha = input_sha256(clip)
                record = completed_record(folder, render_request(config, sha))
                if record is not None:
                    entry.update(status="skipped", **clip_figures(record))
                    continue
        except InputError as err:
            entry.update(status="failed", error=str(err))
            continue
        tasks.append({"index": i, "input": str(clip), "outdir": str(folder), "input_sha256": sha,
                      "config": config_dict})
    # the longest clips first (by file size): the last clip to start is then a short one
    tasks.sort(key=lambda t: -_size(t["input"]))

    bar = tqdm(total=len(entries), unit="clip", desc="render", disable=quiet, dynamic_ncols=True,
               initial=len(entries) - len(tasks))

    def on_outcome(task: dict[str, Any], outcome: dict[str, Any]) -> None:
        entries[task["index"]].update(outcome)
        bar.update(1)
        n_failed = sum(e["status"] == "failed" for e in entries)
        if n_failed:
            bar.set_postfix(failed=n_failed, refresh=False)

    interrupted = False
    try:
        if tasks:
            if cluster is not None:
                from rhythmicnet.offline.batch_ray import run_ray

                run_ray(cluster, tasks, on_outcome)
            else:
                from rhythmicnet.offline.batch_pool import run_local

                workers_cpu = run_local(tasks, jobs, on_outcome)
    except KeyboardInterrupt:
        interrupted = True
        raise
    finally:
        bar.close()
        for e in entries:
            if e["status"] is None:
                e.update(status="failed", error=f"{e['input']}: interrupted before it finished")
        wall = time.perf_counter() - t_start
        cpu = _cpu_seconds(resource.RUSAGE_SELF) - cpu_self0
        if cluster is not None:  # Ray's workers outlive the batch: each clip counts its own CPU
            cpu += sum(e.get("cpu_seconds") or 0.0 for e in entries)
            cores = cluster.cpus
            runner: dict[str, Any] = {"kind": "ray", "address": cluster.address or "local", "cpus": cluster.cpus}
            cluster.close()
        else:
            cpu += workers_cpu  # as each worker reports it (they are children of the fork server)
            cores = available_cores()
            runner = {"kind": "local", "jobs": min(jobs, max(1, len(tasks)))}
        summary = _summary(entries, runner, config, force, notes or [], interrupted, wall, cpu, cores)
        write_text_atomic(out / "batch.json", json.dumps(summary, indent=1) + "\n")
    if quiet:
        for e in entries:
            if e["status"] == "failed":
                print(f"rhythmicnet: error: {e['error']}", file=sys.stderr)
    else:
        print(summary_text(summary))
        print(f"wrote {out / 'batch.json'}")
    return summary


def _size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def _summary(entries: list[dict[str, Any]], runner: dict[str, Any], config: RenderConfig, force: bool,
             notes: list[str], interrupted: bool, wall: float, cpu: float, cores: int) -> dict[str, Any]:
    counts = {s: sum(e["status"] == s for e in entries) for s in ("done", "skipped", "failed")}
    video = sum(e.get("duration_s") or 0.0 for e in entries if e["status"] == "done")
    clips = []
    for e in entries:
        c = {"input": e["input"], "output": e["output"], "status": e["status"], "error": e["error"]}
        for k in ("duration_s", "tempo_bpm", "beat_count", "bars", "notes", "stage_seconds", "seconds",
                  "cpu_seconds"):
            c[k] = e.get(k)
        clips.append(c)
    settings = asdict(config)
    settings.pop("use_cache")
    return {
        "rhythmicnet": rhythmicnet.__version__,
        "runner": runner,
        "settings": settings,
        "force": force,
        "notes": notes,
        "interrupted": interrupted,
        "clips": clips,
        "totals": {"clips": len(entries), **counts, "wall_seconds": round(wall, 3),
                   "video_seconds": round(video, 3), "throughput": round(video / wall, 4) if wall > 0 else 0.0,
                   "cpu_seconds": round(cpu, 3), "cores": cores,
                   "cpu_utilisation": round(cpu / (cores * wall), 4) if wall > 0 else 0.0},
    }
