"""UVO v1.0 (Wang et al.) dense video annotations: reading videos and tracks, writing VIS results.

The layout (UVO v1.0 as distributed, frames extracted from the videos, e.g. with UVO's ``video2frames.py``)::

    <root>/VideoDenseSet/UVO_video_<split>_dense.json      YouTube-VIS-style JSON (below)
    <root>/uvo_videos_dense_frames/<file_name>              the frames named by the JSON, e.g. <video>/0.png

The JSON: ``videos`` ``[{"id", "width", "height", "length", "file_names": [...]}]``, ``annotations`` ``[{"id",
"video_id", "category_id", "iscrowd", "segmentations": [RLE or null per frame], "areas", "bboxes"}]`` and
``categories`` (UVO is class-agnostic: one category, ``"object"``). RLEs are COCO run-length encodings
(``{"size": [h, w], "counts": ...}``, compressed or not), decoded with ``pycocotools``.

Results (the YouTube-VIS / UVO results format, :func:`write_results`): a JSON list of
``{"video_id", "category_id", "score", "segmentations": [compressed RLE or null per frame]}``.

This module imports no FiftyOne; ``pycocotools`` is imported on first use.
"""

from __future__ import annotations

import json
import os
from typing import Dict, Iterable, List, Optional, Sequence

import numpy as np

from sampd_plugin.datasets.base import ObjectInfo, VideoSequence, make_frames, read_sidecar, require_file

SPLITS = ("train", "val", "test")
FRAMES_DIR = "uvo_videos_dense_frames"


def annotation_file(root: str, split: str = "val") -> str:
    return os.path.join(root, "VideoDenseSet", f"UVO_video_{split}_dense.json")


def read_uvo(root: str, split: str = "val", annotations: Optional[str] = None, frames_dir: Optional[str] = None,
             videos: Optional[Iterable] = None) -> List[VideoSequence]:
    """The videos of a UVO dense split with their ground-truth tracks.

    Args:
        root: the UVO folder (``VideoDenseSet/``, ``uvo_videos_dense_frames/``)
        split: ``"val"`` (the paper's), ``"train"`` or ``"test"``
        annotations: another annotation JSON (default :func:`annotation_file`)
        frames_dir: another frames folder (default ``<root>/uvo_videos_dense_frames``)
        videos: only these video ids (or names, the folder of their first frame)

    Each :class:`VideoSequence` (``name`` = the folder of its frames, ``dataset="uvo"``) has the JSON's frames as
    frames and output frames and ``tracks = {annotation id: [RLE or None per frame]}``; its ``objects`` carry the
    tracks' category names.

    Raises:
        FileNotFoundError: a missing root, annotation file or frame (named)
        ValueError: malformed JSON (a track whose length differs from its video's)
    """
    if not os.path.isdir(root):
        raise FileNotFoundError(f"UVO root {root} does not exist")
    path = require_file(annotations or annotation_file(root, split), f"UVO {split!r} annotation file")
    frames_dir = frames_dir or os.path.join(root, FRAMES_DIR)
    with open(path) as f:
        data = json.load(f)
    for key in ("videos", "annotations"):
        if key not in data:
            raise ValueError(f"{path} has no {key!r} list (not a YouTube-VIS-style JSON)")
    cats = {c["id"]: c.get("name") for c in data.get("categories", [])}
    by_video: Dict = {}
    for a in data["annotations"]:
        by_video.setdefault(a["video_id"], []).append(a)
    wanted = None if videos is None else {str(v) for v in videos}
    scenes = read_sidecar(root).get("sequences", {})
    out = []
    for v in data["videos"]:
        names = v.get("file_names") or []
        if not names:
            raise ValueError(f"{path}: video {v.get('id')} has no file_names")
        name = os.path.dirname(names[0]) or str(v["id"])
        if wanted is not None and str(v["id"]) not in wanted and name not in wanted:
            continue
        paths = [os.path.join(frames_dir, n) for n in names]
        for p in paths:
            if not os.path.isfile(p):
                raise FileNotFoundError(f"UVO video {v['id']} ({name}): frame {p} does not exist (extract the "
                                        "video's frames into " + frames_dir + ")")
        frames = make_frames(paths)
        tracks, objects = {}, {}
        for a in by_video.get(v["id"], []):
            segs = a.get("segmentations") or []
            if len(segs) != len(names):
                raise ValueError(f"{path}: annotation {a.get('id')} of video {v['id']} has {len(segs)} "
                                 f"segmentations for {len(names)} frames")
            tid = int(a["id"])
            tracks[tid] = list(segs)
            first = next((frames[i].stem for i, s in enumerate(segs) if s), None)
            objects[tid] = ObjectInfo(tid, cats.get(a.get("category_id")), first)
        seq = VideoSequence(name=name, dataset="uvo", frames=frames, output_stems=[f.stem for f in frames],
                            objects=objects, tracks=tracks, scene_params=scenes.get(name),
                            size=(int(v["height"]), int(v["width"])) if "height" in v and "width" in v else None,
                            video_id=v["id"])
        out.append(seq)
    if wanted is not None and not out:
        raise ValueError(f"none of the videos {sorted(wanted)} is in {path}")
    return out


def decode_rle(rle: Optional[dict], size=None) -> Optional[np.ndarray]:
    """``(H, W)`` bool mask of a COCO RLE (compressed or uncompressed ``counts``); ``None`` for ``None``."""
    if not rle:
        return None
    from pycocotools import mask as mask_utils

    if isinstance(rle.get("counts"), list):
        h, w = rle["size"]
        rle = mask_utils.frPyObjects(rle, h, w)
    return mask_utils.decode(rle).astype(bool)


def encode_rle(mask: np.ndarray) -> dict:
    """Compressed COCO RLE of an ``(H, W)`` bool mask, JSON-ready (``counts`` as str)."""
    from pycocotools import mask as mask_utils

    rle = mask_utils.encode(np.asfortranarray(np.asarray(mask, dtype=np.uint8)))
    rle["counts"] = rle["counts"].decode("ascii")
    return rle


def result_entry(video_id, segmentations: Sequence[Optional[dict]], score: float, category_id: int = 1) -> dict:
    """One predicted track in the results format."""
    return {"video_id": video_id, "category_id": int(category_id), "score": float(score),
            "segmentations": list(segmentations)}


def write_results(path: str, results: List[dict]) -> str:
    """Writes a VIS results JSON (a list of :func:`result_entry`), creating parent folders."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.{os.getpid()}.part"
    with open(tmp, "w") as f:
        json.dump(results, f)
    os.replace(tmp, path)
    return path
