"""YouTube-VOS 2018 (Xu et al.) folder trees: reading videos and writing the evaluation server's submission.

The layout (as downloaded)::

    <root>/<split>/JPEGImages/<video>/00000.jpg 00005.jpg ...   the annotated frames (every 5th of the video)
    <root>/<split>/Annotations/<video>/00000.png ...            indexed PNGs, pixel = object id
    <root>/<split>/meta.json                                     {"videos": {video: {"objects": {"1": {"category":
                                                                   ..., "frames": ["00000", "00005", ...]}}}}}
    <root>/<split>_all_frames/JPEGImages/<video>/*.jpg          optional: every frame (``valid_all_frames``; also
                                                                   found as <root>/all_frames/<split>_all_frames)

In the ``valid`` split only each object's *first* appearance is annotated (objects may start on a later frame; that
frame's PNG holds the new object); ``train`` annotates every listed frame. The tracker runs through every frame when
``*_all_frames`` is there (else through the annotated ones) and predictions are written for the frames listed in
``meta.json`` (the union over the video's objects) only.

Submission (what the CodaLab server takes): ``Annotations/<video>/<stem>.png`` for every listed frame, object ids as
in ``meta.json``, zipped with ``Annotations/`` at the top of the archive (:func:`zip_submission`).

Scoring (server semantics, used for local scores when ground truth is known): each object is scored on the listed
frames after its first one (its prompt), the last frame included; J and F means over objects of seen / unseen
categories (seen = the categories of ``train/meta.json``) and ``G`` (:func:`sampd_plugin.core.metrics.youtube_vos_summary`).

This module imports no FiftyOne.
"""

from __future__ import annotations

import os
import zipfile
from typing import Iterable, List, Optional, Set

import numpy as np

from sampd_plugin.datasets.base import (ObjectInfo, VideoSequence, list_files, make_frames, read_json,
                                        read_sidecar, require_dir, require_file, schema_error, select_names)
from sampd_plugin.datasets.labelmaps import MAX_OBJECT_ID, write_label_map

SPLITS = ("train", "valid", "test")


def read_meta(root: str, split: str = "valid") -> dict:
    """``<root>/<split>/meta.json``'s ``videos`` dict, checked against the schema (:func:`check_meta`)."""
    if not os.path.isdir(root):
        raise FileNotFoundError(f"YouTube-VOS root {root} does not exist")
    path = require_file(os.path.join(root, split, "meta.json"), f"YouTube-VOS {split!r} metadata")
    return check_meta(read_json(path), path)


def check_meta(meta, path: str) -> dict:
    """The ``videos`` dict of a parsed ``meta.json`` after checking its schema: ``{"videos": {name: {"objects":
    {"<integer id>": {"category": str, "frames": [stem, ...]}}}}}``. ``ValueError`` naming the file, the video and
    the object that do not follow it."""
    if not isinstance(meta, dict) or not isinstance(meta.get("videos"), dict):
        raise schema_error(path, "top level", "expected an object with a 'videos' object (video name -> video)")
    for name, video in meta["videos"].items():
        where = f"video {name!r}"
        if not isinstance(video, dict) or not isinstance(video.get("objects", {}), dict):
            raise schema_error(path, where, "expected an object with an 'objects' object (object id -> object)")
        for oid, obj in video.get("objects", {}).items():
            at = f"{where}, object {oid!r}"
            if not str(oid).isdigit() or not 1 <= int(oid) <= MAX_OBJECT_ID:
                raise schema_error(path, at, f"object ids are integers 1..{MAX_OBJECT_ID} (label-map values)")
            if not isinstance(obj, dict):
                raise schema_error(path, at, "expected an object with 'category' and 'frames'")
            if obj.get("category") is not None and not isinstance(obj["category"], str):
                raise schema_error(path, at, f"'category' must be a string, got {obj['category']!r}")
            frames = obj.get("frames", [])
            if not isinstance(frames, list) or not all(isinstance(f, str) and f for f in frames):
                raise schema_error(path, at, f"'frames' must be a list of frame names, got {frames!r}")
    return meta["videos"]


def all_frames_dir(root: str, split: str) -> Optional[str]:
    """The ``JPEGImages`` folder of ``<split>_all_frames`` if the tree has one."""
    for cand in (os.path.join(root, f"{split}_all_frames", "JPEGImages"),
                 os.path.join(root, "all_frames", f"{split}_all_frames", "JPEGImages")):
        if os.path.isdir(cand):
            return cand
    return None


def seen_categories(root: str) -> Optional[Set[str]]:
    """The categories of ``<root>/train/meta.json`` (YouTube-VOS' "seen" categories), ``None`` without one."""
    path = os.path.join(root, "train", "meta.json")
    if not os.path.isfile(path):
        return None
    videos = check_meta(read_json(path), path)
    return {o["category"] for v in videos.values() for o in v.get("objects", {}).values() if o.get("category")}


def read_youtube_vos(root: str, split: str = "valid", all_frames="auto",
                     videos: Optional[Iterable[str]] = None) -> List[VideoSequence]:
    """The videos of a YouTube-VOS split, in ``meta.json`` order sorted by name.

    Args:
        root: the folder holding ``<split>/`` (and optionally ``<split>_all_frames/``)
        split: ``"valid"``, ``"train"`` or ``"test"``
        all_frames: track through every frame of ``*_all_frames``: ``"auto"`` (when present), ``True`` (required)
            or ``False`` (the annotated frames only)
        videos: only these video names

    Each :class:`VideoSequence` lists the frames to track, the output frames (``meta.json``), its objects with
    their category and first annotation.

    Raises:
        FileNotFoundError: a missing root, ``meta.json``, image / annotation folder or frame (named)
        ValueError: an object without any annotation, an unknown video
    """
    meta = read_meta(root, split)
    names = select_names(sorted(meta), None if videos is None else list(videos),
                         os.path.join(root, split, "meta.json"))
    sparse_root = require_dir(os.path.join(root, split, "JPEGImages"), f"YouTube-VOS {split!r} image folder")
    ann_root = require_dir(os.path.join(root, split, "Annotations"), f"YouTube-VOS {split!r} annotation folder")
    dense_root = all_frames_dir(root, split) if all_frames else None
    if all_frames is True and dense_root is None:
        raise FileNotFoundError(f"all_frames=True but neither {os.path.join(root, split + '_all_frames')} nor "
                                f"{os.path.join(root, 'all_frames', split + '_all_frames')} exists")
    scenes = read_sidecar(root).get("sequences", {})
    out = []
    for name in names:
        sparse = list_files(require_dir(os.path.join(sparse_root, name), f"YouTube-VOS video {name!r}: image "
                                        "folder"), (".jpg", ".jpeg"))
        frame_paths = sparse
        if dense_root is not None:
            folder = require_dir(os.path.join(dense_root, name), f"YouTube-VOS video {name!r}: all-frames folder")
            frame_paths = list_files(folder, (".jpg", ".jpeg"))
        if not frame_paths:
            raise FileNotFoundError(f"YouTube-VOS video {name!r}: no .jpg frame")
        frames = make_frames(frame_paths)
        stems = {f.stem for f in frames}
        objects_meta = meta[name].get("objects", {})
        listed = sorted({s for o in objects_meta.values() for s in o.get("frames", [])})
        output = listed or [os.path.splitext(os.path.basename(p))[0] for p in sparse]
        missing = [s for s in output if s not in stems]
        if missing:
            raise FileNotFoundError(f"YouTube-VOS video {name!r}: frames {missing[:5]} listed in meta.json have no "
                                    "image")
        ann_folder = require_dir(os.path.join(ann_root, name), f"YouTube-VOS video {name!r}: annotation folder")
        annotations = {os.path.splitext(os.path.basename(p))[0]: p for p in list_files(ann_folder, (".png",))}
        unframed = sorted(s for s in annotations if s not in stems)
        if unframed:
            raise ValueError(f"YouTube-VOS video {name!r}: annotations {unframed[:5]} have no frame image")
        seq = VideoSequence(name=name, dataset="ytvos", frames=frames, output_stems=output,
                            objects={int(k): ObjectInfo(int(k), o.get("category")) for k, o in objects_meta.items()},
                            annotations=annotations, scene_params=scenes.get(name))
        seq.check_annotations()
        _first_annotations(seq)
        out.append(seq)
    return out


def _first_annotations(seq: VideoSequence):
    """Sets each object's ``first_stem``: the first annotation PNG (in frame order) holding its id."""
    todo = set(seq.objects)
    for s in [f.stem for f in seq.frames if f.stem in seq.annotations]:
        if not todo:
            break
        present = set(np.unique(seq.label_map(s)).tolist())
        for i in sorted(todo & present):
            seq.objects[i].first_stem = s
        todo -= present
    if todo:
        raise ValueError(f"YouTube-VOS video {seq.name!r}: objects {sorted(todo)} of meta.json appear in no "
                         "annotation PNG")


def scored_stems(sequence: VideoSequence, object_id: int) -> List[str]:
    """The output frames on which an object is scored: those after its first annotation (server semantics)."""
    first = sequence.objects[object_id].first_stem
    if first is None:
        return list(sequence.output_stems)
    n0 = sequence.number(first)
    return [s for s in sequence.output_stems if sequence.number(s) > n0]


def submission_path(out_dir: str, video: str, stem: str) -> str:
    """``<out_dir>/Annotations/<video>/<stem>.png``."""
    return os.path.join(out_dir, "Annotations", video, f"{stem}.png")


def write_prediction(out_dir: str, video: str, stem: str, label_map: np.ndarray,
                     palette: Optional[np.ndarray] = None) -> str:
    return write_label_map(submission_path(out_dir, video, stem), label_map, palette)


def zip_submission(out_dir: str, zip_path: Optional[str] = None) -> str:
    """Zips ``<out_dir>/Annotations`` as the server expects (``Annotations/<video>/<stem>.png`` entries); returns the
    archive's path (default ``<out_dir>/submission.zip``)."""
    ann = require_dir(os.path.join(out_dir, "Annotations"), "submission folder")
    zip_path = zip_path or os.path.join(out_dir, "submission.zip")
    tmp = f"{zip_path}.{os.getpid()}.part"
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for dirpath, _, files in sorted(os.walk(ann)):
            for fn in sorted(files):
                if fn.endswith(".png"):
                    full = os.path.join(dirpath, fn)
                    z.write(full, os.path.relpath(full, out_dir).replace(os.sep, "/"))
    os.replace(tmp, zip_path)
    return zip_path
