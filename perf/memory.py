"""Peak memory of tracking must not grow with the video's length; and the memory allocator's effect on both.

Tracks a generated video of ``--short`` and of ``--long`` frames (each in a fresh process, frames rendered lazily,
results consumed and dropped as a writer would) and prints the two peak RSS values and their ratio. Target: the
long run within 10 % of the short one.

    python perf/memory.py --short 100 --long 1000
    python perf/memory.py --backend tiny --allocators default glibc-tuned jemalloc tcmalloc

``--backend synthetic`` (default) uses the synthetic segmenter; ``tiny`` the tiny random SAM (real ViT encoder and
SAM decoder code, ``--img-size`` input, preset ``box``, 1 thread) whose large short-lived tensors are what the
allocator settings are about. ``--allocators`` runs each child under an allocator setting
(:data:`ALLOCATORS`: glibc's default; glibc with the thresholds of ``sampd_plugin.ops.threads.MALLOC_ENV``; jemalloc or
tcmalloc through ``LD_PRELOAD`` when installed) and also prints CPU ms per frame (the page faults of returning
memory to the OS and taking it back cost time).
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sampd_plugin.ops.threads import MALLOC_ENV  # noqa: E402

_LIBS = "/usr/lib/x86_64-linux-gnu"
#: allocator name -> environment of the child process (None: not available on this machine)
ALLOCATORS = {
    "default": {},
    "glibc-tuned": dict(MALLOC_ENV),
    "jemalloc": {"LD_PRELOAD": f"{_LIBS}/libjemalloc.so.2"} if os.path.exists(f"{_LIBS}/libjemalloc.so.2") else None,
    "tcmalloc": ({"LD_PRELOAD": f"{_LIBS}/libtcmalloc_minimal.so.4"}
                 if os.path.exists(f"{_LIBS}/libtcmalloc_minimal.so.4") else None),
}


def child(num_frames, height, width, objects, backend, img_size):
    from sampd_plugin.core.tracker import ObjectPrompt, SamPDTracker
    from sampd_plugin.synthetic import SyntheticScene

    scene = SyntheticScene(seed=0, num_frames=num_frames, num_objects=objects, height=height, width=width)
    prompts = [ObjectPrompt(object_id=i, frame_number=1, mask=m) for i, m in scene.visible_masks(1).items()]
    if backend == "synthetic":
        from sampd_plugin.backends.synthetic import SyntheticSegmenter

        segmenter, config = SyntheticSegmenter(scene), None
    else:
        import torch

        from sampd_plugin.backends.tiny import tiny_backend
        from sampd_plugin.core.config import SamPDConfig

        torch.set_num_threads(1)
        segmenter, config = tiny_backend(seed=0, img_size=img_size), SamPDConfig.preset("box")
    frames = 0
    t0 = time.process_time()
    for r in SamPDTracker(segmenter, config).track(scene.iter_frames(), prompts):
        frames += 1
        del r
    cpu = time.process_time() - t0
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"frames": frames, "peak_mib": peak_kib / 1024, "cpu_ms_per_frame": 1e3 * cpu / frames}))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--short", type=int, default=100)
    p.add_argument("--long", type=int, default=1000)
    p.add_argument("--height", type=int, default=240)
    p.add_argument("--width", type=int, default=427)
    p.add_argument("--objects", type=int, default=3)
    p.add_argument("--backend", choices=["synthetic", "tiny"], default="synthetic")
    p.add_argument("--img-size", type=int, default=512, help="tiny SAM input size (SAM: 1024)")
    p.add_argument("--allocators", nargs="+", default=["default"], choices=sorted(ALLOCATORS))
    p.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child is not None:
        return child(args.child, args.height, args.width, args.objects, args.backend, args.img_size)
    results = {}
    for name in args.allocators:
        env = ALLOCATORS[name]
        if env is None:
            print(f"{name}: not installed, skipped")
            continue
        peaks = {}
        for n in (args.short, args.long):
            out = subprocess.run(
                [sys.executable, __file__, "--child", str(n), "--height", str(args.height), "--width",
                 str(args.width), "--objects", str(args.objects), "--backend", args.backend, "--img-size",
                 str(args.img_size)],
                check=True, capture_output=True, text=True, env=dict(os.environ, **env),
            ).stdout
            peaks[n] = json.loads(out.strip().splitlines()[-1])
            print(f"{name:>12} {n:>5} frames: peak RSS {peaks[n]['peak_mib']:.1f} MiB, "
                  f"{peaks[n]['cpu_ms_per_frame']:.1f} CPU ms/frame ({peaks[n]['frames']} frames tracked)", flush=True)
        ratio = peaks[args.long]["peak_mib"] / peaks[args.short]["peak_mib"]
        print(f"{name:>12} peak RSS ratio {args.long}/{args.short} frames: {ratio:.3f} (target <= 1.10)", flush=True)
        results[name] = peaks
    if "default" in results and len(results) > 1:
        base = results["default"][args.long]
        for name, peaks in results.items():
            r = peaks[args.long]
            print(f"{name:>12} vs default ({args.long} frames): peak RSS {r['peak_mib'] / base['peak_mib']:.3f}x, "
                  f"CPU time per frame {r['cpu_ms_per_frame'] / base['cpu_ms_per_frame']:.3f}x")


if __name__ == "__main__":
    main()
