"""What every dataset reader of :mod:`sampd_plugin.datasets` returns: :class:`VideoSequence`, a sequence of frame
files with its objects, annotations and output frames, read straight from the dataset's folder tree.

Conventions: a frame's *stem* is its file name without extension (``"00000"``); its *number* is the 1-based frame
number the tracker sees: ``int(stem) + 1`` when every stem of the sequence is an integer (so DAVIS ``00000`` is frame
1, a YouTube-VOS frame ``00045`` is frame 46 whether or not the frames in between are there), else its position + 1.
Images are ``(H, W, 3)`` uint8 RGB decoded by :func:`sampd_plugin.core.frames.read_image` (OpenCV, as FiftyOne reads
them), so the CLI and the FiftyOne image-sequence path feed the model the same pixels.

Trees written by :mod:`sampd_plugin.synthetic.trees` carry a sidecar JSON (:data:`SIDECAR`) with each sequence's
:class:`~sampd_plugin.synthetic.scene.SyntheticScene` parameters, so the synthetic segmenter can be rebuilt for them
and their exact ground truth is known on every frame.

This module imports no FiftyOne.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from sampd_plugin.core.frames import read_image

#: sidecar file at the root of a tree written by :mod:`sampd_plugin.synthetic.trees`
SIDECAR = "sampd_synthetic.json"


@dataclasses.dataclass(frozen=True)
class SequenceFrame:
    """One frame file: ``stem`` (file name without extension), ``path`` of the image, tracker ``number``."""

    stem: str
    path: str
    number: int


@dataclasses.dataclass
class ObjectInfo:
    """One object of a sequence: its id (the label-map value / ``meta.json`` key / track id), its category if the
    dataset names one, and the stem of the frame of its first annotation (its prompt), if it has one."""

    object_id: int
    category: Optional[str] = None
    first_stem: Optional[str] = None


@dataclasses.dataclass
class VideoSequence:
    """A video as a folder of frames, with what a benchmark needs to track and score it.

    Attributes:
        name: the sequence / video name (its folder name)
        dataset: ``"davis"``, ``"ytvos"`` or ``"uvo"``
        frames: the frames to track through, in order (YouTube-VOS: all frames when ``*_all_frames`` exists)
        output_stems: the frames whose predictions are exported and scored (DAVIS: all; YouTube-VOS: those listed
            in ``meta.json``; UVO: the annotated frames)
        objects: ``{object_id: ObjectInfo}``
        annotations: ``{stem: label-map PNG path}`` of the annotation files that exist
        tracks: UVO ground-truth tracks ``{track_id: [RLE dict or None per output stem]}``
        scene_params: the synthetic scene's parameters (trees of :mod:`sampd_plugin.synthetic.trees`; the scene:
            :func:`sampd_plugin.synthetic.trees.sequence_scene`), else None
        size: ``(H, W)`` of the frames, when the dataset states it (else read from the first frame on demand)
        video_id: the dataset's id of the video when it differs from ``name`` (UVO's integer ids)
    """

    name: str
    dataset: str
    frames: List[SequenceFrame]
    output_stems: List[str]
    objects: Dict[int, ObjectInfo] = dataclasses.field(default_factory=dict)
    annotations: Dict[str, str] = dataclasses.field(default_factory=dict)
    tracks: Dict[int, List[Optional[dict]]] = dataclasses.field(default_factory=dict)
    scene_params: Optional[dict] = None
    size: Optional[Tuple[int, int]] = None
    video_id: Optional[object] = None

    def __post_init__(self):
        self._by_stem = {f.stem: f for f in self.frames}
        missing = [s for s in self.output_stems if s not in self._by_stem]
        if missing:
            raise ValueError(f"sequence {self.name}: output frames {missing[:5]} have no image among its frames")

    # --- frames ---------------------------------------------------------------------------------------------------
    def frame(self, stem: str) -> SequenceFrame:
        try:
            return self._by_stem[stem]
        except KeyError:
            raise KeyError(f"sequence {self.name} has no frame {stem!r}") from None

    def number(self, stem: str) -> int:
        return self.frame(stem).number

    def image_size(self) -> Tuple[int, int]:
        """``(H, W)`` of the frames."""
        if self.size is None:
            self.size = self.frame_size(self.frames[0].stem)
        return self.size

    def frame_size(self, stem: str) -> Tuple[int, int]:
        """``(H, W)`` of one frame's image, from its header (``ValueError`` naming the file when it is not an
        image)."""
        from PIL import Image, UnidentifiedImageError

        path = self.frame(stem).path
        try:
            with Image.open(path) as im:
                return im.height, im.width
        except (OSError, SyntaxError, UnidentifiedImageError) as e:
            raise ValueError(f"{self.where(stem)}: {path} is not a readable image ({type(e).__name__})") from None

    def where(self, stem: Optional[str] = None) -> str:
        """How messages name the sequence (and one of its frames): ``DAVIS sequence 'bear', frame 00003``."""
        kind = {"davis": "DAVIS sequence", "ytvos": "YouTube-VOS video", "uvo": "UVO video"}.get(self.dataset,
                                                                                              "sequence")
        return f"{kind} {self.name!r}" + (f", frame {stem}" if stem is not None else "")

    def iter_images(self, start: int = 1, stop: Optional[int] = None) -> Iterator[Tuple[int, np.ndarray]]:
        """Yields ``(number, (H, W, 3) uint8 RGB)`` for the frames numbered ``start..stop``, lazily."""
        for f in self.frames:
            if f.number >= start and (stop is None or f.number <= stop):
                yield f.number, read_image(f.path)

    # --- annotations ----------------------------------------------------------------------------------------------
    def label_map(self, stem: str) -> np.ndarray:
        """The annotation label map of frame ``stem``, checked against its frame (readable, a label-map mode, the
        frame's size: :func:`~sampd_plugin.datasets.labelmaps.read_label_map`).

        Raises:
            FileNotFoundError: the frame has no annotation file
            ValueError: naming the dataset, the sequence, the frame and the file
        """
        from sampd_plugin.datasets.labelmaps import read_label_map

        path = self.annotations.get(stem)
        if path is None:
            raise FileNotFoundError(f"{self.where(stem)} has no annotation file")
        try:
            return read_label_map(path, self.frame_size(stem))
        except ValueError as e:
            raise ValueError(f"{self.where(stem)}: annotation {e}") from None

    def check_annotations(self):
        """Checks every annotation file against its frame from the headers (a label-map mode, the frame's size),
        without decoding them: what a reader does before anything is built on them (``ValueError`` naming the
        dataset, the sequence, the frame and the file)."""
        from sampd_plugin.datasets.labelmaps import check_label_map

        for stem, path in self.annotations.items():
            try:
                check_label_map(path, self.frame_size(stem))
            except ValueError as e:
                raise ValueError(f"{self.where(stem)}: annotation {e}") from None

    def prompt_masks(self) -> List[Tuple[int, str, np.ndarray]]:
        """``[(object_id, stem, (H, W) bool mask)]``: each object's first annotation, in frame then id order
        (objects without one are left out: they cannot be prompted)."""
        out, cache = [], {}
        order = {f.stem: i for i, f in enumerate(self.frames)}
        objs = sorted((o for o in self.objects.values() if o.first_stem is not None),
                      key=lambda o: (order[o.first_stem], o.object_id))
        for o in objs:
            if o.first_stem not in cache:
                cache[o.first_stem] = self.label_map(o.first_stem)
            mask = cache[o.first_stem] == o.object_id
            if not mask.any():
                raise ValueError(f"sequence {self.name}: object {o.object_id} is not in its first annotation "
                                 f"{self.annotations[o.first_stem]}")
            out.append((o.object_id, o.first_stem, mask))
        return out

    @property
    def has_full_annotations(self) -> bool:
        """Whether every output frame has an annotation file (DAVIS, a YouTube-VOS ``train`` split): then local
        scoring against them is possible. (The YouTube-VOS ``valid`` split only annotates first appearances.)"""
        return bool(self.output_stems) and all(s in self.annotations for s in self.output_stems)


# --- helpers shared by the readers ---------------------------------------------------------------------------------
def stem(path: str) -> str:
    return os.path.splitext(os.path.basename(path))[0]


def make_frames(paths: Sequence[str]) -> List[SequenceFrame]:
    """Frames of image ``paths`` (already in order) with their numbers (module docstring)."""
    stems = [stem(p) for p in paths]
    numeric = all(s.isdigit() for s in stems) and all(int(a) < int(b) for a, b in zip(stems, stems[1:]))
    return [SequenceFrame(s, p, int(s) + 1 if numeric else i + 1) for i, (s, p) in enumerate(zip(stems, paths))]


def sorted_stems(paths: Sequence[str]) -> List[str]:
    """Paths sorted by stem, numerically when every stem is an integer (``2.png`` before ``10.png``)."""
    if all(stem(p).isdigit() for p in paths):
        return sorted(paths, key=lambda p: (int(stem(p)), p))
    return sorted(paths)


def list_files(folder: str, exts: Sequence[str]) -> List[str]:
    """Files of ``folder`` with one of the extensions (case-insensitive), sorted by :func:`sorted_stems`."""
    names = [n for n in os.listdir(folder) if os.path.splitext(n)[1].lower() in exts]
    return sorted_stems([os.path.join(folder, n) for n in names])


def select_names(names: Sequence[str], wanted: Optional[Sequence[str]], source: str) -> List[str]:
    """``names`` restricted to ``wanted`` (in ``names``' order; all if ``wanted`` is ``None``); ``ValueError``
    naming ``source`` for a wanted name that is not there."""
    if wanted is None:
        return list(names)
    unknown = sorted(set(wanted) - set(names))
    if unknown:
        raise ValueError(f"{unknown} are not in {source}")
    return [n for n in names if n in set(wanted)]


def require_dir(path: str, what: str) -> str:
    if not os.path.isdir(path):
        raise FileNotFoundError(f"{what} {path} does not exist")
    return path


def require_file(path: str, what: str) -> str:
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{what} {path} does not exist")
    return path


def read_json(path: str):
    """The contents of a JSON file (``FileNotFoundError`` / ``ValueError`` naming the file, and the line and column
    of a syntax error)."""
    require_file(path, "JSON file")
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e.msg} at line {e.lineno}, column {e.colno})") from None
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: not a UTF-8 text file ({e.reason})") from None


def schema_error(path: str, where: str, message: str) -> ValueError:
    """The ``ValueError`` of a JSON file that does not follow its dataset's schema: names the file and the entry."""
    return ValueError(f"{path}: {where}: {message}")


def read_sidecar(root: str) -> dict:
    """The synthetic sidecar of a tree (``{}`` when there is none)."""
    path = os.path.join(root, SIDECAR)
    if not os.path.isfile(path):
        return {}
    return read_json(path)


def write_sidecar(root: str, data: dict) -> str:
    path = os.path.join(root, SIDECAR)
    os.makedirs(root, exist_ok=True)
    with open(path, "w") as f:
        json.dump(data, f, indent=1, sort_keys=True)
    return path
