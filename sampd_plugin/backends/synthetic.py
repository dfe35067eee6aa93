"""A deterministic synthetic promptable segmenter for :class:`sampd_plugin.synthetic.SyntheticScene` videos.

It answers prompts from the scene's exact ground truth, degraded the way SAM degrades with noisy prompts, so that
SAM-PD's prompt denoising (paper Sec. III) has real work to do. Every degradation has a physical reason; the knobs
are the fields of :class:`Realism`.

Box prompts. SAM is trained with box noise of std 10 % of the side, at most 20 px of its 1024-px input (Sec. III-A);
``sigma`` below is that noise for each side of the prompt box.

- *Which object*: the one with the most visible pixels inside the box (ties: centroid nearest the box centre); a
  positive point inside the box names it instead; an object with a negative point on it loses
  ``negative_penalty`` of its count. If the winner fills less than ``background_fraction`` of the box, the box is
  over background and the result is the background segment there (below), with a low predicted IoU.
- *Over-tight box -> lost parts* (Sec. III-D): where the object extends past a side by ``d``, the part is
  recovered if ``d < U(recover_tolerance) * sigma``; otherwise the mask stops at the side plus a margin of up to
  ``clip_margin * sigma``: SAM "predicts the area enveloped by the box".
- *Loose or shifted box -> leakage*: on a given frame, each side of an object has, with chance ``leak_chance``, an
  adjacent region SAM confuses with the object (a low-contrast patch: an ellipse on the object's edge, whose depth
  is ``leak_extent`` of the object's size). Slack between the object and that side of the box beyond
  ``U(leak_tolerance) * sigma`` lets the mask spill into the region, as far as the box allows.
- *Box around two objects -> merge*: another object with a fraction ``f`` of its visible pixels inside the box is
  merged (its part inside the box) if ``merge_rate * f^2`` beats a draw; ``+ alike_merge * f`` when the two touch
  and look alike (no visible edge between them: the cosine of their mean embedding features, from pixels, above
  ``alike_cosine``).
- *Instability* (Sec. III-C: "minor changes in box prompts may lead to significantly different mask predictions";
  Fig. 5): with chance ``box_instability`` per prompt, independently of nearby boxes, the box segments something
  else in it (the other object with most pixels there, else a background segment), with a confident IoU.
- Negative points remove the objects they fall on from the result (no leakage or merging into them) and carve a
  small disk around themselves when they fall on the target or on background.

Point prompts (SAM's ambiguity, Sec. III-A):

- a positive point on object ``o`` gives three nested masks: *subpart* (``o`` within ``subpart_radius`` of the
  point, in units of ``o``'s equivalent radius), *part* (within ``part_radius``) and *whole* (all of ``o``; the
  whole level also takes each touching object without a negative point with chance ``whole_merge``, plus
  ``alike_merge`` when they look alike, as SAM's whole level groups adjacent things). ``multimask=True`` returns all three (the largest is the whole);
  ``multimask=False`` with one positive point is ambiguous: a level drawn with probabilities ``point_levels``
  (subpart, part, whole); with several positive points it is the whole (union of their objects).
- a positive point on background gives that background segment.

Background: SAM always segments *something*. The background is divided into "stuff" segments (Voronoi cells of a
jittered lattice of spacing ``stuff_size``, fixed to the background texture and drifting with it); a prompt on
background returns the segment it lands on, the same one for nearby prompts.

Predicted IoU: the mask's true IoU with the covered object's visible mask plus uniform noise of std ``iou_noise``;
a background segment gets a draw in ``[0.1, 0.45]``.

Determinism: what depends on the image (tolerances, confusable regions, merges) is drawn per (scene seed, frame,
object, side), the same for every prompt; the rest (IoU noise, ambiguity) per (seed, frame, prompt rounded to
integer pixels, multimask). Identical inputs give identical outputs.

The embedding is *not* ground truth: it is computed from the image pixels only (pooled opponent colour, gradient
energy in four directions and local contrast, standardised per channel over the image, colour weighted above
texture; salient cells normalised to unit norm, bland ones proportionally smaller), so Eq. 2 template correlation
separates objects by appearance as it does with SAM's features: cells of the same object correlate strongly across
frames, other objects negatively, the (bland) background weakly.

Geometry: the image is resized to longest side ``input_size`` (default 256) at the top-left of a padded square;
embedding cells are ``embed_stride`` input pixels (default 4: a 64x64 grid like SAM's), mask cells ``mask_stride``
(default 2: 128x128 logits, half SAM's resolution, one cell = 2.5 px of a 320-px-wide frame). Decoding is
vectorised over prompts with torch and works in per-prompt windows, ~10 ms for 54 prompts on one CPU core.

This module imports no FiftyOne.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping, Optional, Sequence

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from sampd_plugin.backends.base import Decoded, ImageState, PromptableSegmenter
from sampd_plugin.synthetic.scene import SCENE_FIELD, SyntheticScene

LOGIT = 8.0
#: channel weights of :func:`image_features`: L, R-G, (R+G)/2-B, 4 gradient energies, local contrast (colour
#: dominates: the objects differ most by colour, all of them are textured)
FEATURE_WEIGHTS = (0.7, 1.2, 1.2, 0.4, 0.4, 0.4, 0.4, 0.4)
#: cells whose feature norm is above this quantile of the image's are normalised to 1, the others scaled alike
SALIENT_QUANTILE = 0.95
# Pseudo-random draws. Per prompt (hash of the rounded prompt): 0-2 IoU noise, 3-5 background / glitch IoU,
# 6 box glitch, 7 and 10 the glitch's background point, 8-9 point level radii, 11 ambiguous level.
_PROMPT_DRAWS = 12
# Per object and frame (what SAM "sees" in the image, the same for every prompt): 0-3 recovery tolerance per side,
# 4-7 clip margin per side, 8-11 leak tolerance per side, 12-23 leak region per side, 24-27 confusable region per
# side; then one draw per other object for box merges, and one per other object for the point whole-level grab.
_OBJ_DRAWS = 28


@dataclasses.dataclass
class Realism:
    """Knobs of the degradation model (see the module docstring). ``sigma`` is SAM's training box noise for a side
    of the prompt box; tolerances are drawn per object, frame and side as ``U(lo, hi) x sigma``."""

    box_noise: float = 0.10  # SAM's training box noise, fraction of the box side
    box_noise_cap: float = 20.0  # ... at most this many pixels of SAM's 1024-px input frame
    recover_tolerance: tuple = (1.0, 2.5)  # a part past the box by less than U(lo, hi) x sigma is recovered
    clip_margin: float = 0.3  # kept beyond an over-tight edge, fraction of sigma (times a uniform draw)
    leak_chance: float = 0.2  # chance that a side of an object has a confusable (low-contrast) region on a frame
    leak_tolerance: tuple = (2.0, 4.0)  # ... into which slack beyond U(lo, hi) x sigma on that side leaks
    leak_extent: tuple = (0.15, 0.4)  # the leak region's depth, fraction of the object's size
    merge_rate: float = 0.5  # a neighbour with a fraction f inside the box merges with chance merge_rate * f^2
    background_fraction: float = 0.10  # a box whose best object fills less than this of it is over background
    point_levels: tuple = (0.2, 0.3, 0.5)  # P(subpart), P(part), P(whole) of an ambiguous single point
    subpart_radius: float = 0.35  # point levels: radii around the point, in equivalent radii of the object
    part_radius: float = 0.75
    whole_merge: float = 0.3  # chance that a point's whole level also takes a touching object (no negative on it)
    alike_merge: float = 0.4  # extra merge chance (x f for boxes) of touching objects that look alike
    alike_cosine: float = 0.8  # objects look alike above this cosine of their mean embedding features
    negative_penalty: float = 0.5  # fraction of an object's in-box count removed by a negative point on it
    stuff_size: float = 0.1  # background segments' spacing, fraction of the image's longest side
    iou_noise: float = 0.05  # std of the predicted IoU's error
    box_instability: float = 0.015  # chance that one box prompt segments something else in the box


@dataclasses.dataclass
class _FrameTruth:
    """Ground truth of one frame on the low-resolution mask grid (index 0 = background, 1..N = objects)."""

    gid: torch.Tensor  # (S, S) int64 owner of each cell; -1 = padding
    sat: torch.Tensor  # (N+1, S+1, S+1) float32 integral images of each owner's cells
    area: torch.Tensor  # (N+1,) cells
    bbox: torch.Tensor  # (N+1, 4) x0, y0, x1, y1 (exclusive) cells; zeros when absent
    centroid: torch.Tensor  # (N+1, 2) x, y (cell units)
    adjacent: torch.Tensor  # (N+1, N+1) bool: objects whose cells touch
    alike: torch.Tensor  # (N+1, N+1) bool: touching objects that look alike (Realism.alike_cosine)
    uniforms: torch.Tensor  # (N+1, _OBJ_DRAWS + 2 (N+1)) draws per object on this frame
    stuff: torch.Tensor  # (S, S) int64 background segment of each background cell; -1 elsewhere


class SyntheticSegmenter(PromptableSegmenter):
    """A SAM-like promptable segmenter driven by a :class:`~sampd_plugin.synthetic.SyntheticScene`'s ground truth.

    Built by name (``model="synthetic"``) it has no scene: :meth:`for_sequence` makes one for each generated
    sequence from the scene parameters stored with it (a FiftyOne dataset's ``synthetic`` field, a generated tree's
    sidecar), and refuses any other sequence.

    Args:
        scene: the scene whose frames are segmented (``ImageState.frame_number`` selects the frame), or ``None``
        input_size: longest side of the resized image in the padded square input frame
        embed_stride: input pixels per embedding cell (a multiple of ``mask_stride``)
        mask_stride: input pixels per low-resolution mask cell
        device: torch device
        realism: the degradation model's knobs (:class:`Realism`)
    """

    preferred_batch_size = None

    def __init__(
        self,
        scene: Optional[SyntheticScene] = None,
        input_size: int = 256,
        embed_stride: int = 4,
        mask_stride: int = 2,
        device="cpu",
        realism: Optional[Realism] = None,
    ):
        super().__init__()
        if input_size % embed_stride or embed_stride % mask_stride:
            raise ValueError(
                f"input_size ({input_size}) must be a multiple of embed_stride ({embed_stride}), itself a multiple "
                f"of mask_stride ({mask_stride})"
            )
        self.scene = scene
        self.input_size = int(input_size)
        self.embed_stride = int(embed_stride)
        self.mask_stride = int(mask_stride)
        self.device = torch.device(device)
        self.realism = realism or Realism()
        if scene is not None:
            h, w = scene.height, scene.width
            s = self.input_size / max(h, w)
            self._input_hw = (max(1, int(round(h * s))), max(1, int(round(w * s))))
        self._truth_cache = {}

    def for_sequence(self, meta: Mapping[str, Any]) -> "SyntheticSegmenter":
        """A segmenter of the scene the sequence was generated from (``meta[SCENE_FIELD]``: its parameters);
        ``ValueError`` for a sequence that was not generated."""
        params = meta.get(SCENE_FIELD)
        if not params:
            raise ValueError(f"model 'synthetic' only segments sequences made by sampd_plugin.synthetic (no "
                             f"'{SCENE_FIELD}' scene parameters); choose a SAM model")
        return SyntheticSegmenter(SyntheticScene.from_params(params), self.input_size, self.embed_stride,
                                  self.mask_stride, self.device, self.realism)

    # --- encoding -------------------------------------------------------------------------------------------
    def _prepare(self, image: np.ndarray) -> np.ndarray:
        """The frame resized to the input frame (``(h_in, w_in, 3)`` uint8, OpenCV area interpolation)."""
        if self.scene is None:
            raise ValueError("this SyntheticSegmenter has no scene: use for_sequence(meta) to get one for a sequence")
        h, w = image.shape[:2]
        if (h, w) != (self.scene.height, self.scene.width):
            raise ValueError(f"image is {h}x{w} but the scene's frames are {self.scene.height}x{self.scene.width}")
        h_in, w_in = self._input_hw
        return cv2.resize(image, (w_in, h_in), interpolation=cv2.INTER_AREA)

    def _encode(self, resized: np.ndarray, frame_number: Optional[int]) -> ImageState:
        h_in, w_in = self._input_hw
        emb = image_features(resized, self.embed_stride, self.input_size).to(self.device)
        state = ImageState(
            embedding=emb,
            image_size=(self.scene.height, self.scene.width),
            input_size=(h_in, w_in),
            embed_stride=self.embed_stride,
            mask_stride=self.mask_stride,
            frame_number=frame_number,
        )
        if frame_number is not None:
            state.extra["truth"] = self._truth(state, int(frame_number))
        return state

    def _truth(self, state: ImageState, frame_number: int) -> _FrameTruth:
        if frame_number in self._truth_cache:
            return self._truth_cache[frame_number]
        scene = self.scene
        n = scene.num_objects
        owners = torch.arange(n + 1, device=self.device)
        ids = torch.as_tensor(scene.render_ids(frame_number), device=self.device)
        frac = state.mask_to_grid(ids[None] == owners[:, None, None], self.mask_stride)  # (N+1, S, S)
        side = frac.shape[-1]
        hv, wv = (-(-v // self.mask_stride) for v in state.input_size)
        gid = frac.argmax(0)
        gid[hv:, :] = -1
        gid[:, wv:] = -1
        own = gid[None] == owners[:, None, None]  # (N+1, S, S); padding (-1) belongs to nobody
        sat = torch.zeros((n + 1, side + 1, side + 1), dtype=torch.float32, device=self.device)
        sat[:, 1:, 1:] = own.float().cumsum(1).cumsum(2)  # exact: counts stay far below 2^24
        area = own.flatten(1).sum(1)
        ys = torch.arange(side, device=self.device)
        rows, cols = own.any(2), own.any(1)  # (N+1, S)
        big = side + 1

        def first_last(a):
            idx = torch.where(a, ys[None], torch.full_like(ys[None], big))
            lo = idx.min(1).values
            hi = torch.where(a, ys[None], torch.full_like(ys[None], -1)).max(1).values + 1
            return torch.where(area > 0, lo, 0), torch.where(area > 0, hi, 0)

        x0, x1 = first_last(cols)
        y0, y1 = first_last(rows)
        bbox = torch.stack([x0, y0, x1, y1], 1).float()
        cx = (own.sum(1).float() * (ys[None].float() + 0.5)).sum(1) / area.clamp(min=1)
        cy = (own.sum(2).float() * (ys[None].float() + 0.5)).sum(1) / area.clamp(min=1)
        dil = F.max_pool2d(own[:, None].float(), 3, 1, 1)[:, 0] > 0
        adjacent = (dil[:, None] & own[None]).flatten(2).any(2)
        adjacent.fill_diagonal_(False)
        alike = adjacent & (_appearance_cosine(state.embedding, gid, n + 1, self.embed_stride // self.mask_stride)
                            > self.realism.alike_cosine)
        alike[0] = alike[:, 0] = False  # background is never an object's look-alike
        draws = _uniforms(np.array([[scene.seed, frame_number, i] for i in range(n + 1)]), _OBJ_DRAWS + 2 * (n + 1))
        stuff = torch.where(gid == 0, self._stuff_regions(state, frame_number, side), torch.full_like(gid, -1))
        truth = _FrameTruth(
            gid, sat, area.float(), bbox, torch.stack([cx, cy], 1), adjacent, alike, draws.to(self.device), stuff
        )
        if len(self._truth_cache) > 8:
            self._truth_cache.clear()
        self._truth_cache[frame_number] = truth
        return truth

    def _stuff_regions(self, state: ImageState, frame_number: int, side: int) -> torch.Tensor:
        """``(S, S)`` ids of the background's "stuff" segments: Voronoi cells of a jittered lattice of spacing
        ``stuff_size`` x the image's longest side, fixed to the background texture (they drift with it). SAM
        segments one of these when a prompt lands on background, the same one for nearby prompts."""
        scene = self.scene
        spacing = self.realism.stuff_size * max(scene.height, scene.width)
        dx, dy = scene.background_offset(frame_number)
        sx, sy = state.scale_xy.tolist()
        cc = (torch.arange(side, dtype=torch.float32) + 0.5) * self.mask_stride
        u = (cc / sx - dx) / spacing  # lattice coordinates of the cell centres: x (columns), y (rows)
        v = (cc / sy - dy) / spacing
        iu, iv = u.floor().long(), v.floor().long()
        i0, k0 = int(iu.min()) - 1, int(iv.min()) - 1
        ni, nk = int(iu.max()) - i0 + 2, int(iv.max()) - k0 + 2
        lattice = np.array([[scene.seed, i, k, 0x57F] for i in range(i0, i0 + ni) for k in range(k0, k0 + nk)])
        jit = (0.15 + 0.7 * _uniforms(lattice, 2)).view(ni, nk, 2)
        best_d = torch.full((side, side), float("inf"))
        best = torch.zeros((side, side), dtype=torch.long)
        for di in (-1, 0, 1):
            ci = iu + di - i0  # (S_x,) lattice column of this candidate
            for dk in (-1, 0, 1):
                ck = iv + dk - k0  # (S_y,)
                j = jit[ci[None, :], ck[:, None]]  # (S_y, S_x, 2)
                d = (ci[None, :] + i0 + j[..., 0] - u[None]) ** 2 + (ck[:, None] + k0 + j[..., 1] - v[:, None]) ** 2
                closer = d < best_d
                best_d = torch.where(closer, d, best_d)
                best = torch.where(closer, ci[None, :] * nk + ck[:, None] + 1, best)
        return best.to(self.device)

    def _stuff_cells(self) -> float:
        """Background segment spacing in mask cells (the image's longest side spans ``input_size`` input px)."""
        return self.realism.stuff_size * self.input_size / self.mask_stride

    # --- decoding -------------------------------------------------------------------------------------------
    def _decode(self, state, boxes, points, point_labels, multimask) -> Decoded:
        if state.frame_number is None:
            raise ValueError(
                "SyntheticSegmenter needs the frame number: encode(image, frame_number=...) so that "
                "ImageState.frame_number is set"
            )
        truth = state.extra.get("truth") or self._truth(state, int(state.frame_number))
        dev = self.device
        b = boxes.shape[0] if boxes is not None else points.shape[0]
        n1 = truth.area.shape[0]
        uni = _prompt_uniforms(
            self.scene.seed, int(state.frame_number), boxes, points, point_labels, multimask, _PROMPT_DRAWS
        ).to(dev)
        side = truth.gid.shape[-1]
        if points is not None:
            pts = (points.to(dev).float() + 0.5) * (state.scale_xy.to(dev) / self.mask_stride)  # cell coords
            lab = point_labels.to(dev).long()
            pix = pts.floor().long().clamp(0, side - 1)
            pid = truth.gid[pix[..., 1], pix[..., 0]].clamp(min=0)  # (B, P) owner (0 = background / padding)
            pid = torch.where(lab >= 0, pid, torch.full_like(pid, -1))
            neg = _scatter_any(b, n1, pid, lab == 0)
            pos = _scatter_any(b, n1, pid, lab == 1)
        else:
            pts = lab = pid = None
            neg = pos = torch.zeros((b, n1), dtype=torch.bool, device=dev)

        if boxes is not None:
            masks, target, is_bg, win, glitch = self._box_masks(
                truth, state, boxes.to(dev).float(), pts, lab, pid, neg, pos, uni
            )
            masks = masks[:, None]  # (B, 1, h, w)
            if multimask:
                masks = masks.expand(-1, 3, -1, -1)
        else:
            masks, target, is_bg, win = self._point_masks(truth, pts, lab, pid, neg, pos, uni, multimask)
            glitch = torch.zeros_like(is_bg)

        # predicted IoU: the true IoU with the covered object's visible cells (all inside the window), plus noise
        tmask = (win.gid == target.view(b, 1, 1))[:, None]
        inter = (masks & tmask).flatten(2).sum(-1).float()
        union = masks.flatten(2).sum(-1).float() + truth.area[target][:, None] - inter
        true_iou = torch.where(union > 0, inter / union.clamp(min=1), torch.zeros_like(union))
        k = masks.shape[1]
        noise = (uni[:, 0:k] * 2 - 1) * math.sqrt(3) * self.realism.iou_noise
        bg_iou = 0.1 + 0.35 * uni[:, 3 : 3 + k]
        iou = torch.where(is_bg[:, None], bg_iou, true_iou + noise)
        iou = torch.where(glitch[:, None], 0.75 + 0.2 * uni[:, 3 : 3 + k], iou).clamp(0, 1)
        return Decoded(low_res_logits=win.paste(masks), iou=iou)

    def _box_masks(self, truth, state, boxes, pts, lab, pid, neg, pos, uni):
        """Box prompts (with optional points): ``(masks (B, h, w) in the window, target (B,) (0 = background),
        is_bg (B,), window, glitch (B,))``."""
        r = self.realism
        dev = self.device
        b = boxes.shape[0]
        side = truth.gid.shape[-1]
        rows = torch.arange(b, device=dev)
        bx = state.boxes_to_grid(boxes, self.mask_stride)  # (B, 4) continuous cell coords
        x0, y0, x1, y1 = bx.unbind(1)
        # cells whose centre lies in the box: [ceil(v0 - .5), ceil(v1 - .5))
        ia = (x0 - 0.5).ceil().long().clamp(0, side)
        ib = (x1 - 0.5).ceil().long().clamp(0, side)
        ja = (y0 - 0.5).ceil().long().clamp(0, side)
        jb = (y1 - 0.5).ceil().long().clamp(0, side)
        sat = truth.sat
        counts = (sat[:, jb, ib] - sat[:, ja, ib] - sat[:, jb, ia] + sat[:, ja, ia]).T.float()  # (B, N+1)
        box_area = ((ib - ia) * (jb - ja)).float().clamp(min=1)

        # which object: most visible cells in the box (a negative point penalises), nearest centroid on ties
        score = torch.where(neg, counts * (1 - r.negative_penalty), counts)
        score[:, 0] = -1
        bcx, bcy = (x0 + x1) / 2, (y0 + y1) / 2
        dist = torch.hypot(truth.centroid[None, :, 0] - bcx[:, None], truth.centroid[None, :, 1] - bcy[:, None])
        score = score - 1e-3 * dist / side
        named = pos.clone()  # a positive point inside the box names the object
        named[:, 0] = False
        score = torch.where(named & (counts > 0), score + 1e9, score)
        target = score.argmax(1)
        tcount = counts.gather(1, target[:, None])[:, 0]
        is_bg = (tcount < r.background_fraction * box_area) | (tcount <= 0)

        bw, bh = (x1 - x0).clamp(min=1), (y1 - y0).clamp(min=1)
        cap = max(r.box_noise_cap * self.input_size / 1024 / self.mask_stride, 0.5)
        sx = torch.clamp(r.box_noise * bw, min=0.5, max=cap)
        sy = torch.clamp(r.box_noise * bh, min=0.5, max=cap)
        sig = torch.stack([sx, sy, sx, sy], 1)
        edge = torch.stack([x0, y0, x1, y1], 1)
        ob = truth.bbox[target]  # (B, 4) the target's visible extent
        m8 = (sig * r.clip_margin).amax(1)
        grown = edge + torch.stack([-m8, -m8, m8, m8], 1)
        reach = 1.6 * self._stuff_cells()  # a background segment lies within this of a point inside it
        around = torch.stack([bcx - reach, bcy - reach, bcx + reach, bcy + reach], 1)
        around = torch.cat([torch.minimum(around[:, :2], edge[:, :2]), torch.maximum(around[:, 2:], edge[:, 2:])], 1)
        with_target = torch.cat([torch.minimum(grown[:, :2], ob[:, :2]), torch.maximum(grown[:, 2:], ob[:, 2:])], 1)
        need = torch.where(is_bg[:, None], around, with_target)
        win = _Window(truth.gid, need)
        X, Y, gid = win.X, win.Y, win.gid
        v = lambda t: t.view(b, 1, 1)  # noqa: E731

        ou = truth.uniforms[target]  # (B, K) draws of this object on this frame (per side / per other object)

        # over-tight box: the part past an edge by d is recovered if d < tolerance (a draw in recover_tolerance x
        # sigma, per object, frame and side); otherwise the mask stops at the edge plus a small margin
        over = torch.stack([x0 - ob[:, 0], y0 - ob[:, 1], ob[:, 2] - x1, ob[:, 3] - y1], 1).clamp(min=0)
        r_lo, r_hi = r.recover_tolerance
        recovered = over < sig * (r_lo + (r_hi - r_lo) * ou[:, 0:4])
        margin = r.clip_margin * sig * ou[:, 4:8]
        lo = torch.where(recovered[:, :2], torch.full_like(edge[:, :2], -1e9), edge[:, :2] - margin[:, :2])
        hi = torch.where(recovered[:, 2:], torch.full_like(edge[:, 2:], 1e9), edge[:, 2:] + margin[:, 2:])
        tmask = gid == v(target)
        masks = tmask & (((X >= v(lo[:, 0])) & (X < v(hi[:, 0]))) & ((Y >= v(lo[:, 1])) & (Y < v(hi[:, 1]))))

        # objects with a negative point (never the target) get no leakage or merging
        excluded = neg.clone()
        excluded[:, 0] = False
        excluded[rows, target] = False
        owner = gid.clamp(min=0).view(b, -1)
        near_box = ((X >= v(grown[:, 0])) & (X < v(grown[:, 2]))) & ((Y >= v(grown[:, 1])) & (Y < v(grown[:, 3])))
        allowed = near_box & (gid >= 0)
        if bool(excluded.any()):
            allowed &= ~excluded.gather(1, owner).view_as(gid)

        # loose / shifted box: slack on a side beyond a tolerance (a draw in leak_tolerance x sigma) lets the mask
        # leak into the region SAM confuses with the object on that side: a fixed ellipse (per object, frame and
        # side) on the object's edge, as far as the box lets it
        slack = torch.stack([ob[:, 0] - x0, ob[:, 1] - y0, x1 - ob[:, 2], y1 - ob[:, 3]], 1).clamp(min=0)
        l_lo, l_hi = r.leak_tolerance
        confusable = ou[:, 24:28] < r.leak_chance
        leaks = confusable & (slack > sig * (l_lo + (l_hi - l_lo) * ou[:, 8:12])) & ~is_bg[:, None]
        ow, oh = (ob[:, 2] - ob[:, 0]).clamp(min=1), (ob[:, 3] - ob[:, 1]).clamp(min=1)
        for j in range(4):
            if not bool(leaks[:, j].any()):
                continue
            horiz = j % 2 == 0  # left / right: the region extends along x
            normal, tangent = (ow, oh) if horiz else (oh, ow)
            t_lo = ob[:, 1] if horiz else ob[:, 0]
            along = t_lo + tangent * ou[:, 12 + j]
            a_n = normal * (r.leak_extent[0] + (r.leak_extent[1] - r.leak_extent[0]) * ou[:, 16 + j])
            a_t = tangent * (0.2 + 0.3 * ou[:, 20 + j])
            cx_, cy_ = (ob[:, j], along) if horiz else (along, ob[:, j])
            ax, ay = (a_n, a_t) if horiz else (a_t, a_n)
            region = ((X - v(cx_)) / v(ax.clamp(min=1e-3))) ** 2 + ((Y - v(cy_)) / v(ay.clamp(min=1e-3))) ** 2 < 1
            masks = masks | (region & allowed & v(leaks[:, j]))

        # a box around another object too: merged if merge_rate * (its fraction inside the box)^2 (+ alike_merge *
        # the fraction when it touches the target and looks alike) beats a draw
        frac_in = counts / truth.area[None].clamp(min=1)
        chance = r.merge_rate * frac_in**2 + r.alike_merge * frac_in * truth.alike[target].float()
        merge = ou[:, _OBJ_DRAWS : _OBJ_DRAWS + counts.shape[1]] < chance
        merge[:, 0] = False
        merge[rows, target] = False
        merge &= ~excluded & ~is_bg[:, None]
        if bool(merge.any()):
            masks = masks | (merge.gather(1, owner).view_as(gid) & near_box)

        # a box over background: the background segment at the box centre (or, if an object is there, at one of
        # four points halfway to the corners); SAM always segments something
        if bool(is_bg.any()):
            region = _stuff_at(truth.stuff, bx, side)
            masks = torch.where(v(is_bg), win.take(truth.stuff) == v(region), masks)

        # SAM's instability to box prompts (Sec. III-C, Fig. 5): now and then one box, independently of its
        # neighbours, segments something else in the box: the other object with most pixels there (not one with a
        # negative point), else a background segment inside the box; SAM is confident about it all the same
        glitch = (uni[:, 6] < r.box_instability) & ~is_bg
        if bool(glitch.any()):
            others = torch.where(excluded, torch.zeros_like(counts), counts)
            others[:, 0] = 0
            others[rows, target] = 0
            other = others.argmax(1)
            has_other = others.gather(1, other[:, None])[:, 0] > 0
            px = torch.stack([x0 + bw * uni[:, 7], y0 + bh * uni[:, 10], x0 + bw * uni[:, 7], y0 + bh * uni[:, 10]], 1)
            region = _stuff_at(truth.stuff, px, side)
            region = torch.where(region == -2, _stuff_at(truth.stuff, bx, side), region)  # the point is on an object
            glitch &= has_other | (region >= 0)  # SAM segments *something*: with nothing else in the box, no glitch
            wrong = torch.where(v(has_other), gid == v(other), win.take(truth.stuff) == v(region)) & near_box
            masks = torch.where(v(glitch), wrong, masks)

        if pts is not None and bool(((lab == 0) & ((pid == target[:, None]) | (pid == 0))).any()):
            masks = masks & ~_negative_disks(truth, pts, lab, pid, target, torch.minimum(bw, bh), X, Y)
        target = torch.where(is_bg, torch.zeros_like(target), target)
        return masks, target, is_bg, win, glitch

    def _point_masks(self, truth, pts, lab, pid, neg, pos, uni, multimask):
        """Point prompts: ``(masks (B, K, h, w) in the window, target, is_bg, window)``."""
        r = self.realism
        dev = self.device
        b = lab.shape[0]
        n1 = truth.area.shape[0]
        side = truth.gid.shape[-1]
        rows = torch.arange(b, device=dev)
        first_pos = _first_index(lab == 1)
        has_pos = first_pos >= 0
        fp = first_pos.clamp(min=0)
        p0 = pts[rows, fp]  # (B, 2)
        target = torch.where(has_pos, pid[rows, fp].clamp(min=0), torch.zeros_like(fp))
        is_bg = target == 0

        # the whole level: the object, other positive objects, touching objects without a negative point
        grab_draws = truth.uniforms[target][:, _OBJ_DRAWS + n1 : _OBJ_DRAWS + 2 * n1]
        grab = truth.adjacent[target] & (grab_draws < r.whole_merge + r.alike_merge * truth.alike[target].float())
        extra = (pos | grab) & ~neg
        extra[:, 0] = False
        others = pos.clone()
        others[:, 0] = False
        others[rows, target] = False
        reach = 1.6 * self._stuff_cells()
        rad = torch.full((b,), reach, device=dev)

        # window: the objects involved, or the background blob
        involved = extra.clone()
        involved[rows, target] = True
        involved[:, 0] = False
        big = torch.tensor(1e9, device=dev)
        lo = torch.where(involved[..., None], truth.bbox[None, :, :2], big).amin(1)
        hi = torch.where(involved[..., None], truth.bbox[None, :, 2:], -big).amax(1)
        around = torch.cat([p0 - rad[:, None], p0 + rad[:, None]], 1)
        need = torch.where(is_bg[:, None], around, torch.cat([lo, hi], 1))
        need = torch.where(has_pos[:, None], need, torch.zeros_like(need))
        win = _Window(truth.gid, need)
        X, Y, gid = win.X, win.Y, win.gid
        v = lambda t: t.view(b, 1, 1)  # noqa: E731
        owner = gid.clamp(min=0).view(b, -1)

        r_eq = torch.sqrt(truth.area[target] / math.pi)
        d = torch.hypot(X - v(p0[:, 0]), Y - v(p0[:, 1]))
        tmask = gid == v(target)
        sub = tmask & (d < v(r.subpart_radius * r_eq * (0.9 + 0.2 * uni[:, 8])))
        part = tmask & (d < v(r.part_radius * r_eq * (0.9 + 0.2 * uni[:, 9])))
        whole = tmask | extra.gather(1, owner).view_as(gid)
        other_cells = others.gather(1, owner).view_as(gid)
        sub, part = sub | other_cells, part | other_cells

        # a point on background: its background segment (subpart: the segment near the point)
        pix = p0.floor().long().clamp(0, side - 1)
        seg_bg = win.take(truth.stuff) == v(truth.stuff[pix[:, 1], pix[:, 0]])
        seg_bg &= v(truth.stuff[pix[:, 1], pix[:, 0]] >= 0)
        bg_levels = torch.stack([seg_bg & (d < 0.4 * reach), seg_bg, seg_bg], 1)
        levels = torch.stack([sub, part, whole], 1)  # (B, 3, h, w)
        levels = torch.where(is_bg.view(b, 1, 1, 1), bg_levels, levels)
        levels = levels & has_pos.view(b, 1, 1, 1)
        carve = _negative_disks(truth, pts, lab, pid, target, torch.full((b,), side / 4.0, device=dev), X, Y)
        levels = levels & ~carve[:, None]
        if multimask:
            return levels, target, is_bg, win
        # single output: ambiguous for one positive point, the whole for several
        n_pos = (lab == 1).sum(1)
        cum = torch.tensor(np.cumsum(r.point_levels), dtype=torch.float32, device=dev)
        level = torch.searchsorted(cum, (uni[:, 11] * cum[-1]).contiguous()[:, None])[:, 0].clamp(max=2)
        level = torch.where(n_pos > 1, torch.full_like(level, 2), level)
        return levels[rows, level][:, None], target, is_bg, win

    # --- automatic mode -------------------------------------------------------------------------------------
    def generate_masks(
        self, image: np.ndarray, max_masks: int = 100, frame_number: Optional[int] = None
    ) -> Sequence[np.ndarray]:
        """The visible objects' masks (largest first), then the three largest background segments; at most
        ``max_masks`` ``(H, W)`` bool masks."""
        if frame_number is None:
            raise ValueError("SyntheticSegmenter.generate_masks needs frame_number")
        state = self.encode(image, frame_number)
        truth = state.extra["truth"]
        gid = truth.gid
        objs = [int(i) for i in torch.argsort(truth.area, descending=True) if i > 0 and truth.area[i] > 0]
        grids = [gid == i for i in objs]
        stuff = truth.stuff[truth.stuff >= 0]
        if stuff.numel():
            counts = torch.bincount(stuff)
            for sid in torch.argsort(counts, descending=True)[:3]:
                if counts[sid] > 0:
                    grids.append(truth.stuff == sid)
        grids = grids[:max_masks]
        if not grids:
            return []
        logits = torch.where(torch.stack(grids), LOGIT, -LOGIT).float()
        return list(self.upsample(state, logits).cpu().numpy())


# --- helpers ----------------------------------------------------------------------------------------------------------
def image_features(image: np.ndarray, stride: int, side: int) -> torch.Tensor:
    """A real appearance embedding from pixels only: ``(8, side // stride, side // stride)`` over the padded
    square input frame (zeros in the padding).

    Channels per cell of ``stride`` x ``stride`` input pixels: opponent colour (L, R-G, (R+G)/2-B), gradient
    energy along x, y and both diagonals (texture and its orientation), local contrast (std of L). Each channel is
    standardised over the image's cells (zero mean, unit variance) and weighted (:data:`FEATURE_WEIGHTS`); cells
    whose norm is above the :data:`SALIENT_QUANTILE` of the image's are scaled to unit norm, the others by the same
    factor as that quantile (the image's bland, typical cells keep small features).

    Args:
        image: ``(h, w, 3)`` uint8 RGB, already resized to the input frame (``h, w <= side``)
    """
    img = torch.as_tensor(image).float() / 255.0
    h, w = img.shape[:2]
    R, G, B = img.unbind(-1)
    L = (R + G + B) / 3
    a = R - G
    bb = (R + G) / 2 - B
    gx = F.pad((L[:, 1:] - L[:, :-1]).abs(), (0, 1))
    gy = F.pad((L[1:] - L[:-1]).abs(), (0, 0, 0, 1))
    d1 = F.pad((L[1:, 1:] - L[:-1, :-1]).abs(), (0, 1, 0, 1))
    d2 = F.pad((L[1:, :-1] - L[:-1, 1:]).abs(), (1, 0, 0, 1))
    ch = torch.stack([L, a, bb, gx, gy, d1, d2, L * L])  # (8, h, w)
    hp, wp = -(-h // stride) * stride, -(-w // stride) * stride
    ch = F.pad(ch[None], (0, wp - w, 0, hp - h), mode="replicate")[0]
    cells = F.avg_pool2d(ch[None], stride)[0]  # (8, hc, wc)
    std_l = (cells[7] - cells[0] ** 2).clamp(min=0).sqrt()
    feats = torch.cat([cells[:7], std_l[None]])  # (8, hc, wc)
    mean = feats.flatten(1).mean(1)
    std = feats.flatten(1).std(1).clamp(min=1e-4)
    feats = (feats - mean[:, None, None]) / std[:, None, None]
    weights = torch.tensor(FEATURE_WEIGHTS, dtype=torch.float32)
    feats = feats * weights[:, None, None]
    # salient cells (far from the image's typical appearance) get unit norm, bland ones (the background) keep a
    # smaller one: Eq. 2 then sums cosines over the object and barely counts background
    norm = feats.norm(dim=0, keepdim=True)
    tau = torch.quantile(norm.flatten(), SALIENT_QUANTILE).clamp(min=1e-6)
    feats = feats / torch.maximum(norm, tau)
    g = side // stride
    out = torch.zeros((feats.shape[0], g, g), dtype=torch.float32)
    out[:, : feats.shape[1], : feats.shape[2]] = feats
    return out


class _Window:
    """Per-prompt windows of a common size on the ``(S, S)`` mask grid, so that each prompt's work is local.

    Args:
        gid: ``(S, S)`` cell owners
        need: ``(B, 4)`` ``x0, y0, x1, y1`` cell extents (exclusive ends) each window must cover (clipped to the
            grid)
    """

    def __init__(self, gid: torch.Tensor, need: torch.Tensor):
        side = gid.shape[-1]
        b = need.shape[0]
        lo = need[:, :2].floor().clamp(0, side - 1).long()
        hi = torch.maximum(need[:, 2:].ceil().clamp(0, side).long(), lo + 1)
        ww, wh = (int((hi - lo)[:, i].max()) if b else 1 for i in (0, 1))
        ox = torch.minimum(lo[:, 0], torch.full_like(lo[:, 0], side - ww))
        oy = torch.minimum(lo[:, 1], torch.full_like(lo[:, 1], side - wh))
        xs = ox[:, None] + torch.arange(ww, device=gid.device)[None]  # (B, w)
        ys = oy[:, None] + torch.arange(wh, device=gid.device)[None]  # (B, h)
        self.side = side
        self.ox, self.oy, self.wh, self.ww = ox, oy, wh, ww
        self.gid = self.take(gid)  # (B, h, w)
        self.X = (xs.float() + 0.5)[:, None, :]  # (B, 1, w) cell-centre coordinates
        self.Y = (ys.float() + 0.5)[:, :, None]  # (B, h, 1)
        self.flat = (ys[:, :, None] * side + xs[:, None, :]).reshape(b, -1)

    def take(self, grid: torch.Tensor) -> torch.Tensor:
        """``(S, S)`` grid -> ``(B, h, w)`` its windows (a strided view indexed per prompt: contiguous copies)."""
        side = self.side
        views = grid.as_strided((side - self.wh + 1, side - self.ww + 1, self.wh, self.ww), (side, 1, side, 1))
        return views[self.oy, self.ox]

    def paste(self, masks: torch.Tensor) -> torch.Tensor:
        """``(B, K, h, w)`` bool window masks -> ``(B, K, S, S)`` logits (``+LOGIT`` inside, ``-LOGIT`` elsewhere)."""
        b, k = masks.shape[:2]
        out = torch.full((b, k, self.side * self.side), -LOGIT, dtype=torch.float32, device=masks.device)
        vals = torch.where(masks, LOGIT, -LOGIT).float().reshape(b, k, -1)
        out.scatter_(2, self.flat[:, None].expand(-1, k, -1), vals)
        return out.view(b, k, self.side, self.side)


def _appearance_cosine(embedding: torch.Tensor, gid: torch.Tensor, owners: int, step: int) -> torch.Tensor:
    """``(owners, owners)`` cosine similarity of the owners' mean embedding features (``embedding`` ``(C, g, g)``;
    each cell's owner read from the ``(S, S)`` mask-grid ``gid`` every ``step`` cells); 0 for an absent owner."""
    cells = gid[::step, ::step][: embedding.shape[1], : embedding.shape[2]]
    onehot = (cells[None] == torch.arange(owners, device=gid.device)[:, None, None]).float()  # (O, g, g)
    sums = onehot.flatten(1) @ embedding.flatten(1).T.float()  # (O, C)
    means = F.normalize(sums / onehot.flatten(1).sum(1, keepdim=True).clamp(min=1), dim=1)
    return means @ means.T


def _stuff_at(stuff: torch.Tensor, boxes: torch.Tensor, side: int) -> torch.Tensor:
    """``(B,)`` background segment under each ``(B, 4)`` grid box's centre, else under the first of four points
    halfway to its corners that is background; -2 (nothing) if none is."""
    cx, cy = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
    hw, hh = (boxes[:, 2] - boxes[:, 0]) / 4, (boxes[:, 3] - boxes[:, 1]) / 4
    out = torch.full_like(cx, -2, dtype=torch.long)
    for fx, fy in ((0, 0), (-1, -1), (1, -1), (-1, 1), (1, 1)):
        x = (cx + fx * hw).floor().long().clamp(0, side - 1)
        y = (cy + fy * hh).floor().long().clamp(0, side - 1)
        s = stuff[y, x]
        out = torch.where((out == -2) & (s >= 0), s, out)
    return out


def _negative_disks(truth, pts, lab, pid, target, size, X, Y) -> torch.Tensor:
    """``(B, h, w)`` cells carved by negative points lying on the target (radius a quarter of its equivalent
    radius) or on background (``0.15 * size``)."""
    b, p = lab.shape
    r_eq = torch.sqrt(truth.area / math.pi)
    rad = torch.where(pid > 0, 0.25 * r_eq[pid.clamp(min=0)], 0.15 * size[:, None])
    active = (lab == 0) & ((pid == target[:, None]) | (pid == 0))
    out = torch.zeros((b, Y.shape[1], X.shape[2]), dtype=torch.bool, device=X.device)
    for j in range(p):
        if bool(active[:, j].any()):
            r2 = torch.where(active[:, j], rad[:, j] ** 2, torch.zeros_like(rad[:, j])).view(b, 1, 1)
            out |= (X - pts[:, j, 0].view(b, 1, 1)) ** 2 + (Y - pts[:, j, 1].view(b, 1, 1)) ** 2 < r2
    return out


def _scatter_any(b: int, n1: int, pid: torch.Tensor, which: torch.Tensor) -> torch.Tensor:
    """``(B, N+1)`` bool: owners hit by the points selected by ``which`` (``pid`` ``(B, P)``, -1 ignored)."""
    out = torch.zeros((b, n1 + 1), dtype=torch.bool, device=pid.device)
    idx = torch.where(which & (pid >= 0), pid, torch.full_like(pid, n1))  # n1 = a dump column
    out.scatter_(1, idx, True)
    return out[:, :n1]


def _first_index(flags: torch.Tensor) -> torch.Tensor:
    """``(B,)`` index of the first True per row of ``(B, P)`` flags, -1 if none."""
    p = flags.shape[1]
    idx = torch.where(flags, torch.arange(p, device=flags.device)[None], torch.full_like(flags, p, dtype=torch.long))
    first = idx.min(1).values
    return torch.where(first < p, first, torch.full_like(first, -1))


_MASK64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def _splitmix(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        x = x + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def _uniforms(fields: np.ndarray, k: int) -> torch.Tensor:
    """``(B, k)`` uniforms in ``[0, 1)``, a hash of each row of the ``(B, F)`` int64 ``fields`` and ``j < k``."""
    fields = np.asarray(fields, dtype=np.int64).reshape(len(fields), -1)
    with np.errstate(over="ignore"):
        h = np.full(fields.shape[0], np.uint64(0x100000001B3), dtype=np.uint64)
        for col in fields.T:
            h = _splitmix(h ^ col.astype(np.uint64))
        js = np.arange(k, dtype=np.uint64)
        u = _splitmix(h[:, None] + js[None] * np.uint64(0xD1B54A32D192ED03))
    return torch.as_tensor((u >> np.uint64(11)).astype(np.float64) / float(2**53), dtype=torch.float32)


def _prompt_uniforms(seed, frame, boxes, points, labels, multimask, k) -> torch.Tensor:
    """``(B, k)`` uniforms: a hash of (seed, frame, prompt rounded to integer pixels, multimask)."""
    b = boxes.shape[0] if boxes is not None else points.shape[0]
    cols = [np.tile([seed, frame, int(bool(multimask)) + 2 * (boxes is not None)], (b, 1))]
    if boxes is not None:
        cols.append(np.rint(boxes.detach().cpu().double().numpy()).astype(np.int64))
    if points is not None:
        p = np.rint(points.detach().cpu().double().numpy()).astype(np.int64)
        lab = labels.detach().cpu().numpy().astype(np.int64)
        p = np.where(lab[..., None] >= 0, p, -7)
        cols += [p.reshape(b, -1), lab]
    return _uniforms(np.concatenate(cols, 1), k)
