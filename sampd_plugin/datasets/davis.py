"""DAVIS 2017 (Pont-Tuset et al.) folder trees: reading sequences and writing prediction folders.

The layout (as downloaded, and as the official ``davis2017-evaluation`` toolkit reads it)::

    <root>/JPEGImages/<resolution>/<sequence>/00000.jpg ...
    <root>/Annotations/<resolution>/<sequence>/00000.png ...   indexed PNGs: 0 background, 1..N objects, 255 void
    <root>/ImageSets/2017/<split>.txt                           one sequence name per line

Semi-supervised protocol (what the toolkit computes, ``davis2017/evaluation.py``): a sequence's objects are
``1..N`` with ``N`` the largest id of its *first* annotation (void removed); only the first frame's annotation is
given; J and F are computed per object on every annotated frame but the first and the last, on the predicted label
maps read from ``<results>/<sequence>/<stem>.png`` (one id per pixel); void pixels count as background (the toolkit
passes no void mask in this task).

This module imports no FiftyOne.
"""

from __future__ import annotations

import os
from typing import Dict, Iterable, List, Optional, Sequence

import numpy as np

from sampd_plugin.datasets.base import (ObjectInfo, VideoSequence, list_files, make_frames, read_sidecar,
                                        require_dir, require_file, select_names)
from sampd_plugin.datasets.labelmaps import VOID, read_label_map, write_label_map

SPLITS = ("train", "val", "test-dev", "test-challenge")
RESOLUTIONS = ("480p", "Full-Resolution")


def split_file(root: str, split: str) -> str:
    return os.path.join(root, "ImageSets", "2017", f"{split}.txt")


def read_split(root: str, split: str = "val") -> List[str]:
    """Sequence names listed in ``ImageSets/2017/<split>.txt``, in file order."""
    if not os.path.isdir(root):
        raise FileNotFoundError(f"DAVIS root {root} does not exist")
    path = require_file(split_file(root, split), f"DAVIS split file for split {split!r}:")
    with open(path) as f:
        names = [line.strip() for line in f if line.strip()]
    if not names:
        raise ValueError(f"{path} lists no sequence")
    return names


def read_davis(root: str, split: str = "val", resolution: str = "480p",
               sequences: Optional[Iterable[str]] = None) -> List[VideoSequence]:
    """The sequences of a DAVIS 2017 split (``sequences``: only those names, in split order).

    Each :class:`VideoSequence` has every JPEG frame as a frame and an output frame, the annotation PNGs that exist
    (all of them for ``train`` / ``val``), and objects ``1..N`` (``N`` = the largest id of the first annotation),
    each prompted on the first frame if it is there.

    Raises:
        FileNotFoundError: a missing root, split file, image or annotation folder, first-frame annotation (named)
        ValueError: an unknown sequence name, annotation files whose stems are not frames, an annotation that is not
            a label map of its frame's size (:meth:`VideoSequence.check_annotations`; named)
    """
    names = select_names(read_split(root, split), None if sequences is None else list(sequences),
                         split_file(root, split))
    img_root = require_dir(os.path.join(root, "JPEGImages", resolution), "DAVIS image folder")
    ann_root = os.path.join(root, "Annotations", resolution)
    annotated = not split.startswith("test")
    if annotated:
        require_dir(ann_root, "DAVIS annotation folder")
    scenes = read_sidecar(root).get("sequences", {})
    out = []
    for name in names:
        folder = require_dir(os.path.join(img_root, name), f"DAVIS sequence {name!r}: image folder")
        images = list_files(folder, (".jpg", ".jpeg"))
        if not images:
            raise FileNotFoundError(f"DAVIS sequence {name!r}: no .jpg frame in {folder}")
        frames = make_frames(images)
        stems = {f.stem for f in frames}
        annotations = {}
        ann_folder = os.path.join(ann_root, name)
        if os.path.isdir(ann_folder):
            for p in list_files(ann_folder, (".png",)):
                s = os.path.splitext(os.path.basename(p))[0]
                if s not in stems:
                    raise ValueError(f"DAVIS sequence {name!r}: annotation {p} has no frame {s}.jpg in {folder}")
                annotations[s] = p
        elif annotated:
            raise FileNotFoundError(f"DAVIS sequence {name!r}: annotation folder {ann_folder} does not exist")
        first = frames[0].stem
        seq = VideoSequence(name=name, dataset="davis", frames=frames, output_stems=[f.stem for f in frames],
                            annotations=annotations, scene_params=scenes.get(name))
        seq.check_annotations()
        if annotations:
            if first not in annotations:
                raise FileNotFoundError(f"DAVIS sequence {name!r}: the first frame has no annotation "
                                        f"{os.path.join(ann_folder, first + '.png')}")
            present = set(np.unique(seq.label_map(first)).tolist()) - {0, VOID}
            n = max(present, default=0)
            seq.objects = {i: ObjectInfo(i, None, first if i in present else None) for i in range(1, n + 1)}
        out.append(seq)
    return out


def davis_scored_stems(sequence: VideoSequence) -> List[str]:
    """The frames the semi-supervised toolkit scores: the annotated frames but the first and the last."""
    stems = [s for s in sequence.output_stems if s in sequence.annotations]
    return stems[1:-1]


def gt_object_masks(label_map: np.ndarray, object_ids: Sequence[int]) -> Dict[int, np.ndarray]:
    """Per-object ground-truth masks of an annotation as the semi-supervised toolkit splits it: void pixels are
    background (``masks[masks == 255] = 0``), object ``i`` is ``label_map == i`` (empty when absent)."""
    lm = np.where(label_map == VOID, 0, label_map)
    return {i: lm == i for i in object_ids}


def results_path(results_dir: str, sequence: str, stem: str) -> str:
    """``<results>/<sequence>/<stem>.png``: where the toolkit reads a predicted label map."""
    return os.path.join(results_dir, sequence, f"{stem}.png")


def write_prediction(results_dir: str, sequence: str, stem: str, label_map: np.ndarray,
                     palette: Optional[np.ndarray] = None) -> str:
    """Writes one predicted label map where the toolkit reads it (:func:`results_path`)."""
    return write_label_map(results_path(results_dir, sequence, stem), label_map, palette)


def read_prediction(results_dir: str, sequence: str, stem: str) -> np.ndarray:
    """A predicted label map as the toolkit reads it (``FileNotFoundError`` naming the missing PNG)."""
    path = results_path(results_dir, sequence, stem)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"DAVIS results: {path} is missing (one PNG per annotated frame, named as the "
                                "annotation)")
    return read_label_map(path)
