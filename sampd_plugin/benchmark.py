"""Paper-table harness: runs tracker presets over sequences with ground truth and scores them with the DAVIS
semi-supervised protocol (J, F, J&F; :mod:`sampd_plugin.metrics`).

Here on generated videos with the synthetic segmenter (``python -m sampd_plugin.benchmark``); the same
:func:`score_sequence` scores real datasets. Synthetic numbers exercise the method's components against exact
ground truth; they are NOT reproductions of the paper's DAVIS / YouTube-VOS figures.

This module imports no FiftyOne.
"""

from __future__ import annotations

import argparse
from typing import Callable, Dict, Iterable, Iterator, List, Mapping, Sequence, Tuple, Union

import numpy as np

from sampd_plugin import metrics
from sampd_plugin.config import SamPDConfig
from sampd_plugin.tracker import FrameResult, ObjectPrompt, SamPDTracker

ABLATION_PRESETS = ("point", "point+refine", "box", "box+mp", "box+refine", "full")


def score_sequence(
    results: Iterable[FrameResult], gt_masks: Callable[[int], Dict[int, np.ndarray]], num_frames: int
) -> Tuple[List[metrics.Stats], List[metrics.Stats]]:
    """Per-object J and F statistics of one sequence, DAVIS protocol: each object is scored on the frames after
    its first (prompt) frame, excluding the sequence's last frame; an object absent from the ground truth of a
    frame has an empty ground-truth mask there.

    Args:
        results: the tracker's frame results, in increasing frame order (1-based frame numbers)
        gt_masks: ``frame_number -> {object_id: (H, W) bool}`` (visible objects only)
        num_frames: the sequence length

    Returns:
        ``(j_stats, f_stats)``, one :class:`sampd_plugin.metrics.Stats` per object
    """
    js: Dict[int, List[float]] = {}
    fs: Dict[int, List[float]] = {}
    for r in results:
        if r.frame_number >= num_frames:  # the last frame is not scored
            continue
        gt = gt_masks(r.frame_number)
        for oid, o in r.objects.items():
            js.setdefault(oid, [])
            fs.setdefault(oid, [])
            if o.is_prompt:
                continue
            g = gt.get(oid)
            if g is None:
                g = np.zeros_like(o.mask)
            js[oid].append(metrics.region_similarity(o.mask, g))
            fs[oid].append(metrics.boundary_f_measure(o.mask, g))
    ids = sorted(js)
    return [metrics.statistics(js[i]) for i in ids], [metrics.statistics(fs[i]) for i in ids]


def run_synthetic_ablation(
    presets: Union[Sequence[str], Mapping[str, SamPDConfig]] = ABLATION_PRESETS,
    num_videos: int = 10,
    num_frames: int = 40,
    num_objects: int = 3,
    height: int = 240,
    width: int = 320,
    seed: int = 0,
) -> Dict[str, Dict[str, float]]:
    """Runs each preset (a name, or ``{row name: SamPDConfig}``) on the same generated videos with the synthetic
    segmenter; returns ``{row name: {"J&F-Mean": ..., "J-Mean": ..., ...}}`` (:func:`sampd_plugin.metrics.aggregate`)."""
    from sampd_plugin.backends.synthetic import SyntheticSegmenter
    from sampd_plugin.synthetic import SyntheticScene

    configs = presets if isinstance(presets, Mapping) else {name: SamPDConfig.preset(name) for name in presets}
    table = {}
    for name, config in configs.items():
        j_all, f_all = [], []
        for v in range(num_videos):
            scene = SyntheticScene(
                seed=seed + v, num_frames=num_frames, num_objects=num_objects, height=height, width=width
            )
            prompts = [ObjectPrompt(object_id=i, frame_number=1, mask=m) for i, m in scene.visible_masks(1).items()]
            results = SamPDTracker(SyntheticSegmenter(scene), config).track(scene.iter_frames(), prompts)
            j, f = score_sequence(results, scene.visible_masks, num_frames)
            j_all += j
            f_all += f
        table[name] = metrics.aggregate(j_all, f_all)
    return table


def format_table(table: Dict[str, Dict[str, float]], title: str = "") -> str:
    cols = ("J&F-Mean", "J-Mean", "F-Mean", "J-Recall", "J-Decay")
    lines = [title] if title else []
    lines.append(f"{'preset':<14}" + "".join(f"{c:>10}" for c in cols))
    for name, row in table.items():
        lines.append(f"{name:<14}" + "".join(f"{100 * row[c]:>10.1f}" for c in cols))
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--presets", nargs="+", default=list(ABLATION_PRESETS))
    p.add_argument("--videos", type=int, default=10)
    p.add_argument("--frames", type=int, default=40)
    p.add_argument("--objects", type=int, default=3)
    p.add_argument("--height", type=int, default=240)
    p.add_argument("--width", type=int, default=320)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    table = run_synthetic_ablation(args.presets, args.videos, args.frames, args.objects, height=args.height,
                                   width=args.width, seed=args.seed)
    print(format_table(table, "SAM-PD ablation on generated videos, synthetic segmenter (not paper numbers)"))


if __name__ == "__main__":
    main()
