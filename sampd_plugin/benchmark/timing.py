"""Timing for the paper's Table IV: image-encoder time vs SAM-PD time (everything else the tracker does per frame:
prompt construction, decoding, Eq. 2 selection, refinement, up-sampling).

:class:`TimedBackend` wraps any :class:`~sampd_plugin.backends.base.PromptableSegmenter` and accumulates the
wall-clock time of its encoder (CUDA is synchronised around it, so the split is exact on a GPU too). The frame's
preprocessing (:meth:`~sampd_plugin.backends.base.PromptableSegmenter.prepare`: SAM's resize and normalisation) runs
ahead on the tracker's prefetch thread and is in neither figure (with ``SAMPD_PREFETCH=0`` it is in SAM-PD's).

This module imports no FiftyOne.
"""

from __future__ import annotations

import time
from typing import Optional

import numpy as np
import torch

from sampd_plugin.backends.base import Decoded, ImageState, PromptableSegmenter
from sampd_plugin.core.config import SamPDConfig

#: Table IV rows: (grid side N_box = side², N_scale); scales 1.0 then 1.05 (paper Sec. IV-A)
TABLE_IV_GRIDS = ((1, 1), (3, 1), (3, 2), (5, 2))
TABLE_IV_SCALES = (1.0, 1.05)


def synchronize(device) -> None:
    """Waits for queued CUDA work on ``device`` (no-op elsewhere)."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def grid_config(base: SamPDConfig, side: int, n_scales: int) -> SamPDConfig:
    """``base`` with a ``side x side`` one-to-many grid and the first ``n_scales`` of (1.0, 1.05) (Table IV)."""
    return base.replace(grid_size=int(side), scales=TABLE_IV_SCALES[:n_scales],
                        selection=base.selection if side * n_scales > 1 or base.selection != "none" else "none")


def grid_label(side: int, n_scales: int) -> str:
    return f"{side}x{side}x{n_scales}"


class TimedBackend(PromptableSegmenter):
    """A backend that times another one's encoder (``encode_seconds``, ``encode_count``) and otherwise delegates."""

    def __init__(self, inner: PromptableSegmenter):
        super().__init__()
        self.inner = inner
        self.device = inner.device
        self.preferred_batch_size = inner.preferred_batch_size
        self.encode_seconds = 0.0
        self.encode_count = 0

    def __repr__(self):
        return f"TimedBackend({self.inner!r})"

    def _prepare(self, image: np.ndarray):
        return self.inner._prepare(image)

    def _encode(self, image, frame_number: Optional[int]) -> ImageState:
        synchronize(self.device)
        t0 = time.perf_counter()
        state = self.inner._encode(image, frame_number)
        synchronize(self.device)
        self.encode_seconds += time.perf_counter() - t0
        self.encode_count += 1
        return state

    def _decode(self, state, boxes, points, point_labels, multimask) -> Decoded:
        return self.inner._decode(state, boxes, points, point_labels, multimask)

    def upsample(self, state: ImageState, low_res_logits: torch.Tensor) -> torch.Tensor:
        return self.inner.upsample(state, low_res_logits)

    def generate_masks(self, image, max_masks: int = 100, frame_number: Optional[int] = None):
        return self.inner.generate_masks(image, max_masks=max_masks, frame_number=frame_number)
