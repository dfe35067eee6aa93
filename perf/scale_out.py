"""Scale-out of delegated workers on one machine: 4 samples queued with ``queue_track`` and drained by 1 vs N
``run_worker`` processes; prints the speed-up ratios (target: 2 workers on 2 cores >= 1.6x one worker; N workers
never slower than one).

    python perf/scale_out.py [--samples 4] [--frames 6] [--workers 1 2] [--rounds 2] [--oversubscribed]

Private MongoDB (``tests.isolated_db``), a generated video dataset, the tiny random SAM (real encoder and
decoder code path), preset ``box``. Worker processes are started and made ready (FiftyOne, torch and the model
imported) before the job is queued; the time is from queueing to the last operation finished. Each worker sets its
thread count with :mod:`sampd_plugin.ops.threads` (cores / live workers; ``SAMPD_NUM_THREADS`` overrides it).
``--oversubscribed`` also runs N workers with ``SAMPD_NUM_THREADS=<cores>`` each: what every worker did before
(all cores per process). ``--local`` replaces FiftyOne's queue by a static split of the samples among the worker
processes (no FiftyOne, no database: the thread-count policy alone, e.g. under ``taskset -c 0,1`` on a machine
without FiftyOne). Configurations are interleaved over ``--rounds`` rounds (the machine may be shared) and
the best round of each is reported, together with the CPU seconds the workers used while draining the queue.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests import isolated_db  # noqa: E402

WORKER = """
import sys, time
import fiftyone  # noqa: F401
import sampd_plugin as sp
from sampd_plugin.backends.registry import BackendCache
BackendCache("tiny", device="cpu").get()  # warm imports and the model code
print("ready", time.process_time(), flush=True)
import logging; logging.basicConfig(level=logging.DEBUG if len(sys.argv) > 3 else logging.WARNING, format="%(asctime)s %(process)d %(name)s %(message)s")
n = sp.run_worker(dataset_name=sys.argv[1], idle_exit_seconds=float(sys.argv[2]), poll_seconds=0.2, log=len(sys.argv) > 3)
print("executed", n, "cpu", time.process_time(), flush=True)
"""


LOCAL_WORKER = """
import sys, time
from sampd_plugin.backends.tiny import tiny_backend
from sampd_plugin.core.config import SamPDConfig
from sampd_plugin.core.tracker import ObjectPrompt, SamPDTracker
from sampd_plugin.ops import threads
from sampd_plugin.synthetic import SyntheticScene
worker, workers, samples, frames, h, w = map(int, sys.argv[1:7])
backend = tiny_backend(seed=0)
scenes = [SyntheticScene(seed=i, num_frames=frames, num_objects=1, height=h, width=w) for i in range(samples)]
print("ready", time.process_time(), flush=True)
sys.stdin.readline()  # start together

@threads.working
def track(scene):
    prompts = [ObjectPrompt(object_id=i, frame_number=1, mask=m) for i, m in scene.visible_masks(1).items()]
    for _ in SamPDTracker(backend, SamPDConfig.preset("box")).track(scene.iter_frames(), prompts):
        threads.refresh()

for i in range(worker, samples, workers):
    track(scenes[i])
print("executed", len(range(worker, samples, workers)), "cpu", time.process_time(), flush=True)
"""


def run_local(workers: int, env: dict, samples: int, frames: int, h: int, w: int) -> dict:
    """``workers`` processes tracking a static split of ``samples`` synthetic scenes (no FiftyOne)."""
    procs = [subprocess.Popen([sys.executable, "-c", LOCAL_WORKER, str(i), str(workers), str(samples), str(frames),
                               str(h), str(w)], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
             for i in range(workers)]
    ready = [float(p.stdout.readline().split()[1]) for p in procs]
    t0 = time.perf_counter()
    for p in procs:
        p.stdin.write("go\n")
        p.stdin.flush()
    outs = [p.stdout.readline().split() for p in procs]
    wall = time.perf_counter() - t0
    for p in procs:
        p.wait()
    return dict(workers=workers, seconds=wall, cpu_seconds=sum(float(o[3]) - r for o, r in zip(outs, ready)),
                per_worker=[int(o[1]) for o in outs])


def _plugins_dir() -> str:
    d = Path(tempfile.mkdtemp(prefix="sampd-bench-plugins-"))
    (d / "sampd").symlink_to(ROOT, target_is_directory=True)
    return str(d)


def run_config(dataset, workers: int, env: dict, label_field: str, idle_exit: float) -> dict:
    """Starts ``workers`` run_worker processes, queues the dataset, waits until they drain it."""
    import sampd_plugin as sp

    procs, logs = [], []
    for i in range(workers):  # output to files: a full pipe would block a worker
        log = tempfile.NamedTemporaryFile("w+", prefix=f"sampd-worker{i}-", suffix=".log")
        logs.append(log)
        procs.append(subprocess.Popen([sys.executable, "-c", WORKER, dataset.name, str(idle_exit)], env=env,
                                      stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True))
    for p, log in zip(procs, logs):
        while "ready" not in Path(log.name).read_text():
            if p.poll() is not None:
                raise RuntimeError(f"worker did not start: {Path(log.name).read_text()[-3000:]}")
            time.sleep(0.2)
    t0 = time.perf_counter()
    queued = sp.queue_track(dataset, model="tiny", device="cpu", label_field=label_field, config="box",
                            samples_per_operation=1)
    dataset.reload()
    while True:
        done = sum(bool((s[f"{label_field}_track"] or {}).get("done")) for s in dataset.select_fields(
            f"{label_field}_track"))
        if done == len(dataset):
            break
        for p, log in zip(procs, logs):
            if p.poll() is not None and p.returncode != 0:
                raise RuntimeError(Path(log.name).read_text()[-3000:])
        time.sleep(0.1)
    wall = time.perf_counter() - t0
    executed, cpu = [], 0.0
    for p, log in zip(procs, logs):
        p.wait(timeout=120)
        out = Path(log.name).read_text()
        log.close()
        end = out.split("executed")[-1].split()
        executed.append(int(end[0]))
        cpu += float(end[2]) - float(out.split("ready")[1].split()[0])  # CPU time of the drain, not start-up
    return dict(workers=workers, seconds=wall, cpu_seconds=cpu, operations=len(queued["operations"]),
                per_worker=executed)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=int, default=4)
    ap.add_argument("--frames", type=int, default=6)
    ap.add_argument("--height", type=int, default=240)
    ap.add_argument("--width", type=int, default=320)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--oversubscribed", action="store_true",
                    help="also run N > 1 workers with all cores each (SAMPD_NUM_THREADS=<cores>), the old behaviour")
    ap.add_argument("--json", default=None, help="write the results to this JSON file")
    ap.add_argument("--local", action="store_true", help="no FiftyOne: static split among worker processes")
    args = ap.parse_args(argv)
    if args.local:
        return main_local(args)

    isolated_db.start()
    os.environ.update(FIFTYONE_DATABASE_VALIDATION="false", FIFTYONE_DO_NOT_TRACK="true",
                      FIFTYONE_ALLOW_LEGACY_ORCHESTRATORS="true", FIFTYONE_PLUGINS_DIR=_plugins_dir())
    os.environ.pop("SAMPD_NUM_THREADS", None)
    from sampd_plugin.ops import threads
    from sampd_plugin.synthetic import make_dataset

    cores = threads.available_cores()
    dataset = make_dataset(num_videos=args.samples, num_frames=args.frames, num_objects=1, height=args.height,
                           width=args.width, seed=0)
    base_env = dict(os.environ, SAMPD_WORKER_DIR=tempfile.mkdtemp(prefix="sampd-bench-workers-"))
    configs = [(n, "split", dict(base_env)) for n in args.workers]
    if args.oversubscribed:
        configs += [(n, "all cores each", dict(base_env, SAMPD_NUM_THREADS=str(cores)))
                    for n in args.workers if n > 1]
    best = {}
    k = 0
    for r in range(args.rounds):
        for n, mode, env in configs:
            k += 1
            res = run_config(dataset, n, env, f"bench{k}", idle_exit=8.0)  # > queueing time
            key = (n, mode)
            if key not in best or res["seconds"] < best[key]["seconds"]:
                best[key] = dict(res, mode=mode)
            print(f"round {r + 1}: {n} worker(s), {mode}: {res['seconds']:.1f} s wall, {res['cpu_seconds']:.1f} CPU s, "
                  f"operations per worker {res['per_worker']}", flush=True)
    one = best[(1, "split")]["seconds"] if (1, "split") in best else None
    print(f"\n{args.samples} samples x {args.frames} frames ({args.height}x{args.width}), tiny SAM, preset box, "
          f"{cores} cores; best of {args.rounds} rounds")
    print(f"{'workers':>7} {'threads':>16} {'wall s':>8} {'CPU s':>8} {'speed-up vs 1':>14}")
    for (n, mode), res in sorted(best.items()):
        ratio = f"{one / res['seconds']:.2f}x" if one else "-"
        print(f"{n:>7} {mode:>16} {res['seconds']:>8.1f} {res['cpu_seconds']:>8.1f} {ratio:>14}")
    if args.json:
        Path(args.json).write_text(json.dumps([dict(v, workers=n) for (n, _), v in best.items()], indent=2))
    return best


def main_local(args):
    from sampd_plugin.ops import threads

    cores = threads.available_cores()
    base_env = dict(os.environ, SAMPD_WORKER_DIR=tempfile.mkdtemp(prefix="sampd-bench-workers-"),
                    PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    base_env.pop("SAMPD_NUM_THREADS", None)
    configs = [(n, "split", dict(base_env)) for n in args.workers]
    if args.oversubscribed:
        configs += [(n, "all cores each", dict(base_env, SAMPD_NUM_THREADS=str(cores)))
                    for n in args.workers if n > 1]
    best = {}
    for r in range(args.rounds):
        for n, mode, env in configs:
            res = run_local(n, env, args.samples, args.frames, args.height, args.width)
            if (n, mode) not in best or res["seconds"] < best[(n, mode)]["seconds"]:
                best[(n, mode)] = dict(res, mode=mode)
            print(f"round {r + 1}: {n} worker(s), {mode}: {res['seconds']:.1f} s wall, {res['cpu_seconds']:.1f} CPU s",
                  flush=True)
    one = best[(1, "split")]["seconds"]
    print(f"\n--local: {args.samples} samples x {args.frames} frames ({args.height}x{args.width}), tiny SAM, preset "
          f"box, {cores} cores; best of {args.rounds} rounds")
    print(f"{'workers':>7} {'threads':>16} {'wall s':>8} {'CPU s':>8} {'speed-up vs 1':>14}")
    for (n, mode), res in sorted(best.items()):
        print(f"{n:>7} {mode:>16} {res['seconds']:>8.1f} {res['cpu_seconds']:>8.1f} {one / res['seconds']:>13.2f}x")
    if args.json:
        Path(args.json).write_text(json.dumps([dict(v) for v in best.values()], indent=2))
    return best


if __name__ == "__main__":
    main()
