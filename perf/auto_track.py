"""``sampd_plugin.auto_track`` end to end on a generated video with many objects (issue 22): frames per second,
peak memory and the label writer's share, per preset, through FiftyOne on a private mongod.

The video is a :func:`sampd_plugin.synthetic.make_dataset` scene with ``--objects`` objects (smaller and spread over
the frame: ``object_size = min(1, sqrt(5 / objects))``), written once; each run is a fresh process (its peak resident
memory is the run's own) that calls ``auto_track`` with the synthetic segmenter (automatic masks of the visible
objects, at most ``--max-objects``) into an output field of its own; the presets alternate over ``--rounds``.
Per run: wall and CPU time (all threads), frames/s, peak RSS and its growth over the process before the run, and
what the label writer cost: the tracking thread's wall time inside ``BackgroundWriter.add`` / ``flush`` (waiting
for the writer: what the writer adds to the run) as a share of the run's wall time, and the writer thread's own CPU
time as a share of the run's CPU time.

    python perf/auto_track.py [--objects 100] [--frames 16] [--presets full adaptive] [--rounds 2] [--json f]
"""

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, os, resource, sys, threading, time
sys.path.insert(0, sys.argv[1])
import torch
torch.set_num_threads(1)
import fiftyone as fo
import sampd_plugin as sp
from sampd_plugin.fo import store

blocked, writer_cpu = [0.0], [0.0]
def timed(fn):
    def run(self, *a, **k):
        t = time.perf_counter()
        try:
            return fn(self, *a, **k)
        finally:
            blocked[0] += time.perf_counter() - t
    return run
def counted(fn):
    def run(self):
        try:
            return fn(self)
        finally:
            writer_cpu[0] += time.thread_time()
    return run
store.BackgroundWriter.add = timed(store.BackgroundWriter.add)
store.BackgroundWriter.flush = timed(store.BackgroundWriter.flush)
store.BackgroundWriter._run = counted(store.BackgroundWriter._run)

ds = fo.load_dataset(sys.argv[2])
rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t, c = time.perf_counter(), time.process_time()
summary = sp.auto_track(ds, model="synthetic", device="cpu", config=sys.argv[3], max_objects=int(sys.argv[4]),
                        label_field=sys.argv[5], progress=False)
wall, cpu = time.perf_counter() - t, time.process_time() - c
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
label = ds.first().frames[2][sys.argv[5]]
print(json.dumps(dict(frames=summary["frames"], objects=summary["objects"], tracked=len(label.detections), wall=wall,
                      cpu=cpu, peak_rss_mib=peak / 1024, rss_growth_mib=(peak - rss0) / 1024,
                      writer_blocked=blocked[0], writer_cpu=writer_cpu[0])))
"""


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--objects", type=int, default=100, help="objects in the generated video")
    p.add_argument("--max-objects", type=int, default=100, help="auto_track's max_objects")
    p.add_argument("--frames", type=int, default=16)
    p.add_argument("--presets", nargs="+", default=["full", "adaptive"])
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)

    sys.path.insert(0, str(ROOT))
    from tests import isolated_db

    isolated_db.start()  # (its URI is inherited by the runs)
    os.environ.setdefault("FIFTYONE_DATABASE_VALIDATION", "false")
    os.environ.setdefault("FIFTYONE_DO_NOT_TRACK", "true")
    from sampd_plugin.synthetic import make_dataset

    ds = make_dataset(num_videos=1, num_frames=args.frames, num_objects=args.objects, persistent=True,
                      object_size=min(1.0, (5 / args.objects) ** 0.5))
    print(f"auto_track on a generated {args.frames}-frame 854x480 video with {args.objects} objects, synthetic "
          f"segmenter, 1 torch thread, CPU; runs alternate", flush=True)
    env = dict(os.environ, OMP_NUM_THREADS="1", SAMPD_NUM_THREADS="1")
    runs = {preset: [] for preset in args.presets}
    for r in range(args.rounds):
        for preset in args.presets if r % 2 == 0 else args.presets[::-1]:
            out = subprocess.run([sys.executable, "-c", CHILD, str(ROOT), ds.name, preset, str(args.max_objects),
                                  f"auto_{preset.replace('-', '_')}_{r}"], env=env, check=True, capture_output=True,
                                 text=True).stdout
            row = json.loads(out.strip().splitlines()[-1])
            row.update(fps=row["frames"] / row["wall"], cpu_fps=row["frames"] / row["cpu"],
                       writer_share=row["writer_blocked"] / row["wall"], writer_cpu_share=row["writer_cpu"] / row["cpu"])
            runs[preset].append(row)
            print(f"  {preset:<9} round {r + 1}: {row['tracked']} objects tracked, {row['frames']} frames, "
                  f"{row['fps']:.3f} frames/s wall ({row['cpu_fps']:.3f} per CPU second), peak RSS "
                  f"{row['peak_rss_mib']:.0f} MiB (+{row['rss_growth_mib']:.0f} MiB during the run), writer: "
                  f"{100 * row['writer_share']:.2f} % of the wall time waited for, "
                  f"{100 * row['writer_cpu_share']:.2f} % of the CPU time", flush=True)
    best = {preset: max(rows, key=lambda x: x["cpu_fps"]) for preset, rows in runs.items()}
    if len(best) > 1:
        first = args.presets[0]
        for preset in args.presets[1:]:
            print(f"  {preset} / {first}, frames per CPU second (best runs): "
                  f"{best[preset]['cpu_fps'] / best[first]['cpu_fps']:.2f}x")
    if args.json:
        Path(args.json).write_text(json.dumps(dict(settings=vars(args), runs=runs), indent=2))
    ds.delete()
    return runs


if __name__ == "__main__":
    main()
