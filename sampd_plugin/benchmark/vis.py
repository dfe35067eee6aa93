"""Automatic-mode VIS benchmark runs on UVO trees (paper Sec. IV-B, Table II): up to ``max_objects`` automatic
masks on each video's first frame, tracked through the video without spawning new tracks; each track becomes one
prediction (RLE per frame, ``null`` where it is lost) with score = the mean SAM predicted IoU of its tracked frames;
scored with video-level mask AP / AR (:mod:`sampd_plugin.core.vis_metrics`, class-agnostic).

This module imports no FiftyOne.
"""

from __future__ import annotations

import itertools
import os
import time
from typing import Callable, Iterable, Optional

import numpy as np

from sampd_plugin.benchmark.timing import TimedBackend
from sampd_plugin.core import vis_metrics
from sampd_plugin.core.config import SamPDConfig
from sampd_plugin.core.tracker import SamPDTracker
from sampd_plugin.datasets import uvo as uvo_io
from sampd_plugin.datasets.base import VideoSequence


def track_video(seq: VideoSequence, backend, config: SamPDConfig, max_objects: int = 100, stats: Optional[dict] = None
                ) -> list:
    """Auto-tracks one video; returns its predictions in the VIS results format (one per track)."""
    timed = TimedBackend(backend)
    tracker = SamPDTracker(timed, config)
    frames = seq.iter_images()
    first = next(frames, None)
    if first is None:
        return []
    t0 = time.perf_counter()
    prompts = tracker.auto_prompts(first[1], first[0], max_objects)
    segs = {p.object_id: [] for p in prompts}
    ious = {p.object_id: [] for p in prompts}
    if prompts:
        for res in tracker.track(itertools.chain([first], frames), prompts):
            for oid, r in res.objects.items():
                ok = not r.lost and r.mask is not None and r.mask.any()
                segs[oid].append(uvo_io.encode_rle(r.mask) if ok else None)
                if ok and not r.is_prompt:
                    ious[oid].append(float(r.iou))
    if stats is not None:
        stats["frames"] = stats.get("frames", 0) + len(seq.frames)
        stats["objects"] = stats.get("objects", 0) + len(prompts)
        stats["seconds"] = stats.get("seconds", 0.0) + time.perf_counter() - t0
        stats["encode_seconds"] = stats.get("encode_seconds", 0.0) + timed.encode_seconds
        stats["encodes"] = stats.get("encodes", 0) + timed.encode_count
    vid = seq.video_id if seq.video_id is not None else seq.name
    return [uvo_io.result_entry(vid, s + [None] * (len(seq.frames) - len(s)),
                                float(np.mean(ious[oid])) if ious[oid] else 0.0)
            for oid, s in segs.items()]


def ground_truth_tracks(seq: VideoSequence) -> list:
    vid = seq.video_id if seq.video_id is not None else seq.name
    return [{"video_id": vid, "category_id": 1, "segmentations": segs, "iscrowd": 0} for segs in seq.tracks.values()]


def run_vis(sequences: Iterable[VideoSequence], backend_for: Callable[[VideoSequence], object], config: SamPDConfig,
            out_dir: Optional[str] = None, max_objects: int = 100,
            progress: Optional[Callable[[str], None]] = None) -> dict:
    """Auto-tracks every video, writes ``<out_dir>/results.json`` (VIS results format) and scores it.

    Returns:
        a row ``AR100, ARs, ARm, ARl, AP, AP50, AP75, AR1, AR10`` (:func:`sampd_plugin.core.vis_metrics.evaluate_vis`,
        class-agnostic), ``videos, tracks, frames, encoder_ms, frames_per_second, results``
    """
    sequences = list(sequences)
    stats: dict = {}
    preds, gts = [], []
    t_start = time.perf_counter()
    for n, seq in enumerate(sequences, start=1):
        t0 = time.perf_counter()
        p = track_video(seq, backend_for(seq), config, max_objects, stats)
        preds += p
        gts += ground_truth_tracks(seq)
        if progress:
            progress(f"[{n}/{len(sequences)}] {seq.name}: {len(seq.frames)} frames, {len(p)} tracks, "
                     f"{time.perf_counter() - t0:.1f} s")
    row = vis_metrics.evaluate_vis(gts, preds, use_categories=False)
    row = {k: row[k] for k in ("AR100", "ARs", "ARm", "ARl", "AP", "AP50", "AP75", "AR1", "AR10")}
    results = None
    if out_dir is not None:
        results = uvo_io.write_results(os.path.join(out_dir, "results.json"), preds)
    row.update(videos=len(sequences), tracks=len(preds), frames=stats.get("frames", 0),
               encoder_ms=1000 * stats.get("encode_seconds", 0.0) / max(stats.get("encodes", 0), 1),
               frames_per_second=stats.get("frames", 0) / max(time.perf_counter() - t_start, 1e-9),
               results=results, scored=bool(gts))
    return row
