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
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

from sampd_plugin.datasets.base import (ObjectInfo, VideoSequence, make_frames, read_json, read_sidecar,
                                        require_file, schema_error)

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
        ValueError: invalid JSON, an entry that does not follow the schema (:func:`check_annotation_json`), a frame
            of another size than its video, a segmentation that is not one of the frame (:func:`checked_segmentation`),
            each named (file, video, annotation, frame)
    """
    if not os.path.isdir(root):
        raise FileNotFoundError(f"UVO root {root} does not exist")
    path = require_file(annotations or annotation_file(root, split), f"UVO {split!r} annotation file")
    frames_dir = frames_dir or os.path.join(root, FRAMES_DIR)
    data = check_annotation_json(read_json(path), path)
    cats = {c["id"]: c.get("name") for c in data.get("categories", [])}
    by_video: Dict = {}
    for a in data["annotations"]:
        by_video.setdefault(a["video_id"], []).append(a)
    unknown = sorted({str(v) for v in by_video} - {str(v["id"]) for v in data["videos"]})
    if unknown:
        raise schema_error(path, f"annotations of video(s) {unknown[:5]}", "no such video in 'videos'")
    wanted = None if videos is None else {str(v) for v in videos}
    scenes = read_sidecar(root).get("sequences", {})
    out = []
    for v in data["videos"]:
        names = v["file_names"]
        name = os.path.dirname(names[0]) or str(v["id"])
        if wanted is not None and str(v["id"]) not in wanted and name not in wanted:
            continue
        paths = [os.path.join(frames_dir, n) for n in names]
        for p in paths:
            if not os.path.isfile(p):
                raise FileNotFoundError(f"UVO video {v['id']} ({name}): frame {p} does not exist (extract the "
                                        "video's frames into " + frames_dir + ")")
        frames = make_frames(paths)
        seq = VideoSequence(name=name, dataset="uvo", frames=frames, output_stems=[f.stem for f in frames],
                            scene_params=scenes.get(name), video_id=v["id"])
        size = _checked_frame_sizes(seq, v, path)
        for a in by_video.get(v["id"], []):
            where = f"annotation {a['id']} (video {v['id']})"
            segs = a["segmentations"]
            if len(segs) != len(names):
                raise schema_error(path, where, f"{len(segs)} segmentations for {len(names)} frames")
            tid = int(a["id"])
            seq.tracks[tid] = [checked_segmentation(s, size, f"{path}: {where}, frame {frames[t].stem}")
                               for t, s in enumerate(segs)]
            first = next((frames[t].stem for t, s in enumerate(seq.tracks[tid]) if s), None)
            seq.objects[tid] = ObjectInfo(tid, cats.get(a.get("category_id")), first)
        out.append(seq)
    if wanted is not None and not out:
        raise ValueError(f"none of the videos {sorted(wanted)} is in {path}")
    return out


def check_annotation_json(data, path: str) -> dict:
    """A parsed UVO (YouTube-VIS-style) annotation JSON after checking its schema: ``videos`` (each with an ``id``,
    a non-empty ``file_names`` list of strings and, if given, positive integer ``height`` / ``width``),
    ``annotations`` (each with an integer ``id``, a ``video_id`` and a ``segmentations`` list) and optional
    ``categories``. ``ValueError`` naming the file and the entry that does not follow it (the segmentations
    themselves are checked by :func:`checked_segmentation`)."""
    if not isinstance(data, dict):
        raise schema_error(path, "top level", "expected an object with 'videos' and 'annotations' lists")
    for key in ("videos", "annotations"):
        if not isinstance(data.get(key), list):
            raise schema_error(path, "top level", f"no {key!r} list (not a YouTube-VIS-style JSON)")
    if not isinstance(data.get("categories", []), list) or not all(
            isinstance(c, dict) and "id" in c for c in data.get("categories", [])):
        raise schema_error(path, "'categories'", "expected a list of objects with an 'id'")
    ids = set()
    for i, v in enumerate(data["videos"]):
        where = f"videos[{i}]"
        if not isinstance(v, dict) or not isinstance(v.get("id"), (int, str)) or isinstance(v.get("id"), bool):
            raise schema_error(path, where, "expected an object with an integer or string 'id'")
        where = f"video {v['id']}"
        if str(v["id"]) in ids:
            raise schema_error(path, where, "video id repeated")
        ids.add(str(v["id"]))
        names = v.get("file_names")
        if not isinstance(names, list) or not names or not all(isinstance(n, str) and n for n in names):
            raise schema_error(path, where, "'file_names' must be a non-empty list of frame paths")
        for key in ("height", "width"):
            if key in v and (isinstance(v[key], bool) or not isinstance(v[key], int) or v[key] < 1):
                raise schema_error(path, where, f"{key!r} must be a positive integer, got {v[key]!r}")
    for i, a in enumerate(data["annotations"]):
        where = f"annotations[{i}]"
        if not isinstance(a, dict) or isinstance(a.get("id"), bool) or not isinstance(a.get("id"), int):
            raise schema_error(path, where, "expected an object with an integer 'id'")
        if "video_id" not in a or not isinstance(a.get("segmentations"), list):
            raise schema_error(path, f"annotation {a['id']}", "expected a 'video_id' and a 'segmentations' list")
    return data


def _checked_frame_sizes(seq: VideoSequence, video: dict, path: str) -> Tuple[int, int]:
    """``(H, W)`` of a video's frames after checking that every frame image has it (and the JSON's ``height`` /
    ``width`` when given): the size every segmentation must have."""
    sizes = {f.stem: seq.frame_size(f.stem) for f in seq.frames}
    stated = (video["height"], video["width"]) if "height" in video and "width" in video else None
    size = stated or sizes[seq.frames[0].stem]
    wrong = [stem for stem, hw in sizes.items() if hw != size]
    if wrong:
        h, w = sizes[wrong[0]]
        raise ValueError(f"{path}: video {video['id']} ({seq.name}) is {size[1]}x{size[0]} but its frame "
                         f"{seq.frame(wrong[0]).path} is {w}x{h}")
    seq.size = size
    return size


def rle_counts(counts: str) -> List[int]:
    """The run lengths of a COCO compressed RLE string (the LEB128-like encoding of pycocotools' ``maskApi.c``,
    ``rleFrString``: 5 bits per character, offset 48, each count after the second stored as the difference to the
    count two before). ``ValueError`` for a string that ends inside a number."""
    out, p = [], 0
    while p < len(counts):
        x, k, more = 0, 0, True
        while more:
            if p >= len(counts):
                raise ValueError("the counts string ends inside a run length")
            c = ord(counts[p]) - 48
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and (c & 0x10):
                x |= -1 << (5 * k)
        if len(out) > 2:
            x += out[-2]
        out.append(x)
    return out


def checked_segmentation(seg, size: Tuple[int, int], where: str) -> Optional[dict]:
    """One frame of a track as a compressed COCO RLE (``None`` where the object is not visible), after checking it
    against its frame's ``size`` ``(H, W)``: an RLE dict (``counts`` compressed or not) of that size whose run
    lengths are non-negative and cover the frame exactly, or a polygon list ``[[x1, y1, x2, y2, ...], ...]`` of
    finite numbers (rasterised at that size). ``ValueError`` naming ``where`` (file, annotation, frame) otherwise:
    pycocotools would decode a short RLE from uninitialised memory."""
    from pycocotools import mask as mask_utils

    if seg is None or (isinstance(seg, (list, dict)) and not seg):
        return None
    h, w = size
    if isinstance(seg, list):  # polygons
        if not all(isinstance(poly, list) and len(poly) >= 6 and len(poly) % 2 == 0 and all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v) for v in poly)
                for poly in seg):
            raise ValueError(f"{where}: a polygon segmentation is a list of [x1, y1, x2, y2, ...] lists of at least "
                             "three points")
        return _compressed(mask_utils.merge(mask_utils.frPyObjects(seg, h, w)))
    if not isinstance(seg, dict) or "counts" not in seg or "size" not in seg:
        raise ValueError(f"{where}: a segmentation is null, an RLE {{'size': [h, w], 'counts': ...}} or polygons, "
                         f"got {type(seg).__name__}")
    if not isinstance(seg["size"], (list, tuple)) or list(seg["size"]) != [h, w]:
        raise ValueError(f"{where}: the RLE's size is {seg['size']!r} but the frame is [{h}, {w}] ([h, w])")
    counts = seg["counts"]
    if isinstance(counts, list):
        runs = counts
        if not all(isinstance(c, int) and not isinstance(c, bool) for c in runs):
            raise ValueError(f"{where}: uncompressed RLE counts must be integers")
    elif isinstance(counts, (str, bytes)):
        try:
            runs = rle_counts(counts.decode("ascii") if isinstance(counts, bytes) else counts)
        except (ValueError, UnicodeDecodeError) as e:
            raise ValueError(f"{where}: the compressed RLE counts are not valid ({e})") from None
    else:
        raise ValueError(f"{where}: RLE counts must be a string or a list of integers, got {type(counts).__name__}")
    if any(c < 0 for c in runs) or sum(runs) != h * w:
        raise ValueError(f"{where}: the RLE's run lengths cover {sum(runs)} pixels (negative runs: "
                         f"{any(c < 0 for c in runs)}) but the frame has {h} x {w} = {h * w}")
    if isinstance(counts, list):
        return _compressed(mask_utils.frPyObjects({"size": [h, w], "counts": counts}, h, w))
    return {"size": [h, w], "counts": counts.decode("ascii") if isinstance(counts, bytes) else counts}


def _compressed(rle: dict) -> dict:
    rle = dict(rle)
    if isinstance(rle["counts"], bytes):
        rle["counts"] = rle["counts"].decode("ascii")
    return rle


def decode_rle(rle: Optional[dict], size=None) -> Optional[np.ndarray]:
    """``(H, W)`` bool mask of a COCO RLE (compressed or uncompressed ``counts``); ``None`` for ``None``. The RLE
    is checked first (:func:`checked_segmentation`, against ``size`` when given, else its own ``size``)."""
    if not rle:
        return None
    from pycocotools import mask as mask_utils

    size = tuple(size) if size is not None else tuple(rle.get("size") or ()) if isinstance(rle, dict) else None
    if not size or len(size) != 2:
        raise ValueError(f"an RLE needs its size [h, w], got {rle!r:.80}")
    return mask_utils.decode(checked_segmentation(rle, size, "RLE")).astype(bool)


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
