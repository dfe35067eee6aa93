"""FiftyOne import / export of DAVIS 2017, YouTube-VOS 2018 and UVO trees as image-sequence datasets.

Schema (FiftyOne's own zoo DAVIS, ``voxel51/davis-2017`` with ``format="image"``; the other datasets follow it):
one image sample per frame with

- ``filepath``: the frame file (the dataset's own JPEG / PNG; pixels are never re-encoded);
- ``sequence_id`` (str): the sequence / video name, also in ``tags`` (after the split name);
- ``frame_number`` (str): the file stem, e.g. ``"00000"`` (order numerically);
- ``ground_truth``: ``fo.Detections`` of the frame's annotation, one ``fo.Detection`` per object with its
  instance ``mask`` cropped to ``bounding_box`` and ``index`` = label-map id - 1 (so index 0 is the PNG's id 1).
  DAVIS, as the zoo: on each annotated frame, indices ``0 .. max id - 1``, an object absent from that frame has a
  detection without mask and a zero box, ``label = sequence + str(index)``; void (255) pixels belong to no object.
  YouTube-VOS: only the objects of the frame's PNG (first appearances in ``valid``), ``label`` = the category of
  ``meta.json``; UVO: one detection per track visible on the frame, ``label = "object"``, attribute ``track_id``.

Trees written by :mod:`sampd_plugin.synthetic.trees` also give every sample a ``synthetic`` field (its scene's
parameters), so ``sampd_plugin.track(..., model="synthetic")`` works on them. YouTube-VOS samples also have
``submission_frame`` (bool: the frame is listed in ``meta.json``, its prediction goes
into the submission); the dataset's ``info`` records the split and, when the tree has ``train/meta.json``, the
``seen_categories``. UVO samples have ``video_id`` (the JSON's integer id).

Exports write what the official tools read: :func:`export_davis` one indexed PNG per frame (object id = ``index +
1``; overlaps resolved by :func:`sampd_plugin.datasets.labelmaps.resolve_overlaps` with each detection's
``confidence``), :func:`export_youtube_vos` the server's ``Annotations/`` folder for the listed frames + the zip.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from typing import Dict, Iterable, List, Optional, Tuple

import cv2
import numpy as np

import fiftyone as fo
import fiftyone.core.utils as fou

from sampd_plugin.datasets import davis as davis_io
from sampd_plugin.datasets import uvo as uvo_io
from sampd_plugin.datasets import youtube_vos as ytvos_io
from sampd_plugin.datasets.base import VideoSequence
from sampd_plugin.datasets.labelmaps import VOID, label_map_to_masks, masks_to_label_map, write_label_map
from sampd_plugin.fo.labels import field_name, paste_mask
from sampd_plugin.fo.sources import dataset_of, root_dataset

SEQUENCE_FIELD = "sequence_id"
ORDER_FIELD = "frame_number"
SUBMISSION_FIELD = "submission_frame"


# --- import --------------------------------------------------------------------------------------------------------
@contextlib.contextmanager
def _atomic_dataset(name: Optional[str], default: str, overwrite: bool, persistent: bool):
    """Yields a temporary (non-persistent) dataset to import into; on success it is renamed ``name`` (replacing an
    existing dataset of that name when ``overwrite``) and made ``persistent``, on any error it is deleted: an import
    that fails leaves no dataset, half-built or empty, and never touches the existing one. An existing ``name``
    without ``overwrite`` is refused first."""
    final = name if name is not None else fo.get_default_dataset_name().replace(" ", "-") + "-" + default
    if fo.dataset_exists(final) and not overwrite:
        raise ValueError(f"dataset {final!r} exists; pass overwrite=True to replace it or choose another name")
    tmp = fo.Dataset(f"{final}-importing-{uuid.uuid4().hex[:8]}")
    try:
        yield tmp
        if fo.dataset_exists(final):
            fo.delete_dataset(final)
        tmp.name = final
        tmp.persistent = persistent
    except BaseException:
        tmp.delete()
        raise


def object_detection(mask: np.ndarray, index: int, label: Optional[str], **attrs) -> "fo.Detection":
    """One object on one frame as the zoo writes it (:func:`zoo_detections` does
    the same for a whole DAVIS frame): ``cv2.boundingRect`` of the mask as the relative box, the uint8 0/1 mask
    cropped to it (``None`` and a zero box when the object is absent)."""
    m = np.asarray(mask, dtype=np.uint8)
    h, w = m.shape
    x, y, bw, bh = cv2.boundingRect(m)
    crop = m[y:y + bh, x:x + bw] if m.any() else None
    return fo.Detection(bounding_box=[x / w, y / h, bw / w, bh / h], mask=crop, label=label, index=int(index),
                        **attrs)


def zoo_detections(masks: Dict[int, np.ndarray], sequence: str) -> "fo.Detections":
    """``fo.Detections`` of one frame exactly as FiftyOne's DAVIS 2017 zoo loader (``voxel51/davis-2017``,
    ``format="image"``) writes them from a label map: for each object id ``1..max id on the frame`` a detection with
    ``index = id - 1`` (from 0), ``label = sequence + str(index)``, the box of ``cv2.boundingRect`` (relative
    ``[x, y, w, h]``) and the mask cropped to it; an object absent from the frame but below the frame's max id gets
    a detection with no mask and the box ``[0, 0, 0, 0]``.

    Args:
        masks: ``{object id >= 1: (H, W) bool mask}`` of the visible objects
        sequence: the sequence name
    """
    dets = []
    if masks:
        h, w = next(iter(masks.values())).shape
        for cc in range(max(masks)):
            m = masks.get(cc + 1)
            m = np.zeros((h, w), np.uint8) if m is None else m.astype(np.uint8)
            x, y, bw, bh = cv2.boundingRect(m)
            crop = m[y:y + bh, x:x + bw] if m.any() else None
            dets.append(fo.Detection(bounding_box=[x / w, y / h, bw / w, bh / h], mask=crop, label=sequence + str(cc),
                                     index=cc))
    return fo.Detections(detections=dets)


def davis_frame_detections(label_map: np.ndarray, sequence: str) -> "fo.Detections":
    """The zoo DAVIS loader's ``ground_truth`` of one annotation: void removed, one detection per id ``1..max``
    (``index = id - 1``, ``label = sequence + str(index)``), empty for an id absent from the frame."""
    return zoo_detections(label_map_to_masks(label_map, void=VOID), sequence)


def _scene(seq: VideoSequence) -> dict:
    """``{"synthetic": scene parameters}`` for a sequence of a generated tree, else ``{}``."""
    return {"synthetic": dict(seq.scene_params)} if seq.scene_params else {}


def _add(dataset, samples: List["fo.Sample"]):
    if samples:
        dataset.add_samples(samples, progress=False)


def _progress_total(sequences: Iterable[VideoSequence]) -> int:
    return sum(len(s.frames) for s in sequences)


def load_davis(root: str, split: str = "val", resolution: str = "480p", name: Optional[str] = None,
               sequences: Optional[Iterable[str]] = None, overwrite: bool = False, persistent: bool = False,
               progress=True) -> "fo.Dataset":
    """A DAVIS 2017 split as an image-sequence dataset in the zoo's schema (module docstring).

    Args:
        root: the DAVIS folder (``JPEGImages/``, ``Annotations/``, ``ImageSets/``)
        split: ``"val"``, ``"train"``, ``"test-dev"`` or ``"test-challenge"`` (tests have no ``ground_truth``)
        resolution: ``"480p"`` or ``"Full-Resolution"``
        name: dataset name (default: a fresh unique name); an existing one needs ``overwrite=True``
        sequences: only these sequences
        progress: FiftyOne progress-bar setting

    The import is all-or-nothing (:func:`_atomic_dataset`): every annotation is checked against its frame
    (readable, a label map, the frame's size) and any error deletes what was built.

    Raises:
        FileNotFoundError: a missing split file, folder or first annotation (named)
        ValueError: an annotation that is not a label map of its frame's size, or is unreadable (naming the sequence,
            the frame and the file)
    """
    seqs = davis_io.read_davis(root, split, resolution, sequences)
    with _atomic_dataset(name, f"davis-2017-{split}", overwrite, persistent) as dataset:
        dataset.info["davis"] = dict(root=os.path.abspath(root), split=split, resolution=resolution)
        dataset.save()
        with fou.ProgressBar(total=_progress_total(seqs), progress=progress) as pb:
            for seq in seqs:
                batch = []
                for f in seq.frames:
                    kw = {}
                    if f.stem in seq.annotations:
                        kw["ground_truth"] = davis_frame_detections(seq.label_map(f.stem), seq.name)
                    batch.append(fo.Sample(filepath=os.path.abspath(f.path), tags=[split, seq.name],
                                           sequence_id=seq.name, frame_number=f.stem, **_scene(seq), **kw))
                    pb.update()
                _add(dataset, batch)
        dataset.compute_metadata(progress=False)
    return dataset


def load_youtube_vos(root: str, split: str = "valid", name: Optional[str] = None, all_frames="auto",
                     videos: Optional[Iterable[str]] = None, overwrite: bool = False, persistent: bool = False,
                     progress=True) -> "fo.Dataset":
    """A YouTube-VOS 2018 split as an image-sequence dataset (module docstring): every frame to track (all frames
    when ``<split>_all_frames`` exists and ``all_frames`` is ``"auto"`` or ``True``), ``ground_truth`` on the frames
    with an annotation PNG (``index = meta.json id - 1``, ``label`` = category), ``submission_frame`` on the frames
    listed in ``meta.json``; ``info["seen_categories"]`` from ``train/meta.json`` when present."""
    seqs = ytvos_io.read_youtube_vos(root, split, all_frames, videos)
    seen = ytvos_io.seen_categories(root)
    with _atomic_dataset(name, f"youtube-vos-2018-{split}", overwrite, persistent) as dataset:
        dataset.info["youtube_vos"] = dict(root=os.path.abspath(root), split=split)
        if seen is not None:
            dataset.info["seen_categories"] = sorted(seen)
        dataset.save()
        with fou.ProgressBar(total=_progress_total(seqs), progress=progress) as pb:
            for seq in seqs:
                listed = set(seq.output_stems)
                batch = []
                for f in seq.frames:
                    kw = {}
                    if f.stem in seq.annotations:
                        lm = seq.label_map(f.stem)
                        ids = [int(i) for i in np.unique(lm) if i and i != VOID]
                        kw["ground_truth"] = fo.Detections(detections=[
                            object_detection(lm == i, i - 1, seq.objects[i].category if i in seq.objects else None)
                            for i in ids])
                    batch.append(fo.Sample(filepath=os.path.abspath(f.path), tags=[split, seq.name],
                                           sequence_id=seq.name, frame_number=f.stem,
                                           **{SUBMISSION_FIELD: f.stem in listed}, **_scene(seq), **kw))
                    pb.update()
                _add(dataset, batch)
        dataset.compute_metadata(progress=False)
    return dataset


def load_uvo(root: str, split: str = "val", name: Optional[str] = None, annotations: Optional[str] = None,
             frames_dir: Optional[str] = None, videos: Optional[Iterable] = None, overwrite: bool = False,
             persistent: bool = False, progress=True) -> "fo.Dataset":
    """A UVO 1.0 dense split as an image-sequence dataset (module docstring): ``ground_truth`` on every frame, one
    detection per visible track (``index`` = the track's position in its video, ``track_id`` = its annotation id,
    ``label = "object"``), ``video_id`` the JSON's video id."""
    seqs = uvo_io.read_uvo(root, split, annotations, frames_dir, videos)
    with _atomic_dataset(name, f"uvo-1.0-{split}", overwrite, persistent) as dataset:
        dataset.info["uvo"] = dict(root=os.path.abspath(root), split=split)
        dataset.save()
        with fou.ProgressBar(total=_progress_total(seqs), progress=progress) as pb:
            for seq in seqs:
                batch = []
                tracks = sorted(seq.tracks)
                for t, f in enumerate(seq.frames):
                    dets = []
                    for k, tid in enumerate(tracks):
                        m = uvo_io.decode_rle(seq.tracks[tid][t], seq.size)
                        if m is not None and m.any():
                            dets.append(object_detection(m, k, "object", track_id=tid))
                    batch.append(fo.Sample(filepath=os.path.abspath(f.path), tags=[split, seq.name],
                                           sequence_id=seq.name, frame_number=f.stem, video_id=seq.video_id,
                                           ground_truth=fo.Detections(detections=dets), **_scene(seq)))
                    pb.update()
                _add(dataset, batch)
        dataset.compute_metadata(progress=False)
    return dataset


# --- export --------------------------------------------------------------------------------------------------------
def _sequences(samples, sequence_field: str, order_field: str) -> Dict[str, List[Tuple[str, str]]]:
    """``{sequence: [(sample id, filepath), ...]}`` ordered by ``order_field`` (numerically when integer-like)."""
    for f in (sequence_field, order_field):
        if samples.get_field(f) is None:
            raise ValueError(f"'{root_dataset(samples).name}' has no field {f!r}: pass sequence_field= / "
                             "order_field= naming the sequence and frame-order fields")
    ids, paths, seq, order = samples.values(["id", "filepath", sequence_field, order_field])
    groups: Dict[str, list] = {}
    for i, p, s, o in zip(ids, paths, seq, order):
        if s is None:
            raise ValueError(f"sample {i} ({os.path.basename(p)}) has no {sequence_field!r}")
        groups.setdefault(str(s), []).append((o, i, p))
    out = {}
    for s, rows in groups.items():
        numeric = all(str(o).isdigit() or isinstance(o, int) for o, _, _ in rows)
        rows.sort(key=lambda r: (int(r[0]) if numeric else str(r[0])))
        out[s] = [(i, p) for _, i, p in rows]
    return out


def _frame_size(sample) -> Tuple[int, int]:
    md = sample.metadata
    if md is not None and getattr(md, "height", None) and getattr(md, "width", None):
        return int(md.height), int(md.width)
    from PIL import Image

    with Image.open(sample.filepath) as im:
        return im.height, im.width


def detections_label_map(detections, hw: Tuple[int, int], index_offset: int = 1) -> np.ndarray:
    """The label map of one frame's ``fo.Detections``: object id = ``index + index_offset``; detections without
    ``index``, without a mask or ``lost`` are skipped; several with one index are united; overlaps resolved by
    :func:`~sampd_plugin.datasets.labelmaps.resolve_overlaps` with the (highest) ``confidence`` of each object."""
    masks: Dict[int, np.ndarray] = {}
    for det in predicted(detections):
        oid = int(det.index) + index_offset
        m = paste_mask(det, hw)
        masks[oid] = masks[oid] | m if oid in masks else m
    scores = {int(i) + index_offset: s for i, s in object_scores(detections).items()}
    return masks_to_label_map(masks, hw, scores)


def predicted(detections) -> List:
    """The detections of a frame that predict pixels: with an ``index`` and a mask, not ``lost``."""
    return [d for d in (detections.detections if detections is not None else [])
            if d.index is not None and d.has_mask and not getattr(d, "lost", False)]


def object_scores(detections) -> Dict[int, float]:
    """``{index: highest confidence}`` of a frame's :func:`predicted` detections (the scores of the overlap rule);
    objects without a confidence are left out (they rank lowest)."""
    scores: Dict[int, float] = {}
    for d in predicted(detections):
        if d.confidence is not None:
            scores[int(d.index)] = max(scores.get(int(d.index), float("-inf")), float(d.confidence))
    return scores


def export_target(samples, out_dir: str, overwrite: bool, zip_path: Optional[str] = None) -> str:
    """Prepares the folder an exporter writes into (returns its absolute path): created when missing; a folder that
    is not empty (or an existing ``zip_path``) is refused unless ``overwrite``, which clears it first, so an export
    never mixes its files with older ones (stale PNGs, an older video in a submission zip). A folder holding the
    dataset's own media is never cleared."""
    out_dir = os.path.abspath(out_dir)
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise ValueError(f"export folder {out_dir} is a file, not a folder")
    taken = sorted(os.listdir(out_dir)) if os.path.isdir(out_dir) else []
    outside = zip_path is not None and not os.path.abspath(zip_path).startswith(out_dir + os.sep)
    if outside and os.path.exists(zip_path):
        taken.append(os.path.abspath(zip_path))
    if taken and not overwrite:
        raise ValueError(f"export folder {out_dir} is not empty ({', '.join(taken[:3])}"
                         f"{' ...' if len(taken) > 3 else ''}): pass overwrite=True to clear it first, or choose an "
                         "empty folder")
    if taken:
        media = [p for p in root_dataset(samples).values("filepath")
                 if os.path.abspath(p).startswith(out_dir + os.sep)]
        if media:
            raise ValueError(f"export folder {out_dir} holds the dataset's own media (e.g. {media[0]}): it is never "
                             "cleared; choose another folder")
        for name in os.listdir(out_dir) if os.path.isdir(out_dir) else []:
            path = os.path.join(out_dir, name)
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path)
            else:
                os.remove(path)
        if outside and os.path.isfile(zip_path):
            os.remove(zip_path)
    os.makedirs(out_dir, exist_ok=True)
    return out_dir


def export_davis(samples, label_field: str, out_dir: str, sequence_field: str = SEQUENCE_FIELD,
                 order_field: str = ORDER_FIELD, index_offset: int = 1, palette=None, overwrite: bool = False,
                 progress=True) -> str:
    """Writes ``<out_dir>/<sequence>/<stem>.png`` for every frame sample (``stem`` = the frame file's stem, as the
    DAVIS toolkit names results), from ``label_field``'s Detections (:func:`detections_label_map`; a frame without
    labels gets an empty map). Returns ``out_dir``: the results folder to give ``evaluation_method.py
    --task semi-supervised --results_path``. A non-empty ``out_dir`` is refused unless ``overwrite``, which clears it
    first (:func:`export_target`)."""
    label_field = field_name(label_field)
    if samples.get_field(label_field) is None:
        raise ValueError(f"'{root_dataset(samples).name}' has no field {label_field!r}")
    groups = _sequences(samples, sequence_field, order_field)
    export_target(samples, out_dir, overwrite)
    dataset = dataset_of(samples)
    total = sum(len(v) for v in groups.values())
    with fou.ProgressBar(total=total, progress=progress) as pb:
        for seq, rows in groups.items():
            for sample in dataset.select([sid for sid, _ in rows], ordered=True):
                lm = detections_label_map(sample[label_field], _frame_size(sample), index_offset)
                stem = os.path.splitext(os.path.basename(sample.filepath))[0]
                write_label_map(davis_io.results_path(out_dir, seq, stem), lm, palette)
                pb.update()
    return out_dir


def export_youtube_vos(samples, label_field: str, out_dir: str, sequence_field: str = SEQUENCE_FIELD,
                       order_field: str = ORDER_FIELD, submission_field: Optional[str] = SUBMISSION_FIELD,
                       index_offset: int = 1, palette=None, zip_path: Optional[str] = None, overwrite: bool = False,
                       progress=True) -> str:
    """Writes the YouTube-VOS submission: ``<out_dir>/Annotations/<video>/<stem>.png`` for the frames whose
    ``submission_field`` is true (all frames if the dataset has no such field), object id = ``index +
    index_offset`` (= the ``meta.json`` id for :func:`load_youtube_vos` datasets), then zips it (``Annotations/`` at
    the top of the archive). Returns the zip's path (default ``<out_dir>/submission.zip``). A non-empty ``out_dir``
    (or an existing ``zip_path``) is refused unless ``overwrite``, which clears it first (:func:`export_target`): the
    zip holds this export only."""
    label_field = field_name(label_field)
    if samples.get_field(label_field) is None:
        raise ValueError(f"'{root_dataset(samples).name}' has no field {label_field!r}")
    groups = _sequences(samples, sequence_field, order_field)
    export_target(samples, out_dir, overwrite, zip_path)
    use_flag = submission_field is not None and samples.get_field(submission_field) is not None
    dataset = dataset_of(samples)
    total = sum(len(v) for v in groups.values())
    with fou.ProgressBar(total=total, progress=progress) as pb:
        for seq, rows in groups.items():
            for sample in dataset.select([sid for sid, _ in rows], ordered=True):
                pb.update()
                if use_flag and not sample[submission_field]:
                    continue
                lm = detections_label_map(sample[label_field], _frame_size(sample), index_offset)
                stem = os.path.splitext(os.path.basename(sample.filepath))[0]
                ytvos_io.write_prediction(out_dir, seq, stem, lm, palette)
    return ytvos_io.zip_submission(out_dir, zip_path)
