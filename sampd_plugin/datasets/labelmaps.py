"""Label maps: indexed (palette) PNG I/O as the DAVIS / YouTube-VOS tools read and write them, and the one overlap
rule that turns per-object masks into a label map.

A label map is an ``(H, W)`` uint8 array whose pixel value is an object id: 0 background, ``1..254`` objects, 255
void (DAVIS). On disk it is a PNG in mode ``P`` (indexed) with the PASCAL VOC colour palette (DAVIS' and
YouTube-VOS' own annotations use it); the official DAVIS toolkit and the YouTube-VOS server read the *indices*
(``np.array(PIL.Image.open(path))``), never the colours.

This module imports no FiftyOne (numpy + Pillow).
"""

from __future__ import annotations

import os
from typing import Dict, Mapping, Optional

import numpy as np

#: pixel value of void pixels in DAVIS annotations (ignored in unsupervised evaluation, background in the
#: semi-supervised toolkit, which passes no void mask)
VOID = 255
#: the largest object id a label map can hold
MAX_OBJECT_ID = 254


def pascal_palette(n: int = 256) -> np.ndarray:
    """``(n, 3)`` uint8 PASCAL VOC colour map (bit-interleaved id -> RGB), the palette of DAVIS annotations:
    id 1 is ``(128, 0, 0)``, id 2 ``(0, 128, 0)``, ..."""
    pal = np.zeros((n, 3), dtype=np.uint8)
    for i in range(n):
        c, rgb = i, [0, 0, 0]
        for j in range(8):
            for k in range(3):
                rgb[k] |= ((c >> k) & 1) << (7 - j)
            c >>= 3
        pal[i] = rgb
    return pal


DAVIS_PALETTE = pascal_palette()


#: PNG modes whose pixel values are object ids (indexed, 8-bit grey, 1-bit)
LABEL_MAP_MODES = ("P", "L", "1")


def check_label_map(path: str, shape=None) -> None:
    """Checks a label map file from its header, without decoding it: it exists, is an image of a label-map mode
    (:data:`LABEL_MAP_MODES`) and, if ``shape`` ``(H, W)`` is given, has that size (an annotation of another size
    than its frame would be stretched onto it).

    Raises:
        FileNotFoundError: naming ``path``
        ValueError: naming ``path``: not an image, an RGB / RGBA / 16-bit PNG, another size than ``shape``
    """
    with _open_label_map(path) as im:
        _check_header(path, im, shape)


def read_label_map(path: str, shape=None) -> np.ndarray:
    """The ``(H, W)`` uint8 label map of an indexed (mode ``P``) or grayscale (``L``) PNG, read as the DAVIS
    toolkit reads it (the indices, not the colours), after the checks of :func:`check_label_map`.

    Raises:
        FileNotFoundError: naming ``path``
        ValueError: naming ``path``: an RGB / RGBA / 16-bit PNG (its colours are not object ids), a truncated or
            corrupt file, another size than ``shape``
    """
    with _open_label_map(path) as im:
        _check_header(path, im, shape)
        try:
            return np.array(im, dtype=np.uint8)
        except (OSError, SyntaxError, ValueError) as e:  # PIL: truncated / corrupt data
            raise ValueError(f"{path}: not a readable image ({type(e).__name__}: {e})") from None


def _open_label_map(path: str):
    from PIL import Image, UnidentifiedImageError

    if not os.path.isfile(path):
        raise FileNotFoundError(f"label map {path} does not exist")
    try:
        return Image.open(path)
    except (OSError, SyntaxError, UnidentifiedImageError) as e:
        raise ValueError(f"{path}: not a readable image ({type(e).__name__}: {e})") from None


def _check_header(path: str, im, shape):
    if im.mode not in LABEL_MAP_MODES:
        raise ValueError(
            f"{path}: mode {im.mode!r} PNG; a label map must be indexed (mode 'P', pixel = object id) or "
            "8-bit grayscale"
        )
    if shape is not None and (im.height, im.width) != tuple(shape):
        raise ValueError(f"{path} is {im.width}x{im.height} but its frame is {shape[1]}x{shape[0]}")


def read_palette(path: str) -> Optional[np.ndarray]:
    """``(256, 3)`` uint8 palette of an indexed PNG (``None`` for another mode), to write predictions with the
    colours of the dataset's own annotations."""
    from PIL import Image

    with Image.open(path) as im:
        if im.mode != "P":
            return None
        pal = np.zeros(768, dtype=np.uint8)
        raw = np.frombuffer(bytes(im.getpalette() or []), dtype=np.uint8)[:768]
        pal[: raw.size] = raw
        return pal.reshape(256, 3)


def write_label_map(path: str, label_map: np.ndarray, palette: Optional[np.ndarray] = None) -> str:
    """Writes an ``(H, W)`` label map (values 0..255) as an indexed PNG with ``palette`` (default: DAVIS'),
    creating parent folders; returns ``path``. The file is written under a temporary name and renamed, so a
    reader never sees half a PNG."""
    from PIL import Image

    lm = np.asarray(label_map)
    if lm.ndim != 2:
        raise ValueError(f"a label map is (H, W), got shape {lm.shape} for {path}")
    if lm.size and (lm.min() < 0 or lm.max() > 255):
        raise ValueError(f"label map values must be in 0..255, got {lm.min()}..{lm.max()} for {path}")
    pal = DAVIS_PALETTE if palette is None else np.asarray(palette, dtype=np.uint8).reshape(256, 3)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    im = Image.fromarray(lm.astype(np.uint8), mode="P")
    im.putpalette(pal.reshape(-1).tolist())
    tmp = f"{path}.{os.getpid()}.part"
    im.save(tmp, format="PNG")
    os.replace(tmp, path)
    return path


def label_map_to_masks(label_map: np.ndarray, void: Optional[int] = VOID) -> Dict[int, np.ndarray]:
    """``{object_id: (H, W) bool}`` of the ids present in a label map (0 and ``void`` excluded)."""
    lm = np.asarray(label_map)
    return {int(v): lm == v for v in np.unique(lm) if v != 0 and (void is None or v != void)}


def resolve_overlaps(masks: Mapping[int, np.ndarray], scores: Optional[Mapping[int, float]] = None
                     ) -> Dict[int, np.ndarray]:
    """THE overlap rule of the library (a label map holds one object per pixel; DAVIS / YouTube-VOS protocol):
    a pixel claimed by several objects goes to the object with the **highest score**; between equal scores (or
    when ``scores`` is ``None``, or an object has no score) the **larger object id** wins. An object without a
    score ranks below every object with one. Pixels claimed by one object stay that object's.

    Used by the DAVIS / YouTube-VOS exporters and by ``evaluate_jf(..., protocol="davis")``, so that scoring a
    FiftyOne field and scoring its exported PNGs give the same numbers.

    Args:
        masks: ``{object_id: (H, W) bool mask}`` (all the same shape)
        scores: optional ``{object_id: confidence}`` (e.g. SAM's predicted IoU of that object on that frame)

    Returns:
        ``{object_id: (H, W) bool}``: disjoint masks, each a subset of the input mask, same keys
    """
    ids = list(masks)
    if not ids:
        return {}
    shapes = {np.shape(masks[i]) for i in ids}
    if len(shapes) != 1:
        raise ValueError(f"masks of one frame must have one shape, got {sorted(shapes)}")
    scores = scores or {}

    def rank(i):
        s = scores.get(i)
        has = s is not None and not np.isnan(s)
        return (has, float(s) if has else 0.0, i)

    order = sorted(ids, key=rank)  # lowest priority first: later ones paint over earlier ones
    owner = np.zeros(shapes.pop(), dtype=np.int32)  # position in `order` + 1
    for pos, i in enumerate(order, start=1):
        owner[np.asarray(masks[i], dtype=bool)] = pos
    return {i: owner == pos for pos, i in enumerate(order, start=1)}


def masks_to_label_map(masks: Mapping[int, np.ndarray], shape, scores: Optional[Mapping[int, float]] = None
                       ) -> np.ndarray:
    """``(H, W)`` uint8 label map of ``{object_id (1..254): mask}``, overlaps resolved by
    :func:`resolve_overlaps`."""
    out = np.zeros(tuple(shape), dtype=np.uint8)
    for i, m in resolve_overlaps(masks, scores).items():
        if not 1 <= int(i) <= MAX_OBJECT_ID:
            raise ValueError(f"object id {i} cannot be stored in a label map (ids 1..{MAX_OBJECT_ID})")
        if np.shape(m) != tuple(shape):
            raise ValueError(f"object {i}: mask shape {np.shape(m)} but the frame is {tuple(shape)}")
        out[m] = int(i)
    return out
