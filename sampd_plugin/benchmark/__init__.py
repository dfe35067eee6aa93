"""Paper-table harness.

- ``python -m sampd_plugin.benchmark {davis,ytvos,uvo,synthetic} --root PATH ...`` (:mod:`.cli`): the paper's
  tables on the real DAVIS 2017 / YouTube-VOS 2018 / UVO trees (:mod:`.vos`, :mod:`.vis`, :mod:`.timing`,
  :mod:`.oracle`), reading the folders directly;
- this module: the in-memory ablation on generated videos with the synthetic segmenter
  (:func:`run_synthetic_ablation`, scored per object with :func:`score_sequence`; what ``python -m
  sampd_plugin.benchmark`` with no arguments prints).

Synthetic numbers exercise the method's components against exact ground truth; they are NOT reproductions of the
paper's DAVIS / YouTube-VOS / UVO figures.

This package imports no FiftyOne.
"""

from __future__ import annotations

from typing import Callable, Dict, Iterable, List, Mapping, Sequence, Tuple, Union

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
