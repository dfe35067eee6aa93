"""How well the ground-truth-free "doubtful" rule (``sampd_plugin.core.quality``) predicts failing masks (J < 0.5).

Tracks generated videos with the synthetic segmenter under several presets, scores every tracked object on every
non-prompt frame against the exact ground truth (J), and prints, per preset and pooled, the precision
P(J < 0.5 | doubtful) and recall P(doubtful | J < 0.5) of:

- ``rule``: :func:`sampd_plugin.core.quality.is_doubtful` (lost, predicted IoU < 0.5, selection score < 0.1, or
  a confusion: the tracker's own identity evidence, :func:`sampd_plugin.core.identity.confusions`);
- its parts (``lost``, ``iou < t``, ``score < t``, ``confusion``), the rule without confusions, and the rule at
  other thresholds, for comparison;
- the rule's recall of the identity switches against the ground truth (what the interaction benchmark counts,
  :func:`sampd_plugin.core.identity.identity_switches`; ``--scenario crossing`` has many).

SYNTHETIC numbers: the synthetic segmenter's predicted IoU is the mask's true IoU with the object it covers plus
noise (background masks get a low one), so it is informative by construction; it says nothing about SAM's
calibration on real videos. FiftyOne is not used.

    python perf/doubtful.py --videos 8 --frames 40 [--scenario crossing --presets full overlap]
"""

import argparse

import numpy as np


def collect(preset, videos, frames, objects, height, width, seed, scenario="standard"):
    """``(score, iou, lost, confused, J, switched)`` of every tracked object on every non-prompt frame."""
    from sampd_plugin.backends.synthetic import SyntheticSegmenter
    from sampd_plugin.core import metrics
    from sampd_plugin.core.config import SamPDConfig
    from sampd_plugin.core.identity import identity_switches
    from sampd_plugin.core.tracker import ObjectPrompt, SamPDTracker
    from sampd_plugin.synthetic import SyntheticScene

    rows = []
    for v in range(videos):
        scene = SyntheticScene(seed=seed + v, num_frames=frames, num_objects=objects, height=height, width=width,
                               scenario=scenario)
        prompts = [ObjectPrompt(object_id=i, frame_number=1, mask=m) for i, m in scene.visible_masks(1).items()]
        for res in SamPDTracker(SyntheticSegmenter(scene), SamPDConfig.preset(preset)).track(scene.iter_frames(),
                                                                                              prompts):
            gt = scene.visible_masks(res.frame_number)
            tracked = {oid: o for oid, o in res.objects.items() if not o.is_prompt}
            switched = identity_switches({oid: o.mask for oid, o in tracked.items()}, gt)
            for oid, o in tracked.items():
                g = gt.get(oid, np.zeros_like(o.mask))
                rows.append((o.score, o.iou, o.lost, o.confusion is not None,
                             float(metrics.region_similarity(o.mask, g)), oid in switched))
    return np.array(rows, dtype=np.float64)


def precision_recall(flag, fail):
    tp = int((flag & fail).sum())
    return (tp / flag.sum() if flag.sum() else float("nan")), (tp / fail.sum() if fail.sum() else float("nan")), \
        int(flag.sum())


def rules(data):
    from sampd_plugin.core.quality import IOU_BELOW, SCORE_BELOW, is_doubtful

    score, iou, lost, confused = data[:, 0], data[:, 1], data[:, 2].astype(bool), data[:, 3].astype(bool)

    def rule(iou_below=IOU_BELOW, score_below=SCORE_BELOW, confusions=True):
        return np.array([is_doubtful(s, i, bool(x), iou_below, score_below, "yes" if c and confusions else None)
                         for s, i, x, c in zip(score, iou, lost, confused)])

    out = {"rule": rule(), "no confusions": rule(confusions=False), "lost only": lost, "confusion": confused,
           "iou < 0.5": rule(score_below=-np.inf, confusions=False)}
    for t in (0.2, 0.5):
        out[f"score < {t}"] = rule(iou_below=-np.inf, score_below=t, confusions=False)
    for t in (0.3, 0.7):
        out[f"iou<{t}|sc<0.1"] = rule(iou_below=t, confusions=False)
    out["iou<0.5|sc<0.2"] = rule(score_below=0.2, confusions=False)
    return out


def main():
    from sampd_plugin.synthetic import SCENARIOS

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--presets", nargs="+", default=["full", "box", "full-iou", "point+refine", "point"])
    p.add_argument("--videos", type=int, default=8)
    p.add_argument("--frames", type=int, default=40)
    p.add_argument("--objects", type=int, default=3)
    p.add_argument("--height", type=int, default=240)
    p.add_argument("--width", type=int, default=320)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--scenario", choices=SCENARIOS, default="standard")
    args = p.parse_args()

    import torch

    torch.set_num_threads(1)
    pooled = []
    print(f"doubtful vs J < 0.5 on generated videos ({args.videos} x {args.frames} frames, {args.objects} objects, "
          f"{args.height}x{args.width}, {args.scenario}), synthetic segmenter: SYNTHETIC, not SAM on real videos")
    for preset in args.presets:
        data = collect(preset, args.videos, args.frames, args.objects, args.height, args.width, args.seed,
                       args.scenario)
        pooled.append(data)
        report(preset, data)
    report("all presets", np.concatenate(pooled))


def report(name, data):
    fail, switched = data[:, 4] < 0.5, data[:, 5].astype(bool)
    print(f"\n{name}: {len(data)} object-frames, {int(fail.sum())} with J < 0.5 ({100 * fail.mean():.1f} %), "
          f"{int(switched.sum())} identity switches")
    print(f"  {'rule':<16}{'precision':>10}{'recall':>8}{'flagged':>9}{'switch recall':>15}")
    for rule, flag in rules(data).items():
        prec, rec, n = precision_recall(flag, fail)
        sw = (flag & switched).sum() / switched.sum() if switched.sum() else float("nan")
        print(f"  {rule:<16}{prec:>10.3f}{rec:>8.3f}{n:>9}{sw:>15.3f}")


if __name__ == "__main__":
    main()
