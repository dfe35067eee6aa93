"""The supplementary oracle experiment (paper supplement, Fig. 7 and Table VI): how well SAM denoises a perturbed
ground-truth box, with no tracking involved.

On every annotated frame, each object's ground-truth box (:func:`sampd_plugin.core.prompts.mask_to_box` of its mask) is
translated by ``(tx * w, ty * h)`` and scaled by ``s`` about its centre, for every translation rate ``tx, ty`` in
-0.18..0.18 (step 0.06) and scaling rate ``s`` in {0.92, 1.00, 1.08} (Table VI, "Oracle"), and used as the prompt:

- *vanilla*: that single box (one mask, no multimask);
- *multi-prompt*: the one-to-many grid around that box with Table VI's own settings (translations -0.1 / 0 / 0.1 of
  the box side, scales 0.95 / 1.00 / 1.05: 27 boxes, :func:`sampd_plugin.core.prompts.box_prompt_grid`) and the Eq. 2
  many-to-one selection against the object's template (its ground-truth mask on its first annotated frame).

J and F of the predicted mask against the ground truth; per cell, the DAVIS aggregation (per-object means over its
frames, then the mean over objects); J&F = (J + F) / 2.

This module imports no FiftyOne.
"""

from __future__ import annotations

import time
from typing import Callable, Dict, Iterable, List, Optional, Sequence

import numpy as np
import torch

from sampd_plugin.benchmark.vos import ground_truth
from sampd_plugin.core import metrics
from sampd_plugin.core.config import SamPDConfig
from sampd_plugin.core.frames import read_image
from sampd_plugin.core.prompts import box_prompt_grid, clip_boxes, mask_to_box
from sampd_plugin.core.selection import masked_template, select_candidates, similarity_features, template_similarity
from sampd_plugin.datasets.base import VideoSequence
from sampd_plugin.datasets.labelmaps import VOID

#: Table VI, oracle perturbations
TRANSLATIONS = (-0.18, -0.12, -0.06, 0.0, 0.06, 0.12, 0.18)
SCALES = (0.92, 1.00, 1.08)
#: Table VI, multi-prompt settings (grid 3 x 3, step 0.1, three scales)
MP_GRID, MP_STEP, MP_SCALES = 3, 0.10, (0.95, 1.00, 1.05)


def perturb_boxes(box: np.ndarray, translations: Sequence[float], scales: Sequence[float]) -> np.ndarray:
    """``(S, T, T, 4)`` ``xyxy`` boxes: ``box`` translated by ``(tx w, ty h)`` and scaled by ``s`` about its centre,
    indexed ``[scale, ty, tx]`` (Fig. 6's translation and scaling rates)."""
    x0, y0, x1, y1 = (float(v) for v in box)
    w, h = x1 - x0, y1 - y0
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    out = np.zeros((len(scales), len(translations), len(translations), 4), dtype=np.float32)
    for si, s in enumerate(scales):
        for yi, ty in enumerate(translations):
            for xi, tx in enumerate(translations):
                ccx, ccy = cx + tx * w, cy + ty * h
                out[si, yi, xi] = (ccx - s * w / 2, ccy - s * h / 2, ccx + s * w / 2, ccy + s * h / 2)
    return out


def _decode(backend, state, boxes: torch.Tensor, batch: Optional[int]) -> tuple:
    """Decodes ``(B, 4)`` boxes in batches of ``batch`` (``None``/0: one call); ``(logits (B, h, w), iou (B,))``."""
    size = batch or boxes.shape[0]
    parts = [backend.decode(state, boxes=boxes[i:i + size].to(backend.device)) for i in range(0, boxes.shape[0], size)]
    return torch.cat([p.low_res_logits[:, 0] for p in parts]), torch.cat([p.iou[:, 0] for p in parts])


def run_oracle(sequences: Iterable[VideoSequence], backend_for: Callable[[VideoSequence], object],
               translations: Sequence[float] = TRANSLATIONS, scales: Sequence[float] = SCALES,
               max_frames: Optional[int] = None, progress: Optional[Callable[[str], None]] = None,
               similarity: str = SamPDConfig.similarity) -> dict:
    """Runs the oracle grid on sequences with ground truth on every frame (``similarity``: Eq. 2's features,
    :func:`sampd_plugin.core.selection.similarity_features`, as the tracker's default).

    Returns:
        ``{"translations", "scales", "vanilla": {"J&F" | "J" | "F": (S, T, T) nested lists [scale][ty][tx]},
        "multi-prompt": {...}, "objects", "frames", "seconds"}``
    """
    n_s, n_t = len(scales), len(translations)
    cells = n_s * n_t * n_t
    per_object: Dict[str, Dict[str, List[np.ndarray]]] = {}  # key -> method -> [(2, cells) J/F per frame]
    frames_done, t_start = 0, time.perf_counter()
    sequences = list(sequences)
    for n, seq in enumerate(sequences, start=1):
        gt = ground_truth(seq)
        if gt is None:
            raise ValueError(f"sequence {seq.name}: the oracle experiment needs ground truth on every frame")
        backend = backend_for(seq)
        batch = backend.preferred_batch_size
        hw = seq.image_size()
        templates: Dict[int, tuple] = {}
        stems = seq.output_stems[:max_frames] if max_frames else seq.output_stems
        for stem in stems:
            lm = gt(stem)
            lm = np.where(lm == VOID, 0, lm)
            objs = [int(i) for i in np.unique(lm) if i and int(i) in seq.objects]
            if not objs:
                continue
            state = backend.encode(read_image(seq.frame(stem).path), seq.number(stem))
            feats = similarity_features(state.embedding, similarity)
            for oid in objs:
                mask = lm == oid
                if oid not in templates:  # the object's first annotated frame gives its template
                    grid = state.mask_to_grid(torch.as_tensor(mask, device=backend.device)[None], state.embed_stride)
                    tpl = masked_template(feats, grid[0])
                    if tpl is None:
                        continue
                    self_score = float(template_similarity(tpl, feats, grid)[0])
                    templates[oid] = (tpl, self_score if self_score > 0 else 1.0)
                tpl, self_score = templates[oid]
                boxes = torch.as_tensor(perturb_boxes(mask_to_box(mask), translations, scales).reshape(-1, 4))
                boxes = clip_boxes(boxes, hw)
                logits, _ = _decode(backend, state, boxes, batch)
                vanilla = backend.upsample(state, logits).cpu().numpy()
                grid_boxes = box_prompt_grid(boxes, hw, MP_GRID, MP_STEP, MP_SCALES)  # (cells, 27, 4)
                g = grid_boxes.shape[1]
                mp_logits, _ = _decode(backend, state, grid_boxes.reshape(-1, 4), batch)
                mp_logits = mp_logits.reshape(cells, g, *mp_logits.shape[-2:])
                sims = template_similarity(tpl, feats,
                                           state.logits_to_embedding_grid(mp_logits.reshape(-1, *mp_logits.shape[-2:])))
                pick = select_candidates(sims.reshape(cells, g) / self_score)
                chosen = mp_logits[torch.arange(cells, device=pick.device), pick]
                multi = backend.upsample(state, chosen).cpu().numpy()
                key = f"{seq.name}_{oid}"
                for method, preds in (("vanilla", vanilla), ("multi-prompt", multi)):
                    jf = np.stack([metrics.region_similarity(preds, np.broadcast_to(mask, preds.shape)),
                                   metrics.boundary_f_measure(preds, np.broadcast_to(mask, preds.shape))])
                    per_object.setdefault(key, {}).setdefault(method, []).append(jf)
            frames_done += 1
        if progress:
            progress(f"[{n}/{len(sequences)}] {seq.name}: oracle on {len(stems)} frames "
                     f"({time.perf_counter() - t_start:.1f} s so far)")
    out = {"translations": list(translations), "scales": list(scales), "objects": len(per_object),
           "frames": frames_done, "seconds": time.perf_counter() - t_start}
    for method in ("vanilla", "multi-prompt"):
        obj_means = np.stack([np.mean(v[method], axis=0) for v in per_object.values() if method in v]) \
            if per_object else np.full((1, 2, cells), np.nan)
        j, f = obj_means[:, 0].mean(0), obj_means[:, 1].mean(0)
        shape = (n_s, n_t, n_t)
        out[method] = {"J&F": ((j + f) / 2).reshape(shape).tolist(), "J": j.reshape(shape).tolist(),
                       "F": f.reshape(shape).tolist()}
    return out


def format_oracle(result: dict, title: str = "") -> str:
    """Fig. 7 as text: per method and scale, J&F (x100) with rows = vertical and columns = horizontal rates."""
    lines = [title] if title else []
    ts = result["translations"]
    for method in ("vanilla", "multi-prompt"):
        for si, s in enumerate(result["scales"]):
            lines.append(f"{method}, scale {s:.2f}: J&F, rows ty, columns tx")
            lines.append(f"{'ty/tx':>8}" + "".join(f"{t:>7.2f}" for t in ts))
            for yi, ty in enumerate(ts):
                lines.append(f"{ty:>8.2f}" + "".join(f"{100 * v:>7.1f}" for v in result[method]["J&F"][si][yi]))
    return "\n".join(lines)
