"""Semi-supervised VOS benchmark runs on DAVIS 2017 and YouTube-VOS 2018 trees (:mod:`sampd_plugin.datasets`):
track every sequence from its first-frame annotation(s), write the official prediction folder, and score exactly
what was written (one label map per frame, overlaps resolved by
:func:`sampd_plugin.datasets.labelmaps.resolve_overlaps`) with :mod:`sampd_plugin.core.metrics`.

- DAVIS (``kind="davis"``): the semi-supervised toolkit's protocol (:mod:`sampd_plugin.datasets.davis`): objects
  ``1..N`` of the first annotation, every annotated frame but the first and the last, void as background; DAVIS
  aggregation (:func:`sampd_plugin.core.metrics.aggregate`).
- YouTube-VOS (``kind="ytvos"``): each object on the listed frames after its first annotation, last frame
  included; ``G`` and J / F of seen and unseen categories (:func:`sampd_plugin.core.metrics.youtube_vos_summary`). The
  official ``valid`` split has no ground truth after the first appearances: it is scored locally only when the
  tree has full annotations (a ``train`` split) or a synthetic sidecar (exact scene ground truth); otherwise the run
  writes the submission zip for the evaluation server and reports no score.

This module imports no FiftyOne.
"""

from __future__ import annotations

import threading
import time
from typing import Callable, Dict, Iterable, List, Optional, Set

import numpy as np

from sampd_plugin.benchmark.timing import TimedBackend
from sampd_plugin.core import metrics
from sampd_plugin.core.config import SamPDConfig
from sampd_plugin.core.frames import read_image
from sampd_plugin.core.tracker import FrameResult, ObjectPrompt, SamPDTracker
from sampd_plugin.datasets import davis as davis_io
from sampd_plugin.datasets import youtube_vos as ytvos_io
from sampd_plugin.datasets.base import VideoSequence
from sampd_plugin.datasets.labelmaps import masks_to_label_map, read_palette
from sampd_plugin.synthetic.trees import sequence_scene

KINDS = ("davis", "ytvos")


def sequence_prompts(seq: VideoSequence) -> List[ObjectPrompt]:
    """One :class:`ObjectPrompt` per object with a first annotation (its mask on that frame)."""
    return [ObjectPrompt(object_id=oid, frame_number=seq.number(stem), mask=mask, label=seq.objects[oid].category)
            for oid, stem, mask in seq.prompt_masks()]


def frame_label_map(result: FrameResult, shape) -> np.ndarray:
    """The label map of one tracker frame: the objects found on it (not lost), overlaps resolved with their SAM
    predicted IoU as the score (:func:`~sampd_plugin.datasets.labelmaps.resolve_overlaps`)."""
    masks = {oid: r.mask for oid, r in result.objects.items() if not r.lost and r.mask is not None and r.mask.any()}
    return masks_to_label_map(masks, shape, {oid: float(result.objects[oid].iou) for oid in masks})


def ground_truth(seq: VideoSequence) -> Optional[Callable[[str], np.ndarray]]:
    """``stem -> (H, W) label map`` of the sequence's ground truth on its output frames: its annotation files when
    every output frame has one, else the synthetic scene's exact id map (trees with a sidecar), else ``None``."""
    if seq.has_full_annotations:
        return seq.label_map
    scene = sequence_scene(seq)
    if scene is not None:
        return lambda stem: scene.render_ids(seq.number(stem)).astype(np.uint8)
    return None


def scored_frames(seq: VideoSequence, kind: str) -> Dict[int, List[str]]:
    """``{object_id: [stems it is scored on]}`` (module docstring)."""
    if kind == "davis":
        stems = davis_io.davis_scored_stems(seq) if seq.annotations else seq.output_stems[1:-1]
        return {oid: stems for oid in seq.objects}
    return {oid: ytvos_io.scored_stems(seq, oid) for oid in seq.objects}


def track_sequence(seq: VideoSequence, backend, config: SamPDConfig, on_frame: Callable[[str, np.ndarray], None],
                   stats: Optional[dict] = None):
    """Tracks one sequence and calls ``on_frame(stem, label_map)`` for each output frame, in order (frames before
    the first prompt get an empty label map). ``stats`` (if given) accumulates ``frames``, ``objects``,
    ``seconds`` (tracker time, image reading excluded or overlapped), ``encode_seconds``, ``propagated_frames`` and
    ``decoded_prompts`` (decoder passes: prompts decoded, :class:`FrameResult`)."""
    timed = TimedBackend(backend)
    tracker = SamPDTracker(timed, config)
    prompts = sequence_prompts(seq)
    shape = seq.image_size()
    outputs = set(seq.output_stems)
    by_number = {f.number: f.stem for f in seq.frames}
    read = [0.0]
    tracking_thread = threading.current_thread()

    def frames(start):
        # read by the tracker's prefetch thread (SAMPD_PREFETCH, default on): overlapped with tracking, and only the
        # time the tracker waits for a frame counts; read on the tracking thread (prefetch off): excluded
        for f in seq.frames:
            if f.number >= start:
                t0 = time.perf_counter()
                img = read_image(f.path)
                if threading.current_thread() is tracking_thread:
                    read[0] += time.perf_counter() - t0
                yield f.number, img

    start = min((p.frame_number for p in prompts), default=None)
    empty = np.zeros(shape, dtype=np.uint8)
    done = set()
    tracked_time, propagated, decoded = 0.0, 0, 0
    if start is not None:
        for f in seq.frames:  # output frames before the first prompt
            if f.number < start and f.stem in outputs:
                on_frame(f.stem, empty)
                done.add(f.stem)
        it = tracker.track(frames(start), prompts)
        while True:
            r0, t0 = read[0], time.perf_counter()
            res = next(it, None)
            dt = time.perf_counter() - t0 - (read[0] - r0)
            if res is None:
                break
            tracked_time += dt
            propagated += any(not o.is_prompt for o in res.objects.values())
            decoded += res.decoded_prompts
            stem = by_number[res.frame_number]
            if stem in outputs:
                on_frame(stem, frame_label_map(res, shape))
                done.add(stem)
    for s in seq.output_stems:
        if s not in done:
            on_frame(s, empty)
    if stats is not None:
        stats["frames"] = stats.get("frames", 0) + len(seq.frames)
        stats["objects"] = stats.get("objects", 0) + len(prompts)
        stats["seconds"] = stats.get("seconds", 0.0) + tracked_time
        stats["encode_seconds"] = stats.get("encode_seconds", 0.0) + timed.encode_seconds
        stats["encodes"] = stats.get("encodes", 0) + timed.encode_count
        stats["propagated_frames"] = stats.get("propagated_frames", 0) + propagated
        stats["decoded_prompts"] = stats.get("decoded_prompts", 0) + decoded


def run_vos(sequences: Iterable[VideoSequence], backend_for: Callable[[VideoSequence], object], config: SamPDConfig,
            kind: str = "davis", out_dir: Optional[str] = None, seen: Optional[Set[str]] = None,
            progress: Optional[Callable[[str], None]] = None) -> dict:
    """Tracks, exports and scores a list of sequences with one configuration.

    Args:
        sequences: from :func:`~sampd_plugin.datasets.davis.read_davis` / ``read_youtube_vos``
        backend_for: ``sequence -> PromptableSegmenter``
        config: the tracker configuration
        kind: ``"davis"`` or ``"ytvos"``
        out_dir: where the predictions go (DAVIS: ``<out_dir>/<sequence>/<stem>.png``, the toolkit's results folder;
            YouTube-VOS: ``<out_dir>/Annotations/...`` + ``<out_dir>/submission.zip``); ``None`` writes nothing
        seen: YouTube-VOS seen categories (``None``: no seen / unseen split)
        progress: called with one line per sequence

    Returns:
        a row: DAVIS ``J&F-Mean, J-Mean, J-Recall, J-Decay, F-Mean, F-Recall, F-Decay``; YouTube-VOS ``G, J_seen,
        F_seen, J_unseen, F_unseen`` (NaN without a local ground truth or without ``seen``), ``J-Mean, F-Mean``;
        both with ``scored`` (bool), ``sequences, objects, frames, encoder_ms, sampd_ms, frames_per_second``,
        ``decoded_prompts`` (decoder passes),
        ``per_object`` ``{"<sequence>_<id>": {"J", "F"}}`` and ``out_dir`` / ``submission``
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    sequences = list(sequences)
    stats: dict = {}
    j_stats, f_stats, j_means, f_means, cats, per_object = [], [], [], [], [], {}
    scored_all = True
    t_start = time.perf_counter()
    for n, seq in enumerate(sequences, start=1):
        gt = ground_truth(seq)
        scored_all &= gt is not None
        frames_of = scored_frames(seq, kind) if gt is not None else {}
        wanted = {s for stems in frames_of.values() for s in stems}
        js: Dict[int, List[float]] = {oid: [] for oid in frames_of}
        fs: Dict[int, List[float]] = {oid: [] for oid in frames_of}
        first_ann = next(iter(seq.annotations.values()), None)
        palette = read_palette(first_ann) if first_ann else None

        def on_frame(stem, label_map, seq=seq):
            if out_dir is not None:
                if kind == "davis":
                    davis_io.write_prediction(out_dir, seq.name, stem, label_map, palette)
                else:
                    ytvos_io.write_prediction(out_dir, seq.name, stem, label_map, palette)
            if stem not in wanted:
                return
            gt_map = gt(stem)
            gt_masks = davis_io.gt_object_masks(gt_map, list(frames_of))
            for oid, stems in frames_of.items():
                if stem in stems:
                    pred = label_map == oid
                    js[oid].append(metrics.region_similarity(pred, gt_masks[oid]))
                    fs[oid].append(metrics.boundary_f_measure(pred, gt_masks[oid]))

        t0 = time.perf_counter()
        track_sequence(seq, backend_for(seq), config, on_frame, stats)
        for oid in sorted(js):
            j, f = metrics.statistics(js[oid]), metrics.statistics(fs[oid])
            j_stats.append(j)
            f_stats.append(f)
            j_means.append(j.mean)
            f_means.append(f.mean)
            cats.append(seq.objects[oid].category)
            per_object[f"{seq.name}_{oid}"] = {"J": j.mean, "F": f.mean, "category": seq.objects[oid].category}
        if progress:
            progress(f"[{n}/{len(sequences)}] {seq.name}: {len(seq.frames)} frames, {len(seq.objects)} objects, "
                     f"{time.perf_counter() - t0:.1f} s")
    row: dict = {}
    if kind == "davis":
        row.update(metrics.aggregate(j_stats, f_stats) if scored_all and j_stats else
                   {k: float("nan") for k in ("J&F-Mean", "J-Mean", "J-Recall", "J-Decay", "F-Mean", "F-Recall",
                                              "F-Decay")})
    else:
        if scored_all and j_means and seen is not None:
            row.update(metrics.youtube_vos_summary(j_means, f_means, cats, seen))
        else:
            row.update({k: float("nan") for k in ("G", "J_seen", "F_seen", "J_unseen", "F_unseen")})
        ok = scored_all and bool(j_means)
        row["J-Mean"] = float(np.nanmean(j_means)) if ok else float("nan")
        row["F-Mean"] = float(np.nanmean(f_means)) if ok else float("nan")
        if out_dir is not None:
            row["submission"] = ytvos_io.zip_submission(out_dir)
    propagated = max(stats.get("propagated_frames", 0), 1)
    encodes = max(stats.get("encodes", 0), 1)
    sampd_s = stats.get("seconds", 0.0) - stats.get("encode_seconds", 0.0)
    row.update(scored=bool(scored_all and j_stats), sequences=len(sequences), objects=stats.get("objects", 0),
               frames=stats.get("frames", 0), encoder_ms=1000 * stats.get("encode_seconds", 0.0) / encodes,
               sampd_ms=1000 * sampd_s / propagated, decoded_prompts=stats.get("decoded_prompts", 0),
               frames_per_second=stats.get("frames", 0) / max(time.perf_counter() - t_start, 1e-9),
               per_object=per_object, out_dir=out_dir)
    return row
