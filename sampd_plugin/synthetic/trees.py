"""Miniature DAVIS 2017, YouTube-VOS 2018 and UVO 1.0 trees rendered from :class:`SyntheticScene` s, in the exact
official layouts (JPEG / PNG frames, indexed-PNG annotations, ``ImageSets``, ``meta.json``, YouTube-VIS-style JSON
with RLE masks), for tests and for running the paper-table CLI without the real data.

Every tree has a sidecar ``sampd_synthetic.json`` (:data:`sampd_plugin.datasets.base.SIDECAR`) mapping each
sequence name to its scene's parameters: the synthetic segmenter is rebuilt from it, and the exact ground truth of
every frame is known. Scene frame ``t`` (1-based) is the file stem ``t - 1`` (``00000`` is frame 1).

Scores on these trees are synthetic: they check the pipeline, they are not the paper's numbers.

This module imports no FiftyOne (numpy, Pillow; ``pycocotools`` for UVO's RLEs).
"""

from __future__ import annotations

import json
import os
from typing import Dict, List, Optional

import numpy as np

from sampd_plugin.datasets.base import VideoSequence, write_sidecar
from sampd_plugin.datasets.labelmaps import VOID, write_label_map
from sampd_plugin.synthetic.scene import SyntheticScene

GENERATOR = "sampd_plugin.synthetic.trees"
JPEG_QUALITY = 95


def sequence_scene(seq: VideoSequence) -> Optional[SyntheticScene]:
    """The scene a sequence of a tree written here was rendered from (its sidecar entry), else ``None``."""
    return SyntheticScene.from_params(seq.scene_params) if seq.scene_params else None


def _save_jpeg(path: str, image: np.ndarray):
    from PIL import Image

    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(image).save(path, format="JPEG", quality=JPEG_QUALITY)


def _save_png(path: str, image: np.ndarray):
    from PIL import Image

    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(image).save(path, format="PNG")


def void_ring(ids: np.ndarray, width: int = 1) -> np.ndarray:
    """``ids`` with the background pixels within ``width`` px (8-neighbourhood) of an object set to :data:`VOID`,
    like the thin void bands of DAVIS annotations."""
    import cv2

    fg = (ids > 0).astype(np.uint8)
    near = cv2.dilate(fg, np.ones((2 * width + 1, 2 * width + 1), np.uint8)) > 0
    out = ids.astype(np.uint8).copy()
    out[near & (fg == 0)] = VOID
    return out


def write_davis(root: str, num_sequences: int = 2, num_frames: int = 6, num_objects: int = 2, height: int = 64,
                width: int = 96, seed: int = 0, split: str = "val", resolution: str = "480p",
                void_width: int = 1) -> str:
    """A DAVIS 2017 tree: ``JPEGImages/<res>/<seq>/00000.jpg``, ``Annotations/<res>/<seq>/00000.png`` (visible
    objects ``1..num_objects``, a ``void_width``-px void ring around them, 0 disables it) and
    ``ImageSets/2017/<split>.txt``; sequence ``i`` is ``SyntheticScene(seed + i)`` named ``synthetic-<seed + i>``.
    Returns ``root``."""
    scenes = [SyntheticScene(seed + i, num_frames, num_objects, height, width) for i in range(num_sequences)]
    names = []
    for scene in scenes:
        name = f"synthetic-{scene.seed}"
        names.append(name)
        for t in range(1, scene.num_frames + 1):
            image, ids = scene.render(t)
            stem = f"{t - 1:05d}"
            _save_jpeg(os.path.join(root, "JPEGImages", resolution, name, stem + ".jpg"), image)
            ann = void_ring(ids, void_width) if void_width else ids.astype(np.uint8)
            write_label_map(os.path.join(root, "Annotations", resolution, name, stem + ".png"), ann)
    os.makedirs(os.path.join(root, "ImageSets", "2017"), exist_ok=True)
    with open(os.path.join(root, "ImageSets", "2017", f"{split}.txt"), "w") as f:
        f.write("".join(n + "\n" for n in names))
    write_sidecar(root, dict(generator=GENERATOR, layout="davis",
                             sequences={n: s.params for n, s in zip(names, scenes)}))
    return root


def _stems(num_frames: int, step: int) -> List[int]:
    return list(range(1, num_frames + 1, step))


def write_youtube_vos(root: str, num_videos: int = 2, num_frames: int = 16, num_objects: int = 3, height: int = 64,
                      width: int = 96, seed: int = 0, step: int = 5, late_object: bool = True,
                      all_frames: bool = True, split: str = "valid", train_videos: int = 1) -> str:
    """A YouTube-VOS 2018 tree.

    ``<split>/JPEGImages/<video>/`` holds every ``step``-th frame (``00000``, ``00005``, ...),
    ``<split>_all_frames/JPEGImages/<video>/`` every frame (if ``all_frames``), ``<split>/Annotations/<video>/``
    each object's first appearance only (the PNG of a frame holds the objects that first appear on it), and
    ``<split>/meta.json`` each object's category (its shape) and listed frames (from its first appearance on). With
    ``late_object`` the last object of every video starts on the third annotated frame. A ``train`` split of
    ``train_videos`` videos of two objects (every listed frame annotated) defines the seen categories (its objects'
    shapes). Returns ``root``."""
    sidecar = {}
    sparse = _stems(num_frames, step)
    starts = {num_objects: sparse[min(2, len(sparse) - 1)]} if late_object and num_objects > 1 else {}
    valid = [SyntheticScene(seed + i, num_frames, num_objects, height, width, starts) for i in range(num_videos)]
    train = [SyntheticScene(seed + 1000 + i, num_frames, 2, height, width) for i in range(train_videos)]
    for sp, scenes, full in ((split, valid, False), ("train", train, True)):
        if not scenes:
            continue
        videos = {}
        for scene in scenes:
            name = f"synthetic{scene.seed:06d}"
            sidecar[name] = scene.params
            first: Dict[int, int] = {}
            frames_of: Dict[int, List[str]] = {}
            for t in range(1, scene.num_frames + 1):
                image = None
                stem = f"{t - 1:05d}"
                if all_frames and sp == split:
                    image, ids = scene.render(t)
                    _save_jpeg(os.path.join(root, f"{sp}_all_frames", "JPEGImages", name, stem + ".jpg"), image)
                if t not in sparse:
                    continue
                if image is None:
                    image, ids = scene.render(t)
                _save_jpeg(os.path.join(root, sp, "JPEGImages", name, stem + ".jpg"), image)
                present = [int(i) for i in np.unique(ids) if i]
                new = [i for i in present if i not in first]
                for i in new:
                    first[i] = t
                for i in first:
                    frames_of.setdefault(i, []).append(stem)
                keep = present if full else new
                if keep:
                    ann = np.where(np.isin(ids, keep), ids, 0).astype(np.uint8)
                    write_label_map(os.path.join(root, sp, "Annotations", name, stem + ".png"), ann)
            labels = scene.labels
            videos[name] = {"objects": {str(i): {"category": labels[i], "frames": frames_of[i]}
                                        for i in sorted(first)}}
        os.makedirs(os.path.join(root, sp), exist_ok=True)
        with open(os.path.join(root, sp, "meta.json"), "w") as f:
            json.dump({"videos": videos}, f, indent=1)
    write_sidecar(root, dict(generator=GENERATOR, layout="ytvos", sequences=sidecar))
    return root


def write_uvo(root: str, num_videos: int = 2, num_frames: int = 8, num_objects: int = 3, height: int = 64,
              width: int = 96, seed: int = 0, split: str = "val") -> str:
    """A UVO 1.0 dense tree: ``uvo_videos_dense_frames/<video>/<k>.png`` (``k`` from 0) and
    ``VideoDenseSet/UVO_video_<split>_dense.json`` with one class-agnostic track per object (compressed RLE per
    frame, ``null`` where it is not visible). Returns ``root``."""
    from sampd_plugin.datasets.uvo import annotation_file, encode_rle, FRAMES_DIR

    videos, annotations = [], []
    sidecar = {}
    for i in range(num_videos):
        scene = SyntheticScene(seed + i, num_frames, num_objects, height, width)
        name = f"synthetic_{scene.seed}"
        sidecar[name] = scene.params
        vid = i + 1
        names = [f"{name}/{t - 1}.png" for t in range(1, num_frames + 1)]
        segs = {o: [] for o in scene.object_ids}
        for t in range(1, num_frames + 1):
            image, ids = scene.render(t)
            _save_png(os.path.join(root, FRAMES_DIR, names[t - 1]), image)
            for o in scene.object_ids:
                m = ids == o
                segs[o].append(encode_rle(m) if m.any() else None)
        videos.append({"id": vid, "width": width, "height": height, "length": num_frames, "file_names": names})
        for o in scene.object_ids:
            if not any(segs[o]):
                continue
            areas = [None if s is None else int(_rle_area(s)) for s in segs[o]]
            annotations.append({"id": len(annotations) + 1, "video_id": vid, "category_id": 1, "iscrowd": 0,
                                "segmentations": segs[o], "areas": areas, "bboxes": [None] * num_frames})
    data = {"info": {"description": "synthetic UVO-style tree (sampd)"}, "videos": videos,
            "annotations": annotations, "categories": [{"id": 1, "name": "object", "supercategory": "object"}]}
    path = annotation_file(root, split)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(data, f)
    write_sidecar(root, dict(generator=GENERATOR, layout="uvo", sequences=sidecar))
    return root


def _rle_area(rle) -> float:
    from pycocotools import mask as mask_utils

    return float(mask_utils.area(rle))


WRITERS = {"davis": write_davis, "ytvos": write_youtube_vos, "uvo": write_uvo}
