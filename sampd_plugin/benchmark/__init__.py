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

import argparse
import ast
import dataclasses
from typing import Callable, Dict, Iterable, Iterator, List, Mapping, NamedTuple, Optional, Sequence, Union

import numpy as np

from sampd_plugin.core import metrics
from sampd_plugin.core.config import PRESETS, SamPDConfig
from sampd_plugin.core.identity import identity_switches
from sampd_plugin.core.tracker import FrameResult, ObjectPrompt, SamPDTracker
from sampd_plugin.synthetic.scene import SCENARIOS

#: the paper's rows in the paper's order: Table III (with its "IoU-based" row), then Table V; then our extensions
#: (``config.EXTENSION_PRESETS``: ``adaptive``, ``overlap``)
ABLATION_PRESETS = tuple(PRESETS)


class SequenceScore(NamedTuple):
    """One sequence's scores: per-object J and F statistics (:class:`sampd_plugin.core.metrics.Stats`, in object-id
    order) and ``switches``, the object-frames with an identity switch (:func:`sampd_plugin.core.identity.identity_switches`
    against the ground truth) on the scored frames."""

    j: List[metrics.Stats]
    f: List[metrics.Stats]
    switches: int


def score_sequence(
    results: Iterable[FrameResult], gt_masks: Callable[[int], Dict[int, np.ndarray]], num_frames: int
) -> SequenceScore:
    """Scores one sequence, DAVIS protocol: each object is scored on the frames after its first (prompt) frame,
    excluding the sequence's last frame; an object absent from the ground truth of a frame has an empty
    ground-truth mask there. Identity switches are counted on the same frames.

    Args:
        results: the tracker's frame results, in increasing frame order (1-based frame numbers)
        gt_masks: ``frame_number -> {object_id: (H, W) bool}`` (visible objects only)
        num_frames: the sequence length
    """
    js: Dict[int, List[float]] = {}
    fs: Dict[int, List[float]] = {}
    switches = 0
    for r in results:
        if r.frame_number >= num_frames:  # the last frame is not scored
            continue
        gt = gt_masks(r.frame_number)
        scored = {}
        for oid, o in r.objects.items():
            js.setdefault(oid, [])
            fs.setdefault(oid, [])
            if o.is_prompt:
                continue
            scored[oid] = o.mask
            g = gt.get(oid)
            if g is None:
                g = np.zeros_like(o.mask)
            js[oid].append(metrics.region_similarity(o.mask, g))
            fs[oid].append(metrics.boundary_f_measure(o.mask, g))
        switches += len(identity_switches(scored, gt))
    ids = sorted(js)
    return SequenceScore([metrics.statistics(js[i]) for i in ids], [metrics.statistics(fs[i]) for i in ids], switches)


def row_config(row: str) -> SamPDConfig:
    """A table row written ``preset[:setting=value,...]``, e.g. ``"full:similarity=cosine"`` (values are Python
    literals, or plain strings)."""
    name, _, rest = row.partition(":")
    return SamPDConfig.preset(name, **_settings(rest.split(",") if rest else []))


def _settings(items: Sequence[str]) -> dict:
    """``["key=value", ...]`` -> ``{key: value}`` with values parsed as Python literals where possible."""
    out = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not eq:
            raise ValueError(f"expected setting=value, got {item!r}")
        try:
            out[key.strip()] = ast.literal_eval(value.strip())
        except (ValueError, SyntaxError):
            out[key.strip()] = value.strip()
    return out


def run_synthetic_ablation(
    presets: Union[Sequence[str], Mapping[str, SamPDConfig]] = ABLATION_PRESETS,
    num_videos: int = 10,
    num_frames: int = 40,
    num_objects: int = 3,
    height: int = 240,
    width: int = 320,
    seed: int = 0,
    realism: Optional[dict] = None,
    scenario: str = "standard",
    object_size: float = 1.0,
) -> Dict[str, Dict[str, float]]:
    """Runs each row (a preset name or ``preset:setting=value,...`` (:func:`row_config`), or ``{row name:
    SamPDConfig}``) on the same generated videos (``SyntheticScene(seed + v, ..., scenario=scenario,
    object_size=object_size)``, ``v < num_videos``; many objects want smaller ones) with the synthetic segmenter,
    whose degradation knobs are ``Realism(**realism)`` (default: :class:`~sampd_plugin.backends.synthetic.Realism`'s).

    Returns:
        ``{row name: {"J&F-Mean": ..., "J-Mean": ..., ..., "id_switches": ..., "decoded_prompts": ...,
        "decode_calls": ..., "videos": [...]}}``: the scores of :func:`sampd_plugin.core.metrics.aggregate`, the
        object-frames with an identity switch (:class:`SequenceScore`), the row's decoder work over all videos
        (prompts decoded, i.e. decoder passes per prompt, first stage and refinement; decoder calls), counted by
        the tracker's :class:`FrameResult`, and per video ``{"seed", "J&F-Mean", "J-Mean", "F-Mean",
        "id_switches"}``
    """
    from sampd_plugin.backends.synthetic import Realism
    from sampd_plugin.synthetic import SyntheticScene

    configs = presets if isinstance(presets, Mapping) else {name: row_config(name) for name in presets}
    knobs = Realism(**(realism or {}))
    j_all: Dict[str, list] = {name: [] for name in configs}
    f_all: Dict[str, list] = {name: [] for name in configs}
    work = {name: {"id_switches": 0, "decoded_prompts": 0, "decode_calls": 0} for name in configs}
    videos: Dict[str, list] = {name: [] for name in configs}
    for v in range(num_videos):
        # one video at a time, every row on it: frames, ground truth and encodings are computed once
        scene = SyntheticScene(
            seed=seed + v, num_frames=num_frames, num_objects=num_objects, height=height, width=width,
            scenario=scenario, object_size=object_size,
        )
        frames = list(scene.iter_frames())
        gt = {f: scene.visible_masks(f) for f, _ in frames}
        prompts = [ObjectPrompt(object_id=i, frame_number=1, mask=m) for i, m in gt[1].items()]
        segmenter = _encode_once(scene, dataclasses.replace(knobs))
        for name, config in configs.items():
            results = _counted(SamPDTracker(segmenter, config).track(frames, prompts), work[name])
            score = score_sequence(results, gt.__getitem__, num_frames)
            j_all[name] += score.j
            f_all[name] += score.f
            work[name]["id_switches"] += score.switches
            videos[name].append({"seed": scene.seed, **_means(score.j, score.f), "id_switches": score.switches})
    return {name: {**metrics.aggregate(j_all[name], f_all[name]), **work[name], "videos": videos[name]}
            for name in configs}


def _means(j: List[metrics.Stats], f: List[metrics.Stats]) -> Dict[str, float]:
    """``J&F-Mean``, ``J-Mean``, ``F-Mean`` of one video's objects (:func:`sampd_plugin.core.metrics.aggregate`)."""
    agg = metrics.aggregate(j, f)
    return {k: agg[k] for k in ("J&F-Mean", "J-Mean", "F-Mean")}


def _counted(results: Iterable[FrameResult], counts: Dict[str, int]) -> Iterator[FrameResult]:
    """Passes ``results`` through, adding each frame's ``decoded_prompts`` / ``decode_calls`` to ``counts``."""
    for r in results:
        counts["decoded_prompts"] += r.decoded_prompts
        counts["decode_calls"] += r.decode_calls
        yield r


def pass_ratios(table: Dict[str, Dict[str, float]], reference: str = "full") -> Dict[str, float]:
    """Each row's decoder passes (prompts decoded) divided by the ``reference`` row's, from the same run
    (:func:`run_synthetic_ablation`); empty when the reference row is absent."""
    ref = table.get(reference, {}).get("decoded_prompts")
    if not ref:
        return {}
    return {name: row["decoded_prompts"] / ref for name, row in table.items() if "decoded_prompts" in row}


def _encode_once(scene, realism):
    """A :class:`~sampd_plugin.backends.synthetic.SyntheticSegmenter` that keeps each frame's encoding (it does not
    depend on the tracker's settings, and decoding does not modify it) for the rows that follow."""
    from sampd_plugin.backends.synthetic import SyntheticSegmenter

    class EncodeOnce(SyntheticSegmenter):
        def _encode(self, image, frame_number):
            if frame_number not in self.states:
                self.states[frame_number] = super()._encode(image, frame_number)
            return self.states[frame_number]

    segmenter = EncodeOnce(scene, realism=realism)
    segmenter.states = {}
    return segmenter


def format_table(table: Dict[str, Dict[str, float]], title: str = "", reference: str = "full") -> str:
    """Scores x100; identity switches (object-frames) when measured; with decoder counts, the prompts decoded per
    row and their ratio to the ``reference`` row's."""
    cols = ("J&F-Mean", "J-Mean", "F-Mean", "J-Recall", "J-Decay")
    ratios = pass_ratios(table, reference)
    lines = [title] if title else []
    width = max([14] + [len(name) + 2 for name in table])
    switches = any("id_switches" in row for row in table.values())
    work = any("decoded_prompts" in row for row in table.values())
    lines.append(f"{'row':<{width}}" + "".join(f"{c:>10}" for c in cols) + (f"{'ID sw':>8}" if switches else "")
                 + (f"{'prompts':>10}" if work else "") + (f"{'/' + reference:>10}" if ratios else ""))
    for name, row in table.items():
        lines.append(f"{name:<{width}}" + "".join(f"{100 * row[c]:>10.1f}" for c in cols)
                     + (f"{row.get('id_switches', 0):>8d}" if switches else "")
                     + (f"{row.get('decoded_prompts', 0):>10d}" if work else "")
                     + (f"{ratios[name]:>10.3f}" if name in ratios else ""))
    return "\n".join(lines)


def format_videos(table: Dict[str, Dict[str, float]], title: str = "") -> str:
    """Per-video J&F (x100) and identity switches of each row, the rows side by side (one line per video, then
    the mean J&F and the total of switches); a row name longer than 12 characters is shown as ``#k``, named in a
    legend below."""
    names = list(table)
    short = {n: n if len(n) <= 12 else f"#{k + 1}" for k, n in enumerate(names)}
    lines = [title] if title else []
    lines.append(f"{'video':>8}" + "".join(f"{short[n] + ' J&F':>18}{'ID sw':>7}" for n in names))
    cell = lambda row: f"{100 * row['J&F-Mean']:>18.1f}{row['id_switches']:>7d}"  # noqa: E731
    for k, video in enumerate(table[names[0]]["videos"] if names else []):
        lines.append(f"{video['seed']:>8d}" + "".join(cell(table[n]["videos"][k]) for n in names))
    lines.append(f"{'all':>8}" + "".join(cell(table[n]) for n in names))
    lines += [f"  {short[n]} = {n}" for n in names if short[n] != n]
    return "\n".join(lines)


def main(argv=None):
    """The in-memory synthetic ablation: ``python -m sampd_plugin.benchmark [--presets ROW ...] [--realism ...]``
    (what :func:`sampd_plugin.benchmark.cli.main` runs when no dataset is named)."""
    p = argparse.ArgumentParser(prog="python -m sampd_plugin.benchmark", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--presets", nargs="+", default=list(ABLATION_PRESETS), metavar="ROW",
                   help="rows: preset names, or preset:setting=value,... (e.g. full:similarity=cosine); default: "
                        "every preset in the paper's order")
    p.add_argument("--videos", type=int, default=10)
    p.add_argument("--frames", type=int, default=40)
    p.add_argument("--objects", type=int, default=3)
    p.add_argument("--height", type=int, default=240)
    p.add_argument("--width", type=int, default=320)
    p.add_argument("--object-size", type=float, default=1.0,
                   help="scales the objects (1: 10-15 %% of the frame's side; many objects: e.g. sqrt(5 / objects))")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--scenario", choices=SCENARIOS, default="standard",
                   help="generated videos: standard, or crossing (objects that touch, cross and occlude each other, "
                        "two of them alike)")
    p.add_argument("--per-video", action="store_true", help="also print each video's J&F and identity switches")
    p.add_argument("--realism", nargs="*", default=[], metavar="KNOB=VALUE",
                   help="synthetic segmenter degradation knobs (sampd_plugin.backends.synthetic.Realism), e.g. "
                        "leak_chance=0.3 box_instability=0.03")
    p.add_argument("--reference", default="full",
                   help="row whose decoder passes (prompts decoded) the /REF column divides by (default: full)")
    p.add_argument("--json", help="also write the table (scores, prompts decoded, pass ratios, settings) here")
    args = p.parse_args(argv)
    table = run_synthetic_ablation(args.presets, args.videos, args.frames, args.objects, height=args.height,
                                   width=args.width, seed=args.seed, realism=_settings(args.realism),
                                   scenario=args.scenario, object_size=args.object_size)
    what = "" if args.scenario == "standard" else f" ({args.scenario} scenario)"
    print(format_table(table, f"SAM-PD ablation on generated videos{what}, synthetic segmenter (not paper numbers)",
                       args.reference))
    if args.per_video:
        print()
        print(format_videos(table, "per video: J&F and identity switches (object-frames)"))
    if args.json:
        import json

        with open(args.json, "w") as f:
            json.dump({"synthetic": True, "settings": vars(args), "rows": table,
                       "pass_ratio_to": args.reference, "pass_ratios": pass_ratios(table, args.reference)}, f,
                      indent=1)
    return table


if __name__ == "__main__":
    main()
