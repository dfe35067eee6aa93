"""speed.py's object curve on this tree and on an earlier revision, interleaved in one run: what a change did to the
per-frame cost of many objects (issue 22: host work per object, decoder ms, ratio to one object).

The earlier revision is exported with ``git archive`` into a temporary folder, and this tree's benchmark driver
(``perf/speed.py``) and scene generator (``sampd_plugin/synthetic/scene.py``) are copied over it, so both sides
track the same generated video with the same driver and differ only in the algorithm code. Each side runs
``speed.py --no-baselines --no-e2e`` in a subprocess of its own (``OMP_NUM_THREADS`` fixed, process CPU time), the
sides alternating ``--rounds`` times (before, after, after, before, ...); per row the best of the rounds is kept
and the ratios after / before are printed.

    python perf/before_after.py --before 1462706 --model mobile_sam --objects 1 10 30 100 --presets full \
        [--frames 3] [--rounds 2] [--json out.json]
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DRIVER = ("perf/speed.py", "sampd_plugin/synthetic/scene.py")  # copied from this tree over the earlier revision


def export(rev: str, dest: Path) -> Path:
    """``rev``'s tracked files under ``dest``, with this tree's :data:`DRIVER` files over them."""
    dest.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    for rel in DRIVER:
        shutil.copyfile(ROOT / rel, dest / rel)
    return dest


def curve(tree: Path, args, out: Path) -> dict:
    """One ``speed.py`` run in ``tree`` (a subprocess, one thread) -> its JSON."""
    cmd = [sys.executable, str(tree / "perf/speed.py"), "--device", "cpu", "--model", args.model, "--encoders",
           args.model, "--objects", *map(str, args.objects), "--presets", *args.presets, "--frames",
           str(args.frames), "--threads", "1", "--no-baselines", "--no-e2e", "--json", str(out)]
    env = dict(os.environ, PYTHONPATH=str(tree), OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    subprocess.run(cmd, cwd=tree, env=env, check=True, stdout=subprocess.DEVNULL)
    return json.loads(out.read_text())


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--before", required=True, help="the earlier revision (git rev)")
    p.add_argument("--model", default="mobile_sam")
    p.add_argument("--objects", type=int, nargs="+", default=[1, 10, 30, 100])
    p.add_argument("--presets", nargs="+", default=["full"])
    p.add_argument("--frames", type=int, default=3, help="frames per tracking run (the first is the prompt frame)")
    p.add_argument("--rounds", type=int, default=2, help="runs of each side, alternating")
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)

    keys = ("ms", "decoder_ms", "upsample_ms", "host_ms")
    best = {"before": {}, "after": {}}  # side -> (preset, objects) -> row with the best of each key
    with tempfile.TemporaryDirectory(prefix="sampd-before-after-") as tmp:
        trees = {"before": export(args.before, Path(tmp) / "before"), "after": ROOT}
        for r in range(args.rounds):
            for side in ("before", "after") if r % 2 == 0 else ("after", "before"):
                data = curve(trees[side], args, Path(tmp) / f"{side}{r}.json")
                print(f"round {r + 1}: {side} done", flush=True)
                for row in data["overhead"]:
                    kept = best[side].setdefault((row["preset"], row["objects"]), dict(row))
                    for k in keys:
                        kept[k] = min(kept[k], row[k])
    print(f"\n{args.model}, CPU time of 1 thread, ms per frame (best of {args.rounds} alternating runs each); "
          f"before = {args.before}, after = this tree; host = ms/frame - decoder - upsampling")
    print(f"  {'preset':<9} {'objects':>7} {'ms/frame':>19} {'decoder ms':>19} {'upsample ms':>19} "
          f"{'host ms':>19} {'host/object':>15} {'after/before host':>18}")
    rows = []
    for (preset, n), a in sorted(best["after"].items()):
        b = best["before"][(preset, n)]
        row = dict(preset=preset, objects=a["objects"], before={k: b[k] for k in keys}, after={k: a[k] for k in keys},
                   host_ratio=a["host_ms"] / b["host_ms"])
        rows.append(row)
        print(f"  {preset:<9} {a['objects']:>7} " + " ".join(f"{b[k]:9.1f} -> {a[k]:6.1f}" for k in keys) +
              f" {b['host_ms'] / a['objects']:6.2f} -> {a['host_ms'] / a['objects']:5.2f} {row['host_ratio']:17.2f}x")
    if args.json:
        Path(args.json).write_text(json.dumps(dict(before=args.before, model=args.model, frames=args.frames,
                                                   rounds=args.rounds, rows=rows), indent=2))
    return rows


if __name__ == "__main__":
    main()
