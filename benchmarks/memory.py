"""Peak memory of tracking must not grow with the video's length.

Tracks a generated video of ``--short`` and of ``--long`` frames (each in a fresh process, frames rendered lazily,
the synthetic segmenter as backend, results consumed and dropped as a writer would) and prints the two peak RSS
values and their ratio. Target: the long run within 10 % of the short one.

    python benchmarks/memory.py --short 100 --long 1000
"""

import argparse
import json
import resource
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def child(num_frames, height, width, objects):
    sys.path.insert(0, str(ROOT))
    from sampd_plugin.backends.synthetic import SyntheticSegmenter
    from sampd_plugin.synthetic import SyntheticScene
    from sampd_plugin.tracker import ObjectPrompt, SamPDTracker

    scene = SyntheticScene(seed=0, num_frames=num_frames, num_objects=objects, height=height, width=width)
    prompts = [ObjectPrompt(object_id=i, frame_number=1, mask=m) for i, m in scene.visible_masks(1).items()]
    frames = 0
    for r in SamPDTracker(SyntheticSegmenter(scene)).track(scene.iter_frames(), prompts):
        frames += 1
        del r
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"frames": frames, "peak_mib": peak_kib / 1024}))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--short", type=int, default=100)
    p.add_argument("--long", type=int, default=1000)
    p.add_argument("--height", type=int, default=240)
    p.add_argument("--width", type=int, default=427)
    p.add_argument("--objects", type=int, default=3)
    p.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child is not None:
        return child(args.child, args.height, args.width, args.objects)
    peaks = {}
    for n in (args.short, args.long):
        out = subprocess.run(
            [sys.executable, __file__, "--child", str(n), "--height", str(args.height), "--width", str(args.width),
             "--objects", str(args.objects)],
            check=True, capture_output=True, text=True,
        ).stdout
        peaks[n] = json.loads(out.strip().splitlines()[-1])
        print(f"{n:>5} frames: peak RSS {peaks[n]['peak_mib']:.1f} MiB ({peaks[n]['frames']} frames tracked)")
    ratio = peaks[args.long]["peak_mib"] / peaks[args.short]["peak_mib"]
    print(f"peak RSS ratio {args.long}/{args.short} frames: {ratio:.3f} (target <= 1.10)")


if __name__ == "__main__":
    main()
