"""Sequences of a FiftyOne collection: what is tracked, whether the collection holds videos or image sequences.

A *sequence* (:class:`SampleSequence`) is an ordered stream of frames with labels, read through one frame-source
interface (:class:`sampd_plugin.core.frames.FrameSource`):

- a **video sample**: frames ``1..n`` of its video (:class:`~sampd_plugin.core.frames.VideoFile`), labels in the
  frame-level field ``frames.<field>``;
- an **image sequence**: the image samples sharing a value of ``sequence_field``, ordered by ``order_field``
  (FiftyOne's DAVIS zoo layout: ``sequence_id`` + a string ``frame_number`` such as ``"00000"``), frame ``i`` being
  the ``i``-th image in that order (:class:`~sampd_plugin.core.frames.ImageFiles`: the original files, so the model sees
  exactly the dataset's pixels), labels in the sample-level field ``<field>`` of each image.

:func:`layout_of` inspects a collection once and returns a :class:`VideoLayout` or an :class:`ImageLayout`; both
implement the same methods (field paths, label reading and bulk writing, run markers, frame sizes), so the store,
the runs, the SDK and the evaluation never branch on the media type. Order values that are all integers or
integer-like strings sort numerically, others as strings. A dynamic grouped view
(``dataset.group_by("sequence_id", order_by="frame_number")``) gives its group and order fields as defaults.

Run markers (:mod:`sampd_plugin.fo.runs`) live on each sequence's *head* sample: the video sample, or the first image
of an image sequence.

FiftyOne's private attributes: the glue reads them here only, where FiftyOne 1.22 has no public equivalent, each
helper saying why: :func:`dataset_of`, :func:`root_dataset`, :func:`dataset_id`, :func:`group_fields` /
:func:`layout_of` (a grouped view's stages) and :meth:`Layout.read_head` / :meth:`Layout.update_head` (a conditional
atomic update of one sample document).
"""

from __future__ import annotations

import abc
import dataclasses
import datetime
import os
import re
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from bson import ObjectId

import fiftyone as fo
import fiftyone.core.fields as fof
from fiftyone import ViewField as F

from sampd_plugin.core.frames import FrameSource, ImageFiles, VideoFile
from sampd_plugin.errors import SampdInputError
from sampd_plugin.fo.labels import field_name, is_absent_box

#: the fields of FiftyOne's DAVIS zoo layout, auto-detected on image collections
DEFAULT_SEQUENCE_FIELD = "sequence_id"
DEFAULT_ORDER_FIELD = "frame_number"

_INT_LIKE = re.compile(r"^\s*[-+]?\d+\s*$")


@dataclasses.dataclass
class SampleSequence:
    """One video, or one image sequence.

    Attributes:
        key: the video's sample id, or the image sequence's ``sequence_field`` value (as a string)
        name: how messages name it: ``sample <id> (<file>)`` or ``sequence '<key>' (<n> images)``
        head_id: id of the sample holding the sequence's run markers (the video sample / the first image)
        sample_ids: the video sample id, or the image sample id of each frame (frame ``i`` = ``sample_ids[i - 1]``)
        filepaths: the video file, or the image file of each frame
        num_frames: frames in the sequence (from the video's metadata; ``None`` if unknown)
        is_video: whether this is a video sample
    """

    key: str
    name: str
    head_id: str
    sample_ids: List[str]
    filepaths: List[str]
    num_frames: Optional[int]
    is_video: bool

    def frames(self) -> FrameSource:
        """The frame source of the sequence (1-based frame numbers)."""
        if self.is_video:
            return VideoFile(self.filepaths[0], self.num_frames)
        return ImageFiles(self.filepaths)

    def frame_of(self, sample_id: str) -> int:
        """The frame number of one image sample of the sequence (``1`` for a video sample)."""
        try:
            return 1 if self.is_video else self.sample_ids.index(sample_id) + 1
        except ValueError:
            raise SampdInputError(f"sample {sample_id} is not part of {self.name}") from None

    def missing_files(self) -> List[str]:
        """The files of the sequence that do not exist (remote paths are not checked)."""
        return [p for p in self.filepaths if "://" not in p and not os.path.exists(p)]


class Layout(abc.ABC):
    """How a collection stores its sequences; see the module docstring. ``samples`` is the collection of samples
    (for a dynamic grouped view, the samples before the grouping)."""

    is_video: bool = False
    sequence_field: Optional[str] = None
    order_field: Optional[str] = None

    def __init__(self, samples):
        self.samples = samples
        self.dataset = dataset_of(samples)
        self._sequences: Optional[List[SampleSequence]] = None

    # --- fields ------------------------------------------------------------------------------------------------------
    @abc.abstractmethod
    def path(self, field: str) -> str:
        """The full path of a label field: ``frames.<field>`` (videos) or ``<field>`` (images)."""

    def get_field(self, field: str):
        """The field object of a label field on the collection, or ``None``."""
        return self.samples.get_field(self.path(field_name(field)))

    def has_field(self, field: str) -> bool:
        """Whether the dataset declares the label field."""
        return self.dataset.has_field(self.path(field_name(field)))

    def add_field(self, field: str, ftype, **kwargs):
        """Declares a label field (or one of its attributes: ``"f.detections.score"``) if it does not exist."""
        path = self.path(field)
        if not self.dataset.has_field(path):
            if path.startswith("frames."):
                self.dataset.add_frame_field(path[len("frames."):], ftype, **kwargs)
            else:
                self.dataset.add_sample_field(path, ftype, **kwargs)

    @property
    def where(self) -> str:
        return f"dataset '{self.dataset.name}'"

    # --- sequences ---------------------------------------------------------------------------------------------------
    def sequences(self) -> List[SampleSequence]:
        """The sequences of the collection, in collection order (computed once)."""
        if self._sequences is None:
            self._sequences = self._build_sequences()
        return self._sequences

    @abc.abstractmethod
    def _build_sequences(self) -> List[SampleSequence]:
        ...

    def by_key(self) -> Dict[str, SampleSequence]:
        return {s.key: s for s in self.sequences()}

    def select(self, sequences: Iterable[SampleSequence]):
        """A view of the samples of the given sequences (e.g. one delegated operation's share)."""
        ids = [i for s in sequences for i in s.sample_ids]
        return self.dataset.select(ids, ordered=True)

    @abc.abstractmethod
    def frame_size(self, seq: SampleSequence) -> Tuple[int, int]:
        """``(H, W)`` of the sequence's frames from the metadata (computed when missing)."""

    def _head_metadata(self, seq: SampleSequence, height_attr: str, what: str):
        """The head sample's metadata, computed when missing; :class:`SampdInputError` naming the sequence when the
        media cannot be read."""
        sample = self.dataset[seq.head_id]
        meta = sample.metadata
        if meta is None or not getattr(meta, height_attr, None):
            try:
                sample.compute_metadata()
            except Exception as e:  # eta raises its own errors for unreadable media
                raise SampdInputError(f"{seq.name}: cannot read {what} ({type(e).__name__}: {e})") from None
            meta = sample.metadata
        if meta is None or not getattr(meta, height_attr, None):
            raise SampdInputError(f"{seq.name}: cannot read {what} (no frame size in its metadata)")
        return meta

    # --- labels ------------------------------------------------------------------------------------------------------
    @abc.abstractmethod
    def index_table(self, field: str) -> Dict[str, Dict[int, List[Optional[int]]]]:
        """``{sequence key: {frame_number: [Detection.index, ...]}}`` of the frames whose Detections field ``field``
        has detections, leaving out absent-object placeholders (:func:`sampd_plugin.fo.labels.is_absent_box`; one
        aggregation, no masks are loaded)."""

    @abc.abstractmethod
    def read_labels(self, seq: SampleSequence, field: str, frame_numbers: Optional[Sequence[int]] = None
                    ) -> Dict[int, object]:
        """``{frame_number: label or None}`` of ``field`` on the given frames of one sequence (all if ``None``)."""

    @abc.abstractmethod
    def frame_ids(self, seq: SampleSequence) -> Dict[int, str]:
        """``{frame_number: id}`` of the documents that hold the sequence's frame labels (frame ids of a video,
        image sample ids of an image sequence)."""

    @abc.abstractmethod
    def write_labels(self, field: str, labels: Dict[str, Tuple[SampleSequence, Dict[int, object]]]):
        """Writes ``{sequence key: (sequence, {frame_number: label})}`` in one bulk ``set_values`` call."""

    @abc.abstractmethod
    def labeled_counts(self, field: str) -> Dict[str, int]:
        """``{sequence key: number of frames whose field is set}``."""

    @abc.abstractmethod
    def clear(self, field: str, sequences: Iterable[SampleSequence]):
        """Clears the label field on every frame of the given sequences."""

    # --- sample-level values on the head samples (run markers) ------------------------------------------------------
    def head_values(self, field: str) -> Dict[str, object]:
        """``{sequence key: value of the sample-level field on the head sample}`` (``None`` where unset)."""
        seqs = self.sequences()
        if self.samples.get_field(field) is None:
            return {s.key: None for s in seqs}
        heads = self.dataset.select([s.head_id for s in seqs])
        values = dict(zip(heads.values("id"), heads.values(field)))
        return {s.key: values.get(s.head_id) for s in seqs}

    def head_value(self, field: str, seq: SampleSequence):
        """The value of a sample-level field on one sequence's head sample (``None`` where unset)."""
        sample = self.dataset[seq.head_id]
        return sample[field] if sample.has_field(field) else None

    def set_head_value(self, field: str, seq: SampleSequence, value):
        self.dataset.set_values(field, {seq.head_id: value}, key_field="id")

    # The run markers' compare-and-set (:mod:`sampd_plugin.ops.ownership`) needs a conditional atomic update of one
    # sample document, which FiftyOne 1.22 has no public API for: read_head / update_head use the dataset's private
    # pymongo collection (``_sample_collection``), the only place that does.
    def read_head(self, seq: SampleSequence, field: str):
        """The raw value of a sample-level field on the head sample, read from the database (``None`` if unset or
        if the sample no longer exists)."""
        doc = self.dataset._sample_collection.find_one({"_id": ObjectId(seq.head_id)}, {field: 1})
        return (doc or {}).get(field)

    def update_head(self, seq: SampleSequence, condition: dict, values: dict) -> bool:
        """Atomically sets ``values`` (``{path: value}``) on the head sample's document if it matches ``condition``
        (a MongoDB query on that document); returns whether it did (the compare-and-set of
        :mod:`sampd_plugin.ops.ownership`)."""
        import fiftyone.core.sample as fos

        update = {"$set": dict(values, last_modified_at=datetime.datetime.now(datetime.timezone.utc))}
        res = self.dataset._sample_collection.update_one({"_id": ObjectId(seq.head_id), **condition}, update)
        if res.matched_count == 1:  # in-memory samples of this process see the new marker (as set_values does)
            fos.Sample._reload_docs(self.dataset._sample_collection_name, sample_ids=[seq.head_id])
        return res.matched_count == 1

    def exists(self, seq: SampleSequence) -> bool:
        """Whether the sequence's head sample (and the dataset) still exist."""
        if getattr(self.dataset, "deleted", False):
            return False
        return len(self.dataset.select(seq.head_id)) == 1

    def sequence_meta(self, seq: SampleSequence) -> "SequenceMeta":
        """What a segmenter may know about the sequence
        (:meth:`~sampd_plugin.backends.base.PromptableSegmenter.for_sequence`)."""
        return SequenceMeta(self, seq)

    @abc.abstractmethod
    def labeled_frames(self, seq: SampleSequence, field: str) -> List[int]:
        """The frame numbers of the sequence whose label field is set (read from the database)."""

    def clear_head_value(self, field: str, sequences: Iterable[SampleSequence]):
        if self.dataset.has_sample_field(field):
            self.dataset.select([s.head_id for s in sequences]).clear_sample_field(field)


class SequenceMeta(Mapping):
    """A sequence as a segmenter sees it: ``"name"``, then the fields of its head sample, each read on access."""

    def __init__(self, layout: Layout, seq: SampleSequence):
        self._layout, self._seq = layout, seq

    def __getitem__(self, key: str):
        if key == "name":
            return self._seq.name
        if not self._layout.dataset.has_sample_field(key):
            raise KeyError(key)
        return self._layout.head_value(key, self._seq)

    def __iter__(self):
        return iter(["name", *self._layout.dataset.get_field_schema()])

    def __len__(self) -> int:
        return 1 + len(self._layout.dataset.get_field_schema())


class VideoLayout(Layout):
    """A video collection: one sequence per video sample, labels in ``frames.<field>``."""

    is_video = True

    def path(self, field: str) -> str:
        return "frames." + field_name(field)

    def _build_sequences(self) -> List[SampleSequence]:
        ids = self.samples.values("id")
        paths = self.samples.values("filepath")
        totals = self.samples.values("metadata.total_frame_count")
        return [SampleSequence(key=sid, name=f"sample {sid} ({os.path.basename(p)})", head_id=sid, sample_ids=[sid],
                               filepaths=[p], num_frames=_frame_count(n), is_video=True)
                for sid, p, n in zip(ids, paths, totals)]

    def frame_size(self, seq: SampleSequence) -> Tuple[int, int]:
        meta = self._head_metadata(seq, "frame_height", "the video")
        if seq.num_frames is None:
            seq.num_frames = _frame_count(getattr(meta, "total_frame_count", None))
        return int(meta.frame_height), int(meta.frame_width)

    def index_table(self, field):
        field = field_name(field)
        table = {}
        for sid, fns, idx, boxes in zip(self.samples.values("id"), self.samples.values("frames.frame_number"),
                                        self.samples.values(f"frames.{field}.detections.index"),
                                        self.samples.values(f"frames.{field}.detections.bounding_box")):
            table[sid] = {fn: v for fn, v in ((int(fn), _present(i, b)) for fn, i, b in
                                              zip(fns or [], idx or [], boxes or [])) if v}
        return table

    def read_labels(self, seq, field, frame_numbers=None):
        view = self.dataset.select(seq.head_id)
        if frame_numbers is not None:
            if not len(frame_numbers):
                return {}
            view = view.match_frames(F("frame_number").is_in([int(f) for f in frame_numbers]), omit_empty=False)
        fns = view.values("frames.frame_number")[0] or []
        labels = view.values(f"frames.{field_name(field)}")[0] or []
        return {int(fn): label for fn, label in zip(fns, labels)}

    def frame_ids(self, seq):
        view = self.dataset.select(seq.head_id)
        return {int(fn): fid for fn, fid in zip(view.values("frames.frame_number")[0] or [],
                                                view.values("frames.id")[0] or [])}

    def write_labels(self, field, labels):
        values = {seq.head_id: frames for seq, frames in labels.values()}
        # labels are built by the library and the field is declared (store.ensure_output_field): no per-value
        # validation
        self.dataset.set_values(self.path(field), values, key_field="id", validate=False)

    def labeled_counts(self, field):
        ids = self.samples.values("id")
        if self.get_field(field) is None:
            return {sid: 0 for sid in ids}
        counts = self.samples.values(F("frames").filter(F(field_name(field)) != None).length())  # noqa: E711
        return {sid: int(c or 0) for sid, c in zip(ids, counts)}

    def clear(self, field, sequences):
        if self.has_field(field):
            self.dataset.select([s.head_id for s in sequences]).clear_frame_field(field_name(field))

    def labeled_frames(self, seq, field):
        if not self.has_field(field):
            return []
        view = self.dataset.select(seq.head_id).match_frames(F(field_name(field)) != None)  # noqa: E711
        return sorted(int(f) for f in (view.values("frames.frame_number") or [[]])[0] or [])


class ImageLayout(Layout):
    """An image collection of sequences: images grouped by ``sequence_field`` and ordered by ``order_field``,
    labels in the sample-level ``<field>`` of each image."""

    def __init__(self, samples, sequence_field: str, order_field: str):
        super().__init__(samples)
        self.sequence_field = sequence_field
        self.order_field = order_field

    @property
    def where(self) -> str:
        return (f"dataset '{self.dataset.name}' (image sequences by '{self.sequence_field}', ordered by "
                f"'{self.order_field}')")

    def path(self, field: str) -> str:
        return field_name(field)

    def _build_sequences(self) -> List[SampleSequence]:
        ids = self.samples.values("id")
        paths = self.samples.values("filepath")
        keys = self.samples.values(self.sequence_field)
        orders = self.samples.values(self.order_field)
        groups: Dict[str, List[Tuple[object, str, str]]] = {}
        for sid, path, key, order in zip(ids, paths, keys, orders):
            if key is None or key == "":
                raise SampdInputError(f"sample {sid} ({os.path.basename(path)}) has no '{self.sequence_field}': "
                                      "every image needs the sequence it belongs to", field="sequence_field")
            if order is None or order == "":
                raise SampdInputError(f"sample {sid} ({os.path.basename(path)}) has no '{self.order_field}': "
                                      "every image needs its position in the sequence", field="order_field")
            groups.setdefault(str(key), []).append((order, sid, path))
        numeric = all(isinstance(o, int) or (isinstance(o, str) and _INT_LIKE.match(o))
                      for g in groups.values() for o, _, _ in g)
        out = []
        for key, items in groups.items():
            items.sort(key=lambda t: int(t[0]) if numeric else str(t[0]))
            orders_ = [int(o) if numeric else str(o) for o, _, _ in items]
            dup = sorted({o for o in orders_ if orders_.count(o) > 1}, key=str)
            if dup:
                raise SampdInputError(
                    f"sequence '{key}': several images have '{self.order_field}' = {dup[:5]}: the order of its "
                    f"frames is ambiguous (choose an order field whose values are unique within a sequence)",
                    field="order_field")
            out.append(SampleSequence(key=key, name=f"sequence '{key}' ({len(items)} images)", head_id=items[0][1],
                                sample_ids=[sid for _, sid, _ in items], filepaths=[p for _, _, p in items],
                                num_frames=len(items), is_video=False))
        return out

    def frame_size(self, seq: SampleSequence) -> Tuple[int, int]:
        meta = self._head_metadata(seq, "height", f"its first image {seq.filepaths[0]}")
        return int(meta.height), int(meta.width)

    def index_table(self, field):
        field = field_name(field)
        frame = {sid: (s.key, s.frame_of(sid)) for s in self.sequences() for sid in s.sample_ids}
        table: Dict[str, Dict[int, list]] = {s.key: {} for s in self.sequences()}
        if self.get_field(field) is None:
            return table
        for sid, idx, boxes in zip(self.samples.values("id"), self.samples.values(f"{field}.detections.index"),
                                   self.samples.values(f"{field}.detections.bounding_box")):
            present = _present(idx, boxes)
            if present:
                key, fn = frame[sid]
                table[key][fn] = present
        return table

    def read_labels(self, seq, field, frame_numbers=None):
        fns = range(1, len(seq.sample_ids) + 1) if frame_numbers is None else [int(f) for f in frame_numbers]
        fns = [f for f in fns if 1 <= f <= len(seq.sample_ids)]
        if not fns:
            return {}
        view = self.dataset.select([seq.sample_ids[f - 1] for f in fns], ordered=True)
        return dict(zip(fns, view.values(field_name(field))))

    def frame_ids(self, seq):
        return {i + 1: sid for i, sid in enumerate(seq.sample_ids)}

    def write_labels(self, field, labels):
        values = {seq.sample_ids[fn - 1]: label for seq, frames in labels.values() for fn, label in frames.items()}
        self.dataset.set_values(self.path(field), values, key_field="id", validate=False)

    def labeled_counts(self, field):
        seqs = self.sequences()
        if self.get_field(field) is None:
            return {s.key: 0 for s in seqs}
        labeled = set(self.samples.exists(field_name(field)).values("id"))
        return {s.key: sum(sid in labeled for sid in s.sample_ids) for s in seqs}

    def clear(self, field, sequences):
        if self.has_field(field):
            self.dataset.select([i for s in sequences for i in s.sample_ids]).clear_sample_field(field_name(field))

    def labeled_frames(self, seq, field):
        if not self.has_field(field):
            return []
        labeled = set(self.dataset.select(seq.sample_ids).exists(field_name(field)).values("id"))
        return [i + 1 for i, sid in enumerate(seq.sample_ids) if sid in labeled]


def _frame_count(total) -> Optional[int]:
    """A video's frame count from its metadata, ``None`` when the container does not know it (missing, zero or
    negative, as a streamed MKV reports: ``duration -1 x fps``): then decoding measures it."""
    return int(total) if total and total > 0 else None


def _present(indexes, boxes) -> List[Optional[int]]:
    """The indexes of one frame's detections that are not absent-object placeholders."""
    return [i for i, b in zip(indexes or [], boxes or []) if not is_absent_box(b)]


def as_collection(samples):
    """A dataset / view as is; a dataset ``fo.Sample`` as a one-sample view."""
    if isinstance(samples, fo.Sample):
        if not samples.in_dataset:
            raise SampdInputError("the sample is not in a dataset: add it to one first")
        return samples.dataset.select(samples.id)
    return samples


def dataset_of(samples) -> fo.Dataset:
    """The dataset holding the samples of a collection: a dataset itself, a view's dataset (of a generated view: its
    patches / frames / clips dataset). Private ``_dataset``: FiftyOne 1.22 names a view's dataset only
    (``view.dataset_name``, the root's)."""
    return samples._dataset


def root_dataset(samples) -> fo.Dataset:
    """The dataset a collection comes from (of a generated view: the source dataset), where evaluations and saved
    views live. Private ``_root_dataset``: FiftyOne 1.22 gives only its name (``view.dataset_name``), and
    ``fo.load_dataset(name)`` would record a load on every call."""
    return samples._root_dataset


def dataset_id(dataset: fo.Dataset) -> ObjectId:
    """The database id of a dataset (execution stores, cache folders). Private ``_doc.id``: FiftyOne 1.22 has no
    public accessor (operators get it as ``ctx.dataset_id``)."""
    return dataset._doc.id


def layout_of(samples, sequence_field: Optional[str] = None, order_field: Optional[str] = None) -> Layout:
    """The :class:`Layout` of a dataset / view / sample.

    Args:
        samples: a video or image ``fo.Dataset`` / view, a dynamic grouped view of images, or a dataset sample
        sequence_field: image collections: the field naming each image's sequence (default: the grouped view's
            group field, else ``sequence_id``)
        order_field: image collections: the field ordering the images of a sequence (default: the grouped view's
            ``order_by``, else ``frame_number``)

    Raises:
        SampdInputError: a media type without sequences, or a missing / unusable sequence or order field (named)
    """
    samples = as_collection(samples)
    group_field, group_order = group_fields(samples)
    if group_field is not None:
        _, _, samples, _ = samples._parse_dynamic_groups()  # the samples before the grouping (no public API)
    if samples.media_type == "video":
        if sequence_field or order_field:
            raise SampdInputError(f"dataset '{root_dataset(samples).name}' holds videos: sequence_field / "
                                  "order_field apply to image sequences only",
                                  field="sequence_field" if sequence_field else "order_field")
        return VideoLayout(samples)
    if samples.media_type != "image":
        raise SampdInputError(f"dataset '{root_dataset(samples).name}' holds {samples.media_type} samples: SAM-PD "
                              "tracks videos or image sequences")
    sequence_field = sequence_field or group_field
    order_field = order_field or group_order
    name = root_dataset(samples).name
    for role, value, default, what in (("sequence_field", sequence_field, DEFAULT_SEQUENCE_FIELD,
                                        "the field whose value names each image's sequence"),
                                       ("order_field", order_field, DEFAULT_ORDER_FIELD,
                                        "the field that orders the images of a sequence")):
        field = value or default
        if samples.get_field(field) is None:
            hint = "" if value else f" (the default; pass {role}=... to use another field)"
            raise SampdInputError(f"image dataset '{name}' has no {role.replace('_', ' ')} '{field}'{hint}: "
                                  f"SAM-PD tracks image sequences and needs {what}", field=role)
        if role == "sequence_field":
            sequence_field = field
        else:
            order_field = field
    if sequence_field == order_field:
        raise SampdInputError(f"the sequence field and the order field are both '{sequence_field}'",
                              field="order_field")
    for role, field in (("sequence_field", sequence_field), ("order_field", order_field)):
        f = samples.get_field(field)
        if not isinstance(f, (fof.StringField, fof.IntField, fof.ObjectIdField, fof.FloatField)):
            raise SampdInputError(f"'{field}' of image dataset '{name}' is a {type(f).__name__}: sequence and order "
                                  "fields must hold strings or numbers", field=role)
    return ImageLayout(samples, sequence_field, order_field)


def group_fields(samples) -> Tuple[Optional[str], Optional[str]]:
    """``(group field, order field)`` of a dynamic grouped view (``group_by("sequence_id",
    order_by="frame_number")``, the App's "group by"), ``(None, None)`` for any other collection;
    :class:`SampdInputError` for a view grouped by an expression.

    FiftyOne 1.22 has no public accessor of a view's stages: this is the one place that reads the private
    ``_is_dynamic_groups`` and ``_stages``."""
    if not getattr(samples, "_is_dynamic_groups", False):
        return None, None
    stage = [s for s in samples._stages if isinstance(s, fo.GroupBy)][-1]
    if not isinstance(stage.field_or_expr, str):
        raise SampdInputError("the view groups by an expression: group it by a field (e.g. "
                              "group_by('sequence_id', order_by='frame_number')) or pass sequence_field=",
                              field="sequence_field")
    return stage.field_or_expr, stage.order_by
