"""The end-to-end demo behind ``make demo``: generated videos -> SAM-PD tracking -> J&F evaluation.

Run it with ``python -m sampd_plugin.demo`` (or ``make demo``, which installs everything first)::

    python -m sampd_plugin.demo --num-videos 2 --num-frames 30 --model synthetic

Steps:

1. builds (or rebuilds) the persistent FiftyOne dataset ``sampd-demo`` of generated videos with exact ground truth
   (:func:`sampd_plugin.synthetic.make_dataset`; ground truth in ``frames.ground_truth``: instance masks with
   ``index``) on the embedded database, and describes it;
2. tracks every object from its first ground-truth annotation with :func:`sampd_plugin.track` into
   ``frames.sampd``;
3. evaluates with :func:`sampd_plugin.evaluate_jf` (eval key ``jf``), prints the J&F table, the saved views for
   browsing failures and how to open the App.

With the default ``--model synthetic`` the masks come from a deterministic SYNTHETIC promptable segmenter driven by
the generated videos' ground truth; the scores test the pipeline and are NOT a reproduction of the paper's numbers.

Exit status: 0 when the whole job ran; 1 on errors (e.g. a missing SAM checkpoint for ``--model vit_*``, with a
message naming the file and where to put it).
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Optional, Sequence

DEFAULT_NAME = "sampd-demo"


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m sampd_plugin.demo",
        description="Build a generated video dataset with exact ground truth, track it with SAM-PD, "
        "evaluate J&F and print how to browse the result in the FiftyOne App.",
    )
    parser.add_argument("--name", default=DEFAULT_NAME, help="dataset name (default: %(default)s; overwritten)")
    parser.add_argument("--num-videos", type=int, default=2, help="number of generated videos (default: %(default)s)")
    parser.add_argument("--num-frames", type=int, default=30, help="frames per video (default: %(default)s)")
    parser.add_argument("--num-objects", type=int, default=3, help="objects per video (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="random seed of the generator (default: %(default)s)")
    parser.add_argument(
        "--model",
        default="synthetic",
        help="segmenter: 'synthetic' (no weights; driven by the generated ground truth) or a SAM model type "
        "such as vit_b / vit_l / vit_h (needs a checkpoint, see README) (default: %(default)s)",
    )
    parser.add_argument("--checkpoint", default=None, help="path to a SAM checkpoint (.pth) for --model vit_*")
    parser.add_argument("--device", default=None, help="torch device, e.g. cpu or cuda:0 (default: automatic)")
    args = parser.parse_args(argv)
    for flag in ("num_videos", "num_frames", "num_objects"):
        if getattr(args, flag) < 1:
            parser.error(f"--{flag.replace('_', '-')} must be >= 1")
    return args


def _say(msg: str = "") -> None:
    print(msg, flush=True)


def build_dataset(args: argparse.Namespace):
    """Builds the persistent demo dataset with ``make_dataset``, replacing an existing one of the same name."""
    import fiftyone as fo

    from sampd_plugin.synthetic import make_dataset

    if fo.dataset_exists(args.name):
        fo.delete_dataset(args.name)
    dataset = make_dataset(
        name=args.name,
        num_videos=args.num_videos,
        num_frames=args.num_frames,
        num_objects=args.num_objects,
        seed=args.seed,
    )
    dataset.persistent = True
    return dataset


def describe(dataset) -> None:
    """Prints the samples, frames and ground-truth objects of each video."""
    _say(f"Dataset '{dataset.name}': {len(dataset)} videos, {dataset.count('frames')} frames (persistent)")
    filepaths = dataset.values("filepath")
    indexes = dataset.values("frames.ground_truth.detections.index")
    metadata = dataset.values("metadata")
    for filepath, frames, meta in zip(filepaths, indexes, metadata):
        objects = sorted({i for dets in frames or [] for i in (dets or []) if i is not None})
        size = ""
        if meta is not None and getattr(meta, "frame_width", None):
            size = f", {meta.frame_width}x{meta.frame_height} @ {meta.frame_rate:g} fps"
        _say(f"  {filepath}: {len(frames or [])} frames{size}, {len(objects)} objects (index {objects})")


def print_app_help(dataset) -> None:
    views = dataset.list_saved_views() if hasattr(dataset, "list_saved_views") else []
    _say()
    if views:
        _say("Saved views for browsing tracking failures (App: 'saved views' menu):")
        for name in views:
            _say(f"  - {name}")
        _say()
    _say("Open the result in the FiftyOne App:")
    _say("  source .venv/bin/activate")
    _say(f"  fiftyone app launch {dataset.name}")
    _say("or from Python:")
    _say(f'  import fiftyone as fo; session = fo.launch_app(fo.load_dataset("{dataset.name}")); session.wait()')


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    t0 = time.time()
    from sampd_plugin import evaluate_jf, track

    _say(f"[1/3] building the generated demo dataset '{args.name}' ...")
    dataset = build_dataset(args)
    describe(dataset)
    _say(f"      ({time.time() - t0:.1f}s)")

    synthetic = args.model == "synthetic"
    _say()
    _say(f"[2/3] tracking with SAM-PD, model '{args.model}' ...")
    if synthetic:
        _say("      NOTE: model 'synthetic' is a deterministic SYNTHETIC segmenter driven by the generated ground truth.")
        _say("      Its scores check the pipeline end to end; they are NOT a reproduction of the paper's results.")
    t1 = time.time()
    summary = track(dataset, prompt_field="ground_truth", label_field="sampd", model=args.model,
                    checkpoint=args.checkpoint, device=args.device)
    _say(f"      tracked {summary['objects']} objects over {summary['frames']} frames on {summary.get('device', '?')}"
         f" ({summary['frames_per_second'] or 0:.1f} frames/s, {time.time() - t1:.1f}s)")

    _say()
    _say("[3/3] evaluating J&F (eval key 'jf') ...")
    results = evaluate_jf(dataset, "sampd", gt_field="ground_truth", eval_key="jf")
    _say()
    if synthetic:
        _say("J&F of SAM-PD with the SYNTHETIC segmenter on GENERATED videos (not paper numbers):")
    else:
        _say(f"J&F of SAM-PD with {args.model} on GENERATED videos (not a paper benchmark):")
    results.print_report()
    print_app_help(dataset)
    _say()
    _say(f"Done in {time.time() - t0:.1f}s.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
