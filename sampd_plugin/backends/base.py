"""The one small interface every promptable segmenter implements.

A backend encodes a frame once (:meth:`PromptableSegmenter.encode`) and then decodes any number of prompts against
that encoding (:meth:`PromptableSegmenter.decode`), exactly like segment-anything's ``SamPredictor``: the image
encoder is the expensive part, the prompt encoder and mask decoder are light (paper, Sec. III-A).

Coordinate conventions (fixed for the whole library):

- prompts (boxes ``xyxy``, points ``xy``) are given in **original image pixels**, floats; boxes with exclusive
  right/bottom ends (``[x0, x1) x [y0, y1)``, :func:`sampd_plugin.core.prompts.mask_to_box`), points as pixel indices;
  a SAM backend hands boxes to SAM in SAM's own convention (:func:`sampd_plugin.core.prompts.sam_box`);
- the backend maps them into its *input frame*: the image resized so that it occupies the top-left
  ``input_size = (h_in, w_in)`` region of a padded square (SAM: longest side 1024);
- the image embedding is a ``(C, h_e, w_e)`` grid over the padded input frame, one cell per ``embed_stride``
  input pixels (SAM: 64x64 cells of 16 px);
- low-resolution mask logits are a ``(h_m, w_m)`` grid over the same padded input frame, one cell per
  ``mask_stride`` input pixels (SAM: 256x256 cells of 4 px).

This module imports no FiftyOne.
"""

from __future__ import annotations

import abc
import dataclasses
import functools
from typing import Any, Mapping, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F


def resolve_device(device=None) -> torch.device:
    """The one device resolver: ``None`` / ``""`` / ``"auto"`` -> ``cuda`` when available, else ``cpu``; any other
    value must name a device this machine has (``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``).

    Raises:
        ValueError: an unknown device string, or a CUDA / MPS device this machine does not have (the message says
            which devices exist)
    """
    if device is None or (isinstance(device, str) and device.strip().lower() in ("", "auto")):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"unknown device {device!r}: use 'auto', 'cpu', 'cuda' or 'cuda:N'") from None
    if dev.type == "cuda":
        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if n == 0:
            raise ValueError(f"device {device!r} was requested but this machine has no usable CUDA GPU: use 'cpu' "
                             "or 'auto'")
        if dev.index is not None and dev.index >= n:
            raise ValueError(f"device {device!r} does not exist: this machine has {n} CUDA GPU(s) (cuda:0..{n - 1})")
    elif dev.type == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise ValueError(f"device {device!r} was requested but MPS is not available on this machine")
    elif dev.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"unsupported device {device!r}: use 'auto', 'cpu', 'cuda' or 'cuda:N'")
    return dev


def check_rgb(image) -> np.ndarray:
    """``image`` as an array after checking that it is an ``(H, W, 3)`` uint8 RGB image (``ValueError`` if not)."""
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 RGB image, got shape {image.shape} and dtype {image.dtype}")
    return image


@dataclasses.dataclass
class ImageState:
    """A frame encoded once by a backend.

    Attributes:
        embedding: ``(C, h_e, w_e)`` float tensor on the backend's device, over the padded input frame
        image_size: ``(H, W)`` of the original image, pixels
        input_size: ``(h_in, w_in)`` of the resized image inside the padded input frame
        embed_stride: input-frame pixels per embedding cell
        mask_stride: input-frame pixels per low-resolution mask cell
        frame_number: 1-based frame number, when the caller knows it (the synthetic backend needs it)
        extra: backend-private data (e.g. SAM's features are ``embedding[None]``)
    """

    embedding: torch.Tensor
    image_size: tuple
    input_size: tuple
    embed_stride: int
    mask_stride: int
    frame_number: Optional[int] = None
    extra: dict = dataclasses.field(default_factory=dict)

    @property
    def scale_xy(self) -> torch.Tensor:
        """``(2,)`` factors mapping original-image pixels ``(x, y)`` to input-frame pixels."""
        (h, w), (h_in, w_in) = self.image_size, self.input_size
        return torch.tensor([w_in / w, h_in / h], dtype=torch.float32)

    def boxes_to_grid(self, boxes: torch.Tensor, stride: int) -> torch.Tensor:
        """Maps ``(..., 4)`` ``xyxy`` image-pixel boxes to continuous cell coordinates of a grid of ``stride``."""
        s = self.scale_xy.to(boxes.device).repeat(2)
        return boxes.float() * s / stride

    @property
    def embed_valid_size(self) -> tuple:
        """``(h, w)`` embedding cells covered by the image (the rest of the grid is padding)."""
        return tuple(-(-n // self.embed_stride) for n in self.input_size)

    def logits_to_embedding_grid(self, low_res_logits: torch.Tensor) -> torch.Tensor:
        """``(B, h_m, w_m)`` mask logits -> ``(B, h_e, w_e)`` masks on the embedding grid, as the exact
        foreground fraction of each cell (area-weighted downsampling of the binary mask ``logits > 0``).

        The ``k x k`` foreground pixels of a cell are counted in bytes (``k <= 15``, else int32), row by row, then
        column by column (``k`` = 2 or 4, SAM's: the cell's ``k`` adjacent bytes added inside the int16 / int32 word
        that holds them), and divided by ``k * k``: the values of ``avg_pool2d`` of the float mask, exactly (small
        integers over ``k * k``), without a float copy of all candidates' masks (many objects: ``N x 18``
        candidates).
        """
        return _cell_fractions(foreground(low_res_logits), self.embed_stride // self.mask_stride)

    def logits_to_embedding_windows(self, low_res_logits) -> list:
        """``(N, G, h_m, w_m)`` mask logits of ``N`` objects' ``G`` candidates (or a sequence of ``(N, G_j, h_m,
        w_m)`` parts of them along ``G``, not concatenated) -> per object, its candidates'
        :meth:`logits_to_embedding_grid` on the union box of their foreground cells: ``(y0, x0, (G, uh, uw))``
        (top-left cell, fractions), or ``None`` when every candidate is empty.

        The same values as cropping the whole grids, for the cost of thresholding the logits once and counting
        cells only inside each object's box (many small objects: each candidate's mask is a few cells of the grid).
        """
        k = self.embed_stride // self.mask_stride
        parts = [foreground(p) for p in logit_parts(low_res_logits)]
        h, w = (n // k * k for n in parts[0].shape[-2:])  # (avg_pool2d's floor)
        # (N, h, w) any candidate (in bytes: torch's bool reductions are slow)
        union = functools.reduce(torch.maximum, [fg[..., :h, :w].view(torch.uint8).amax(1) for fg in parts])
        rows, cols = union.amax(2), union.amax(1)  # (N, h), (N, w)
        first = lambda a: a.argmax(-1)  # noqa: E731
        last = lambda a: a.shape[-1] - first(a.flip(-1))  # noqa: E731
        boxes = torch.stack([first(rows), first(cols), last(rows), last(cols), rows.amax(-1)], 1).tolist()
        out = []
        for i, (y0, x0, y1, x1, found) in enumerate(boxes):
            if not found:
                out.append(None)
                continue
            y0, x0, y1, x1 = y0 // k, x0 // k, -(-y1 // k), -(-x1 // k)
            crops = [fg[i, :, y0 * k:y1 * k, x0 * k:x1 * k] for fg in parts]
            out.append((y0, x0, _cell_fractions(crops[0] if len(crops) == 1 else torch.cat(crops), k)))
        return out

    def mask_to_grid(self, masks: torch.Tensor, stride: int) -> torch.Tensor:
        """``(B, H, W)`` full-resolution bool masks -> ``(B, h, w)`` foreground fractions on the grid of
        ``stride`` input-frame pixels over the padded input frame (embedding grid: ``stride = embed_stride``).

        Exact area weighting, aligned with the backend's resize-and-pad: image pixel ``(y, x)`` covers input-frame
        pixels ``[y * s_y, (y + 1) * s_y) x [x * s_x, (x + 1) * s_x)`` (``s = input_size / image_size`` per axis,
        the mapping of :attr:`scale_xy` and of SAM's prompt coordinates) and each cell's value is the fraction of
        its ``stride x stride`` area that is foreground. Padding is background, so a cell straddling the edge of the
        resized image holds the fraction of it covered by the mask, also when ``input_size`` is not a multiple of
        ``stride`` (SAM: a 500x700 frame resizes to 731x1024 px, 45 11/16 cells high).
        """
        side_h = self.embedding.shape[-2] * self.embed_stride // stride
        side_w = self.embedding.shape[-1] * self.embed_stride // stride
        (h, w), (h_in, w_in) = self.image_size, self.input_size
        wy = _area_weights(side_h, stride, h, h_in / h, masks.device)  # (side_h, H)
        wx = _area_weights(side_w, stride, w, w_in / w, masks.device)  # (side_w, W)
        return wy @ masks.float() @ wx.T


def _cell_fractions(fg: torch.Tensor, k: int) -> torch.Tensor:
    """``(B, h, w)`` bool masks -> ``(B, h // k, w // k)`` the foreground fraction of each ``k x k`` cell
    (:meth:`ImageState.logits_to_embedding_grid`)."""
    if k == 1:
        return fg.float()
    if k in (2, 4) and fg.numel() <= 1 << 14:  # a few cells (an object's window): one pooling of the float masks is
        return F.avg_pool2d(fg.float(), k)  # faster, and exact (counts over a power of two)
    b, h, w = fg.shape
    h, w = h // k, w // k  # (avg_pool2d's floor)
    rows = fg[:, :h * k, :w * k].view(torch.uint8).reshape(b, h, k, w * k)
    count = rows[:, :, 0].to(torch.uint8 if k * k < 256 else torch.int32, copy=True)
    for i in range(1, k):
        count += rows[:, :, i]
    if k in (2, 4):  # (each byte <= k: no carry between bytes)
        word = count.view(torch.int16 if k == 2 else torch.int32)
        if k == 4:
            word = word + (word >> 16)
        return ((word + (word >> 8)) & 0xFF).float() / (k * k)
    cols = count.view(b, h, w, k)
    count = cols[..., 0].clone()
    for i in range(1, k):
        count += cols[..., i]
    return count.float() / (k * k)


def logit_parts(logits) -> list:
    """Candidates' ``(N, G, h_m, w_m)`` logits, or a sequence of parts of them along ``G`` (not concatenated) ->
    the parts, as a list."""
    return [logits] if torch.is_tensor(logits) else list(logits)


def foreground(logits: torch.Tensor) -> torch.Tensor:
    """Mask logits -> bool masks: ``logits > 0`` (any shape), on the device of ``logits``.

    On the CPU the comparison runs in numpy, into a tensor from torch's allocator: torch's CPU kernel for it is
    several times slower on one thread (~2 vs ~0.4 ms for 190 candidates' 128 x 128 logits), and the tracker
    thresholds every candidate of every object; a result in numpy's own memory would cost more in page faults than
    the comparison saves (torch backs large buffers with huge pages)."""
    if logits.device.type == "cpu" and logits.dtype == torch.float32:
        out = torch.empty(logits.shape, dtype=torch.bool)  # (torch's allocator: large buffers in huge pages)
        np.greater(logits.detach().numpy(), 0, out=out.numpy())
        return out
    return logits > 0


def _area_weights(cells: int, stride: int, pixels: int, scale: float, device) -> torch.Tensor:
    """``(cells, pixels)`` 1-D overlap matrix: entry ``(c, p)`` is the length of ``[c * stride, (c + 1) * stride)``
    ∩ ``[p * scale, (p + 1) * scale)`` divided by ``stride`` (cells past the resized image get zeros)."""
    c = torch.arange(cells, dtype=torch.float64, device=device)[:, None] * stride
    p = torch.arange(pixels, dtype=torch.float64, device=device)[None] * scale
    overlap = (torch.minimum(c + stride, p + scale) - torch.maximum(c, p)).clamp(min=0)
    return (overlap / stride).float()


@dataclasses.dataclass(eq=False)
class PreparedImage:
    """A frame after a backend's CPU-side preprocessing (:meth:`PromptableSegmenter.prepare`), ready for
    :meth:`PromptableSegmenter.encode`.

    Attributes:
        data: what the backend's ``_prepare`` returned (default: the ``(H, W, 3)`` uint8 RGB image itself; SAM: the
            normalised, padded ``(1, 3, S, S)`` input tensor with its sizes)
        image_size: ``(H, W)`` of the original image, pixels
        backend: the backend that prepared it (only that backend encodes it)
    """

    data: object
    image_size: tuple
    backend: "PromptableSegmenter" = dataclasses.field(repr=False)


@dataclasses.dataclass
class Decoded:
    """Result of one decoder call.

    Attributes:
        low_res_logits: ``(B, K, h_m, w_m)`` mask logits over the padded input frame (K = 1, or 3 with multimask)
        iou: ``(B, K)`` the model's predicted IoU of each mask
    """

    low_res_logits: torch.Tensor
    iou: torch.Tensor


class PromptableSegmenter(abc.ABC):
    """A promptable image segmenter (SAM-like).

    Subclasses implement :meth:`_encode`, :meth:`_decode` and optionally :meth:`_prepare` (preprocessing that may
    run ahead of the model on another thread) and :meth:`generate_masks`. The public :meth:`decode` validates prompts
    and counts calls and prompts (``decode_calls``, ``decoded_prompts``), which the tracker and the speed benchmark
    report.
    """

    #: torch device of the embedding and decoder
    device: torch.device = torch.device("cpu")

    #: prompts per decoder call that measure fastest on this backend/device; ``None`` means unlimited (one call
    #: for all prompts of a stage, the right choice on CUDA). The tracker uses it when its config leaves the
    #: batch size on "auto".
    preferred_batch_size: Optional[int] = None

    def __init__(self):
        self.decode_calls = 0
        self.decoded_prompts = 0
        self.encode_calls = 0

    def reset_counters(self):
        self.decode_calls = self.decoded_prompts = self.encode_calls = 0

    def for_sequence(self, meta: Mapping[str, Any]) -> "PromptableSegmenter":
        """The segmenter for one sequence; the SDK and the benchmark CLI call it before tracking each sequence.

        ``meta``: what is known of the sequence: ``"name"`` (how messages name it) and its sequence-level values by
        name (FiftyOne: the fields of its head sample, read on access; an official tree: what its reader found, e.g.
        the scene of a generated tree). The default returns ``self``: a model segments every sequence alike. A
        segmenter that needs per-sequence context (the synthetic segmenter: the scene a generated sequence was
        rendered from) returns one made for the sequence, or raises ``ValueError`` saying why it cannot segment it.
        """
        return self

    # --- encoding -------------------------------------------------------------------------------------------
    def prepare(self, image: np.ndarray) -> "PreparedImage":
        """The CPU-side preprocessing of one ``(H, W, 3)`` uint8 RGB image (SAM: resize, to a tensor, normalise,
        pad), split from :meth:`encode` so that it can run ahead of the model on another thread
        (:func:`sampd_plugin.core.frames.prefetch_frames`). Pure: no counters, no state; safe to call from any thread.

        Raises:
            ValueError: ``image`` is not an ``(H, W, 3)`` uint8 RGB image
        """
        image = check_rgb(image)
        return PreparedImage(data=self._prepare(image), image_size=(int(image.shape[0]), int(image.shape[1])),
                             backend=self)

    def _prepare(self, image: np.ndarray):
        """Subclass hook of :meth:`prepare`: ``image`` (checked ``(H, W, 3)`` uint8 RGB) -> what :meth:`_encode`
        receives. The default returns the image itself, so a backend that only implements :meth:`_encode` gets the
        image there as before."""
        return image

    def encode(self, image, frame_number: Optional[int] = None) -> ImageState:
        """Encodes one frame (the expensive step, once per frame): an ``(H, W, 3)`` uint8 RGB image, or the
        :class:`PreparedImage` that this backend's :meth:`prepare` made of it (the same result, bit for bit).

        Raises:
            ValueError: ``image`` is not an RGB image, or was prepared by another backend
        """
        if isinstance(image, PreparedImage):
            if image.backend is not self:
                raise ValueError(f"this frame was prepared by {image.backend!r}, not by {self!r}: pass the image, "
                                 "or prepare it with this backend")
            prepared = image
        else:
            prepared = self.prepare(image)
        self.encode_calls += 1
        return self._encode(prepared.data, frame_number)

    @abc.abstractmethod
    def _encode(self, image, frame_number: Optional[int]) -> ImageState:
        """``image``: what :meth:`_prepare` returned (by default the checked ``(H, W, 3)`` uint8 RGB image)."""

    # --- decoding -------------------------------------------------------------------------------------------
    def decode(
        self,
        state: ImageState,
        boxes: Optional[torch.Tensor] = None,
        points: Optional[torch.Tensor] = None,
        point_labels: Optional[torch.Tensor] = None,
        multimask: bool = False,
    ) -> Decoded:
        """Decodes a batch of B prompts against one encoded frame.

        Args:
            state: the frame's :class:`ImageState`
            boxes: optional ``(B, 4)`` float ``xyxy`` boxes, image pixels, right/bottom exclusive
            points: optional ``(B, P, 2)`` float ``xy`` points, image pixels
            point_labels: ``(B, P)`` int labels: 1 positive, 0 negative, -1 SAM's "not a point" token (it is *not*
                a no-op for SAM: it changes the masks; the tracker never sends it, see
                :func:`sampd_plugin.core.prompts.group_by_point_count`)
            multimask: return 3 masks per prompt (SAM's ambiguity-aware output) instead of 1

        Returns:
            a :class:`Decoded` with ``K = 3`` if ``multimask`` else ``K = 1``
        """
        if boxes is None and points is None:
            raise ValueError("decode needs boxes and/or points")
        if points is not None:
            if point_labels is None or point_labels.shape != points.shape[:2] or points.shape[-1] != 2:
                raise ValueError(
                    f"points must be (B, P, 2) with labels (B, P); got {tuple(points.shape)} and "
                    f"{None if point_labels is None else tuple(point_labels.shape)}"
                )
        if boxes is not None and boxes.shape[-1] != 4:
            raise ValueError(f"boxes must be (B, 4) xyxy, got {tuple(boxes.shape)}")
        if boxes is not None and points is not None and boxes.shape[0] != points.shape[0]:
            raise ValueError(f"{boxes.shape[0]} boxes but {points.shape[0]} point sets")
        batch = boxes.shape[0] if boxes is not None else points.shape[0]
        self.decode_calls += 1
        self.decoded_prompts += batch
        return self._decode(state, boxes, points, point_labels, multimask)

    @abc.abstractmethod
    def _decode(
        self,
        state: ImageState,
        boxes: Optional[torch.Tensor],
        points: Optional[torch.Tensor],
        point_labels: Optional[torch.Tensor],
        multimask: bool,
    ) -> Decoded:
        ...

    # --- post-processing ------------------------------------------------------------------------------------
    def upsample(self, state: ImageState, low_res_logits: torch.Tensor) -> torch.Tensor:
        """``(B, h_m, w_m)`` low-resolution logits -> ``(B, H, W)`` boolean masks at the original resolution.

        Same steps as segment-anything's ``Sam.postprocess_masks``: upscale to the padded input frame, crop the
        padding, resize to the original image, threshold at 0.
        """
        if low_res_logits.shape[0] == 0:
            return torch.zeros((0, *state.image_size), dtype=torch.bool, device=low_res_logits.device)
        h_m, w_m = low_res_logits.shape[-2:]
        x = low_res_logits[:, None].float()
        x = F.interpolate(
            x, (h_m * state.mask_stride, w_m * state.mask_stride), mode="bilinear", align_corners=False
        )
        x = x[..., : state.input_size[0], : state.input_size[1]]
        x = F.interpolate(x, tuple(state.image_size), mode="bilinear", align_corners=False)
        return foreground(x[:, 0])

    # --- automatic mode -------------------------------------------------------------------------------------
    def generate_masks(
        self, image: np.ndarray, max_masks: int = 100, frame_number: Optional[int] = None
    ) -> Sequence[np.ndarray]:
        """Automatic mode (paper Sec. IV-B, VIS): up to ``max_masks`` ``(H, W)`` boolean masks of one image,
        best first, without prompts."""
        raise NotImplementedError(f"{type(self).__name__} has no automatic mask generator")


def masks_to_logits(state: ImageState, masks: torch.Tensor, scale: float = 8.0) -> torch.Tensor:
    """For backends whose model returns full-resolution masks instead of low-resolution logits (SAM-HQ style
    post-processed outputs, a research model): ``(B, H, W)`` bool masks at the original image size -> ``(B, h_m,
    w_m)`` logits on the low-resolution mask grid of ``state`` (``mask_stride`` input-frame pixels per cell, over the
    padded input frame), what :meth:`PromptableSegmenter._decode` must return in :class:`Decoded`.

    The masks are resized to the input frame (``state.input_size``, area), padded to the grid, and each cell's
    foreground fraction ``f`` becomes the logit ``2 * scale * (f - 0.5)``: positive where the mask covers more than
    half of the cell, negative in the padding, so :meth:`PromptableSegmenter.upsample` gives the mask back up to
    about half a cell along its boundary.
    """
    if masks.ndim != 3 or tuple(masks.shape[-2:]) != tuple(state.image_size):
        raise ValueError(f"masks must be (B, H, W) at the image size {tuple(state.image_size)}, got "
                         f"{tuple(masks.shape)}")
    h_in, w_in = state.input_size
    x = masks.float()[:, None]
    if (h_in, w_in) != tuple(state.image_size):
        x = F.interpolate(x, size=(h_in, w_in), mode="area")
    side_h = state.embedding.shape[-2] * state.embed_stride
    side_w = state.embedding.shape[-1] * state.embed_stride
    x = F.pad(x, (0, side_w - w_in, 0, side_h - h_in))
    frac = F.avg_pool2d(x, state.mask_stride)[:, 0]
    return 2 * scale * (frac - 0.5)
