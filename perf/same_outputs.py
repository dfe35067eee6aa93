"""Whether a change kept the tracker's outputs bit for bit: every preset tracked by this tree and by an earlier
revision, on the same inputs, compared exactly (issue 22: host work made cheaper must not change a result).

The earlier revision is exported with ``git archive`` (:func:`before_after.export`, which also copies this tree's
benchmark driver and scene generator over it). Each tree tracks, in a subprocess of its own with one thread, each
``--presets`` row (a preset name, or ``name:setting=value,...`` for a setting of its own) on three inputs: 30
generated objects with the synthetic segmenter, the ``crossing`` scenario (objects that cross and occlude each
other) and 5 objects with the tiny random-weight SAM. Per row and input, every object on every frame is compared:
the mask (a hash of its bits), box, score, predicted IoU, lost / occluded flags and identity evidence, floats
exactly.

    python perf/same_outputs.py --before 25105fc [--presets full adaptive overlap "adaptive:selection=iou_prev"]
"""

import argparse
import hashlib
import os
import pickle
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAPER_AND_OURS = ["point", "point+refine", "box", "box+mp", "box+refine", "full", "full-iou", "full-no-neg-refine",
                  "full-no-neg-mp", "adaptive", "overlap", "adaptive:selection=iou_prev",
                  "adaptive:selection=predicted_iou"]


def row_config(row: str):
    """``name`` or ``name:setting=value,...`` -> the :class:`SamPDConfig`."""
    from sampd_plugin.core.config import SamPDConfig

    name, _, settings = row.partition(":")
    overrides = {}
    for item in filter(None, settings.split(",")):
        key, value = item.split("=")
        overrides[key] = float(value) if value.replace(".", "", 1).isdigit() else value
    return SamPDConfig.preset(name, **overrides)


def outputs(rows) -> dict:
    """``{(input, row): (hash of the masks, [(frame, object, box, score, iou, lost, confusion, occluded), ...])}``
    of this process's tree."""
    import numpy as np
    import torch

    from sampd_plugin.backends.sam import SamBackend
    from sampd_plugin.backends.synthetic import SyntheticSegmenter
    from sampd_plugin.backends.tiny import build_tiny_sam
    from sampd_plugin.core.tracker import ObjectPrompt, SamPDTracker
    from sampd_plugin.synthetic import SyntheticScene

    torch.set_num_threads(1)
    many = SyntheticScene(seed=3, num_frames=8, num_objects=30, height=240, width=320, object_size=0.4)
    crossing = SyntheticScene(seed=4, num_frames=6, num_objects=8, height=240, width=320, scenario="crossing")
    small = SyntheticScene(seed=5, num_frames=4, num_objects=5, height=96, width=128, object_size=0.6)
    tiny = SamBackend(model=build_tiny_sam(seed=0), model_type="tiny", device="cpu")
    inputs = {"synthetic 30": (SyntheticSegmenter(many), many), "crossing": (SyntheticSegmenter(crossing), crossing),
              "tiny SAM": (tiny, small)}
    out = {}
    for name, (backend, scene) in inputs.items():
        prompts = [ObjectPrompt(object_id=i, frame_number=1, mask=m) for i, m in scene.visible_masks(1).items()
                   if m.sum() >= 20]
        for row in rows:
            digest, values = hashlib.sha256(), []
            for r in SamPDTracker(backend, row_config(row), prefetch=0).track(scene.iter_frames(), prompts):
                for oid, o in sorted(r.objects.items()):
                    digest.update(np.packbits(o.mask).tobytes())
                    values.append((r.frame_number, oid, None if o.box is None else o.box.tolist(), o.score, o.iou,
                                   o.lost, o.confusion, o.occluded))
            out[(name, row)] = (digest.hexdigest(), values)
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--before", help="the earlier revision (git rev)")
    p.add_argument("--presets", nargs="+", default=PAPER_AND_OURS)
    p.add_argument("--dump", help=argparse.SUPPRESS)  # (internal: write this tree's outputs to this file)
    args = p.parse_args(argv)
    if args.dump:
        Path(args.dump).write_bytes(pickle.dumps(outputs(args.presets)))
        return None
    sys.path.insert(0, str(ROOT / "perf"))
    from before_after import export

    with tempfile.TemporaryDirectory(prefix="sampd-same-outputs-") as tmp:
        trees = {"before": export(args.before, Path(tmp) / "before"), "after": ROOT}
        got = {}
        for side, tree in trees.items():
            dump = Path(tmp) / f"{side}.pkl"
            env = dict(os.environ, PYTHONPATH=str(tree), OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
            subprocess.run([sys.executable, str(ROOT / "perf/same_outputs.py"), "--dump", str(dump), "--presets",
                            *args.presets], cwd=tree, env=env, check=True)
            got[side] = pickle.loads(dump.read_bytes())
    different = 0
    for key in sorted(got["before"]):
        same = got["before"][key] == got["after"][key]
        different += not same
        values = got["after"][key][1]
        print(f"  {key[0]:<13} {key[1]:<32} {len(values):5d} object-frames  {'identical' if same else 'DIFFERENT'}")
    print(f"{len(got['before'])} runs compared with {args.before}: {different} different")
    return different


if __name__ == "__main__":
    sys.exit(1 if main() else 0)
