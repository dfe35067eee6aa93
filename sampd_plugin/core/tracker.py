"""SamPDTracker: the per-frame SAM-PD loop (paper Sec. III-B to III-D).

This module imports no FiftyOne.
"""

from __future__ import annotations

import dataclasses
from typing import Dict, Iterable, Iterator, List, Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from sampd_plugin.backends.base import Decoded, ImageState, PromptableSegmenter, foreground, logit_parts
from sampd_plugin.core.config import SamPDConfig
from sampd_plugin.core.frames import prefetch_depth, prefetch_frames
from sampd_plugin.core.identity import confusions
from sampd_plugin.core.overlap import Motion, exclusive_masks, is_occluded, joint_selection
from sampd_plugin.core.prompts import (
    box_prompt_grid,
    clip_boxes,
    group_by_point_count,
    mask_points,
    mask_to_box,
    masks_boxes,
    masks_points,
    negative_points,
)
from sampd_plugin.core.selection import (
    foreground_counts,
    iou_with_previous,
    masked_template,
    pick_multimask,
    select_candidates,
    similarity_features,
    template_similarity,
    window_similarities,
)


@dataclasses.dataclass
class ObjectPrompt:
    """The initial prompt of one object.

    Attributes:
        object_id: the object's id (FiftyOne ``Detection.index``)
        frame_number: 1-based frame where the object starts (its first annotation)
        box: optional ``(4,)`` ``xyxy`` box in image pixels
        mask: optional ``(H, W)`` bool mask; a box-only object gets its mask from the backend on its start frame
        label: optional class label carried to the outputs
    """

    object_id: int
    frame_number: int = 1
    box: Optional[np.ndarray] = None
    mask: Optional[np.ndarray] = None
    label: Optional[str] = None


@dataclasses.dataclass
class ObjectResult:
    """One object on one frame.

    Attributes:
        mask: ``(H, W)`` bool mask (all False when lost)
        box: ``(4,)`` ``xyxy`` pixel box of the mask, ``None`` when lost
        score: selection score of the chosen candidate (Eq. 2 similarity relative to the template's own, IoU with
            the previous mask, or predicted IoU, per ``SamPDConfig.selection``)
        iou: SAM's predicted IoU of the output mask
        lost: the object was not found on this frame
        label: the prompt's label
        is_prompt: this frame is the object's prompt frame (the given mask, not a prediction)
        confusion: identity evidence against the other objects (:func:`sampd_plugin.core.identity.confusions`):
            ``"switch"`` (the mask lies more on another object's previous mask than on its own), ``"merge"`` (it
            shares most of itself with another object's mask) or ``None``; such a frame is doubtful
            (:mod:`sampd_plugin.core.quality`)
        occluded: overlap-aware tracking (``SamPDConfig.overlap``): the object is hidden by others on this frame;
            ``mask`` is what is visible of it (possibly nothing), its box prompt moves on with its last velocity
    """

    mask: np.ndarray
    box: Optional[np.ndarray]
    score: float
    iou: float
    lost: bool
    label: Optional[str] = None
    is_prompt: bool = False
    confusion: Optional[str] = None
    occluded: bool = False


@dataclasses.dataclass
class FrameResult:
    """The tracker's output for one frame: ``objects`` maps object id -> :class:`ObjectResult`, for every object
    that has started; ``decode_calls`` and ``decoded_prompts`` count this frame's decoder work."""

    frame_number: int
    objects: Dict[int, ObjectResult]
    decode_calls: int = 0
    decoded_prompts: int = 0




@dataclasses.dataclass
class _Track:
    """Running state of one object (all pixel quantities at the original image resolution)."""

    object_id: int
    label: Optional[str]
    template: torch.Tensor  # (C, th, tw) masked frame-0 template, Eq. 1
    self_score: float  # Eq. 2 similarity of the template with itself (normalises scores)
    box: np.ndarray  # (4,) xyxy: the last good box, the prompt for the next frame
    mask: np.ndarray  # (H, W) bool: the last output mask (empty while lost)
    grid_mask: torch.Tensor  # (h_m, w_m) bool: last good mask on the low-resolution mask grid (cells > 0.5)
    points: np.ndarray  # (k, 2) points of the last mask (negatives for the others); empty while lost
    lost_frames: int = 0
    active: bool = True
    # adaptive denoising (SamPDConfig.adaptive): running means of the accepted first-stage candidates' Eq. 2
    # similarity and predicted IoU (None: no history yet, or lost since), frames since the grid last ran
    sim_mean: Optional[float] = None
    iou_mean: Optional[float] = None
    since_grid: int = 0
    template_from_box: bool = False  # started lost from a box prompt: the template is the box's, until re-acquired
    motion: Optional[Motion] = None  # overlap-aware tracking's occlusion step (SamPDConfig.overlap_occlusion)


class SamPDTracker:
    """Tracks and segments objects through a video by prompt denoising (paper Fig. 2).

    ``SamPDTracker(backend, config).track(frames, prompts)`` consumes ``(frame_number, image)`` pairs lazily, in the
    order given (ascending frame numbers propagate forwards; descending ones propagate backwards from a key frame)
    and yields one :class:`FrameResult` per frame. Memory does not grow with the video's length.

    Per frame, every image is encoded once; the first-stage prompts of *all* objects (``18 x N`` boxes with the
    paper's defaults) are decoded together, then the refinement prompts of all objects, each in batches of
    ``config.decode_batch_size`` of prompts with the same number of points (:func:`decode_prompts`: one call per
    stage per distinct point count when unlimited), so that an object's masks never depend on the other objects'
    prompts.

    Lost objects (our extension: the paper has no lost-object mechanism): an object whose output mask is empty
    (fewer than ``min_mask_area`` pixels), whose SAM predicted IoU is below ``lost_iou``, or whose mask's similarity
    to its template (relative to the template's own) is below ``lost_similarity`` is reported ``lost`` with an
    empty mask. While lost it is prompted every frame with its last good box (``reacquire``); the first frame on
    which that yields a valid mask re-acquires it. After ``max_lost_frames`` consecutive lost frames (or at once
    without ``reacquire``) it is no longer prompted and is reported lost on every later frame.

    Adaptive denoising (``config.adaptive``, our extension; :meth:`_adaptive_first_stage`): the vanilla boxes of all
    objects are decoded first, and the rest of the grid only for the objects whose vanilla candidate is suspect
    (:func:`_needs_grid`). ``FrameResult.decoded_prompts`` counts the decoder passes either way.
    """

    def __init__(self, backend: PromptableSegmenter, config: Optional[SamPDConfig] = None,
                 prefetch: Optional[int] = None):
        """``prefetch``: frames read and prepared ahead on a background thread
        (:func:`~sampd_plugin.core.frames.prefetch_frames`; ``None``: ``$SAMPD_PREFETCH``, else 2; ``0``: no thread)."""
        self.backend = backend
        self.config = config or SamPDConfig()
        self.config.validate()
        self.prefetch = prefetch_depth(prefetch)

    # --- public API ---------------------------------------------------------------------------------------------
    def track(self, frames: Iterable[Tuple[int, np.ndarray]], prompts: List[ObjectPrompt]) -> Iterator[FrameResult]:
        """Propagates ``prompts`` through ``frames``.

        Args:
            frames: iterable of ``(frame_number, (H, W, 3) uint8 RGB image)``, consumed lazily (read and prepared
                ``prefetch`` frames ahead on a background thread, see ``__init__``)
            prompts: one :class:`ObjectPrompt` per object (unique ``object_id``); an object starts on the frame
                of its prompt and is reported on every later frame of the iteration

        Yields:
            one :class:`FrameResult` per frame
        """
        pending: Dict[int, List[ObjectPrompt]] = {}
        seen = set()
        for p in prompts:
            if p.object_id in seen:
                raise ValueError(f"object {p.object_id} has more than one prompt")
            if p.box is None and p.mask is None:
                raise ValueError(f"object {p.object_id} on frame {p.frame_number}: the prompt has neither box nor mask")
            seen.add(p.object_id)
            pending.setdefault(int(p.frame_number), []).append(p)

        tracks: Dict[int, _Track] = {}
        for frame_number, _, prepared in prefetch_frames(frames, self.backend.prepare, self.prefetch):
            state = self.backend.encode(prepared, frame_number)
            feats = similarity_features(state.embedding, self.config.similarity)
            calls, prompts_before = self.backend.decode_calls, self.backend.decoded_prompts
            results: Dict[int, ObjectResult] = {}
            running = list(tracks.values())
            for p in pending.pop(int(frame_number), []):
                track, result = self._start(state, feats, p)
                tracks[p.object_id] = track
                results[p.object_id] = result
            new = [tracks[i] for i in results]
            active = [t for t in running if t.active]
            if active:
                results.update(self._propagate(state, feats, active, new))
            for t in running:
                if not t.active:
                    results[t.object_id] = self._lost_result(t, state.image_size)
            yield FrameResult(
                frame_number=frame_number,
                objects={k: results[k] for k in sorted(results)},
                decode_calls=self.backend.decode_calls - calls,
                decoded_prompts=self.backend.decoded_prompts - prompts_before,
            )
        if pending:
            missing = {f: [p.object_id for p in ps] for f, ps in pending.items()}
            raise ValueError(f"prompts on frames that were never reached (frame: object ids): {missing}")

    def auto_prompts(self, image: np.ndarray, frame_number: int = 1, max_objects: int = 100) -> List[ObjectPrompt]:
        """VIS mode (paper Sec. IV-B): the backend's automatic masks on one frame (at most ``max_objects``, best
        first) as prompts with ids ``1..n``."""
        masks = self.backend.generate_masks(image, max_masks=max_objects, frame_number=frame_number)
        return [
            ObjectPrompt(object_id=i + 1, frame_number=frame_number, mask=np.asarray(m, dtype=bool))
            for i, m in enumerate(list(masks)[:max_objects])
        ]

    # --- stages -------------------------------------------------------------------------------------------------
    def _start(self, state: ImageState, feats: torch.Tensor, prompt: ObjectPrompt) -> Tuple[_Track, ObjectResult]:
        """Initialises an object on its prompt frame (a box-only prompt gets its mask from the backend); ``feats``
        are the frame's Eq. 2 features (:func:`similarity_features`).

        A box prompt whose mask comes back empty starts its object lost: reported lost on its prompt frame and
        re-acquired with the prompt box like any lost object (``reacquire``); until then its template is the frame's
        features inside the box, replaced by the masked template (Eq. 1) of the mask that re-acquires it."""
        where = f"object {prompt.object_id} on frame {state.frame_number}"
        h, w = state.image_size
        iou = 1.0
        if prompt.mask is not None:
            mask = np.asarray(prompt.mask, dtype=bool)
            if mask.shape != (h, w):
                raise ValueError(f"{where}: prompt mask has shape {mask.shape} but the frame is {(h, w)}")
        else:
            prompt_box = torch.as_tensor(np.asarray(prompt.box, dtype=np.float32)).reshape(1, 4)
            if not (prompt_box[0, 2] > prompt_box[0, 0] and prompt_box[0, 3] > prompt_box[0, 1]):
                raise ValueError(f"{where}: degenerate prompt box {prompt_box[0].tolist()} (xyxy pixels)")
            prompt_box = clip_boxes(prompt_box, (h, w))
            dec = self._decode(state, boxes=prompt_box.to(self.backend.device), multimask=False)
            mask = self.backend.upsample(state, dec.low_res_logits[:, 0])[0].cpu().numpy()
            iou = float(dec.iou[0, 0])
        box = mask_to_box(mask)
        if box is None and prompt.mask is not None:
            raise ValueError(f"{where}: the prompt mask is empty")
        lost = box is None
        region = None
        if lost:  # the box prompt found nothing: its box stands in for the mask until the object is re-acquired
            box = prompt_box[0].numpy()
            x0, y0, x1, y1 = (int(v) for v in np.concatenate([np.floor(box[:2]), np.ceil(box[2:])]))
            region = np.zeros((h, w), dtype=bool)
            region[y0:y1, x0:x1] = True
        mask_t = torch.as_tensor(mask, device=self.backend.device)[None]
        region_t = torch.as_tensor(region, device=self.backend.device)[None] if lost else mask_t
        emb_mask = state.mask_to_grid(region_t, state.embed_stride)[0]
        template = masked_template(feats, emb_mask)
        self_score = float(template_similarity(template, feats, emb_mask[None])[0])
        track = _Track(
            object_id=prompt.object_id,
            label=prompt.label,
            template=template,
            self_score=self_score if self_score > 0 else 1.0,
            box=box,
            mask=mask,
            grid_mask=state.mask_to_grid(mask_t, state.mask_stride)[0] > 0.5,
            points=mask_points(mask, max(1, self.config.negative_points)),
            template_from_box=lost,
            motion=None if lost else self._motion(box, mask),
        )
        if lost:
            self._lose(track)
            return track, ObjectResult(mask=mask, box=None, score=0.0, iou=iou, lost=True, label=prompt.label,
                                       is_prompt=True)
        result = ObjectResult(mask=mask, box=box, score=1.0, iou=iou, lost=False, label=prompt.label, is_prompt=True)
        return track, result

    def _propagate(
        self, state: ImageState, feats: torch.Tensor, tracks: List[_Track], new: List[_Track]
    ) -> Dict[int, ObjectResult]:
        cfg = self.config
        n = len(tracks)
        k = cfg.negative_points

        # Stage 1, one-to-many (Sec. III-B/C) from the previous frame's prompts, then the many-to-one pick.
        use_neg = k > 0 and cfg.negatives_in_first_stage
        negs = negative_points([o.points[:k] for o in tracks + new], range(n)) if use_neg else [_NO_POINTS] * n
        prompt_boxes = [self._prompt_box(t, state.image_size) for t in tracks]
        covered = None
        if cfg.adaptive:
            chosen, chosen_iou, scores = self._adaptive_first_stage(state, feats, tracks, negs)
        else:
            logits, ious = self._first_stage(state, tracks, negs)
            if cfg.overlap:
                chosen, chosen_iou, scores, covered = self._joint_many_to_one(state, feats, tracks, logits, ious)
            else:
                chosen, chosen_iou, scores = self._many_to_one(state, feats, tracks, logits, ious)
        masks = self.backend.upsample(state, chosen).cpu().numpy()

        # Stage 2, point-based refinement (Sec. III-D).
        if cfg.refine:
            pts = masks_points(masks, max(1, k))  # every object's refinement point from one distance transform
            if cfg.overlap and cfg.overlap_occlusion:  # a candidate lying on the others': not refined, not a negative
                pts = [_NO_POINTS if c > cfg.occlusion_overlap else p for p, c in zip(pts, covered.tolist())]
            todo = [i for i in range(n) if len(pts[i])]
            if todo:
                use_neg = k > 0 and cfg.negatives_in_refinement
                negs = (negative_points([p[:k] for p in pts] + [o.points[:k] for o in new], todo)
                        if use_neg else [_NO_POINTS] * len(todo))
                dec = self._decode(state, positives=[pts[i][0] for i in todo], negatives=negs, multimask=True)
                prev = _previous([tracks[i] for i in todo]) if cfg.multimask_pick == "max_iou_prev" else None
                pick = pick_multimask(dec.low_res_logits, cfg.multimask_pick, prev)
                sel = torch.arange(len(todo), device=pick.device)
                refined = dec.low_res_logits[sel, pick].to(chosen.dtype)
                refined_iou = dec.iou[sel, pick].to(chosen_iou.dtype)
                if len(todo) == n:  # every object refined: the picked masks are the new ones (no copy of the old)
                    chosen, chosen_iou = refined, refined_iou
                else:
                    todo_t = torch.as_tensor(todo, device=chosen.device)
                    chosen, chosen_iou = chosen.clone(), chosen_iou.clone()
                    chosen[todo_t], chosen_iou[todo_t] = refined, refined_iou
                masks = self.backend.upsample(state, chosen).cpu().numpy()

        if cfg.overlap and cfg.overlap_exclusive:
            exclusive = exclusive_masks(chosen, _previous(tracks, chosen.device), cfg.overlap_hold)
            chosen = torch.where(exclusive, chosen, -chosen.abs())
            masks = self.backend.upsample(state, chosen).cpu().numpy()
        occluded = [False] * n
        if cfg.overlap and cfg.overlap_occlusion:
            occluded = self._occlusions(tracks, masks, prompt_boxes, covered)
        grids = foreground(chosen)  # the masks on the low-resolution grid, thresholded once for all
        confusion = self._confusions(tracks, grids)
        # every object's area, box and next-frame points at once, then the lost / re-acquire policy per object
        boxes, areas = masks_boxes(masks)
        points = masks_points(masks, max(1, k), boxes) if _uses_track_points(cfg) else [_NO_POINTS] * n
        ious, scores = chosen_iou.tolist(), scores.tolist()
        results = {}
        for i, t in enumerate(tracks):
            results[t.object_id] = self._update(state, feats, t, masks[i], grids[i], ious[i], scores[i],
                                                int(areas[i]), boxes[i], points[i], occluded[i])
            results[t.object_id].confusion = confusion.get(t.object_id)
        return results

    def _first_stage(
        self, state: ImageState, tracks: List[_Track], negs: List[np.ndarray], candidates: Optional[List[int]] = None,
        grid: Optional[torch.Tensor] = None,
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """One-to-many (Sec. III-B/C): decodes each object's first-stage prompts: its box grid
        (:func:`box_prompt_grid`, only the grid indices ``candidates`` when given) or its point.

        Args:
            negs: per object, its ``(M_i, 2)`` first-stage negative points
            grid: the objects' ``(N, G, 4)`` box grid when the caller has it (:meth:`_box_grid`)

        Returns:
            ``(N, G, h_m, w_m)`` low-resolution logits and ``(N, G)`` predicted IoUs (``G`` = the grid's size, or
            ``len(candidates)``; 1 for point prompts)
        """
        cfg = self.config
        n = len(tracks)
        if cfg.prompt_type == "box":
            boxes = self._box_grid(state, tracks) if grid is None else grid
            if candidates is not None:
                boxes = boxes[:, candidates]
            g = boxes.shape[1]
            dec = self._decode(
                state, boxes=boxes.reshape(-1, 4).to(self.backend.device), positives=[None] * (n * g),
                negatives=[neg for neg in negs for _ in range(g)],
            )
        else:
            g = 1
            pos = [t.points[0] if len(t.points) else _box_centre(t.box) for t in tracks]
            dec = self._decode(state, positives=pos, negatives=negs)
        logits = dec.low_res_logits[:, 0].reshape(n, g, *dec.low_res_logits.shape[-2:])
        return logits, dec.iou[:, 0].reshape(n, g)

    def _box_grid(self, state: ImageState, tracks: List[_Track]) -> torch.Tensor:
        """The objects' ``(N, G, 4)`` one-to-many box grid (:func:`box_prompt_grid`) around their prompt boxes."""
        cfg = self.config
        prev_boxes = torch.as_tensor(np.stack([self._prompt_box(t, state.image_size) for t in tracks]))
        return box_prompt_grid(prev_boxes, state.image_size, cfg.grid_size, cfg.shift_step, cfg.scales)

    def _many_to_one(
        self, state: ImageState, feats: torch.Tensor, tracks: List[_Track], logits: torch.Tensor, ious: torch.Tensor
    ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Many-to-one (Sec. III-C): each object's best candidate by Eq. 2, IoU with the previous mask, or SAM's
        predicted IoU (``config.selection``).

        Args:
            logits: ``(N, G, h_m, w_m)`` candidates' low-resolution logits (or a sequence of ``(N, G_j, h_m, w_m)``
                parts of them along ``G``); ious: ``(N, G)`` predicted IoUs

        Returns:
            the chosen ``(N, h_m, w_m)`` logits, their ``(N,)`` predicted IoUs and ``(N,)`` selection scores (the
            predicted IoU when there is nothing to select)
        """
        cfg = self.config
        n, g = ious.shape
        if g == 1 or cfg.selection == "none":
            idx = torch.zeros(n, dtype=torch.long, device=ious.device)
            scores = ious[:, 0]
        else:
            cand = self._candidate_scores(state, feats, tracks, logits, ious)
            idx = select_candidates(cand)
            scores = cand.gather(1, idx[:, None])[:, 0]
        rows = torch.arange(n, device=idx.device)
        return _pick(logits, idx), ious[rows, idx], scores

    def _candidate_scores(
        self, state: ImageState, feats: torch.Tensor, tracks: List[_Track], logits: torch.Tensor, ious: torch.Tensor
    ) -> torch.Tensor:
        """``(N, G)`` scores of the many-to-one pick (``config.selection``, not ``"none"``): Eq. 2
        (:meth:`_similarities`), IoU with the object's previous mask, or SAM's predicted IoU ``ious``."""
        if self.config.selection == "predicted_iou":
            return ious
        if self.config.selection == "iou_prev":
            previous = _previous(tracks, ious.device)
            return torch.cat([iou_with_previous(part, previous) for part in logit_parts(logits)], dim=1)
        return self._similarities(state, feats, tracks, logits)

    def _similarities(
        self, state: ImageState, feats: torch.Tensor, tracks: List[_Track], logits: torch.Tensor
    ) -> torch.Tensor:
        """Eq. 2 similarity of each candidate to its object's template, relative to the template's own:
        ``(N, G, h_m, w_m)`` logits (or parts of them along ``G``: :func:`~sampd_plugin.backends.base.logit_parts`)
        -> ``(N, G)``, all objects' candidates at once, each object's on the union box of its candidates
        (:func:`window_similarities`)."""
        windows = state.logits_to_embedding_windows(logits)
        g = sum(part.shape[1] for part in logit_parts(logits))
        sims = window_similarities([t.template for t in tracks], feats, windows, g)
        return sims / torch.tensor([t.self_score for t in tracks], dtype=sims.dtype, device=sims.device)[:, None]

    # --- overlap-aware tracking (our extension) -----------------------------------------------------------------
    def _joint_many_to_one(
        self, state: ImageState, feats: torch.Tensor, tracks: List[_Track], logits: torch.Tensor, ious: torch.Tensor
    ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """The many-to-one of :meth:`_many_to_one`, made joint over the objects
        (:func:`~sampd_plugin.core.overlap.joint_selection`, ``config.overlap_penalty``); also returns ``(N,)`` the
        fraction of each chosen candidate inside the masks the other objects chose before it."""
        n, g = ious.shape
        cand = ious if g == 1 or self.config.selection == "none" else \
            self._candidate_scores(state, feats, tracks, logits, ious)
        idx, covered = joint_selection(cand, logits > 0, _previous(tracks, logits.device), self.config.overlap_penalty)
        rows = torch.arange(n, device=idx.device)
        return logits[rows, idx], ious[rows, idx], cand[rows, idx], covered

    def _occlusions(self, tracks: List[_Track], masks: np.ndarray, boxes: List[np.ndarray],
                    covered: Optional[torch.Tensor]) -> List[bool]:
        """Per object, whether it is occluded (:func:`~sampd_plugin.core.overlap.is_occluded`) given its exclusive
        ``(H, W)`` mask in ``masks`` ``(N, H, W)``, the box it was prompted with and ``covered`` (joint selection)."""
        cfg = self.config
        claims = masks.sum(0)
        out = []
        for i, t in enumerate(tracks):
            x0, y0, x1, y1 = (int(v) for v in np.concatenate([np.floor(boxes[i][:2]), np.ceil(boxes[i][2:])]))
            others = (claims[y0:y1, x0:x1] - masks[i, y0:y1, x0:x1]) > 0
            box_covered = float(others.mean()) if others.size else 0.0
            out.append(t.motion is not None and is_occluded(
                float(covered[i]) if covered is not None else 0.0, float(masks[i].sum()), t.motion.area,
                box_covered, cfg.occlusion_area, cfg.occlusion_overlap))
        return out

    def _motion(self, box: np.ndarray, mask: np.ndarray) -> Optional[Motion]:
        """A new object's :class:`~sampd_plugin.core.overlap.Motion` when the occlusion step is on, else ``None``."""
        cfg = self.config
        return Motion(box, float(mask.sum())) if cfg.overlap and cfg.overlap_occlusion else None

    def _prompt_box(self, t: _Track, image_size) -> np.ndarray:
        """The object's box prompt for this frame: its last good box (Sec. III-B); while it is hidden (overlap-aware
        tracking), where its motion in full view puts it (:meth:`~sampd_plugin.core.overlap.Motion.expected_box`)."""
        if t.motion is None or not t.motion.hidden:
            return t.box
        return t.motion.expected_box(image_size)

    @staticmethod
    def _confusions(tracks: List[_Track], grids: torch.Tensor) -> Dict[int, str]:
        """Identity evidence of the objects' new ``(N, h_m, w_m)`` bool masks on the mask grid against their
        previous masks and each other (:func:`~sampd_plugin.core.identity.confusions`); none for a single object (it
        can neither merge with nor switch to another)."""
        if len(tracks) < 2:
            return {}
        current = grids.cpu().numpy()
        masks = {t.object_id: current[i] for i, t in enumerate(tracks)}
        found = [t for t in tracks if t.mask.any()]
        previous = _previous(found).cpu().numpy() if found else []
        return confusions(masks, {t.object_id: m for t, m in zip(found, previous)})

    # --- adaptive denoising (our extension) ---------------------------------------------------------------------
    def _adaptive_first_stage(
        self, state: ImageState, feats: torch.Tensor, tracks: List[_Track], negs: List[np.ndarray]
    ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Adaptive denoising (``config.adaptive``; beyond the paper): decodes only each object's vanilla candidate
        (the unshifted scale-1 box, the centre of the grid, Sec. III-B) and keeps it unless :func:`_needs_grid`
        finds it suspect against the object's history; for suspect objects the rest of the grid is decoded and
        the many-to-one pick runs over all ``G`` candidates, the vanilla one included, exactly as without
        ``adaptive``. Returns what :meth:`_many_to_one` returns, for all objects."""
        cfg = self.config
        centre = vanilla_index(cfg)
        grid = self._box_grid(state, tracks) if cfg.prompt_type == "box" else None  # (once, for both decodes)
        logits, ious = self._first_stage(state, tracks, negs, [centre], grid)
        sims = self._similarities(state, feats, tracks, logits)[:, 0]
        scores = sims.clone() if cfg.selection == "similarity" else \
            self._candidate_scores(state, feats, tracks, logits, ious)[:, 0]
        logits, ious = logits[:, 0], ious[:, 0]
        # the candidates' and the previous masks' areas on the mask grid, all objects at once
        areas = foreground_counts(logits).tolist()
        previous = _previous(tracks, logits.device).flatten(1).sum(1).tolist()
        suspect = [i for i, (t, sim, iou) in enumerate(zip(tracks, sims.tolist(), ious.tolist()))
                   if _needs_grid(cfg, t, sim, iou, areas[i], previous[i])]
        chosen, chosen_iou = logits, ious
        if suspect:  # (the vanilla candidates' tensors stay as they are: the grid's picks go into copies)
            chosen, chosen_iou = logits.clone(), ious.clone()
            d_tracks = [tracks[i] for i in suspect]
            rest = [j for j in range(cfg.num_prompts) if j != centre]
            d = torch.as_tensor(suspect, device=logits.device)
            r_logits, r_ious = self._first_stage(state, d_tracks, [negs[i] for i in suspect], rest,
                                                 None if grid is None else grid[d.to(grid.device)])
            # all G candidates in grid order, the vanilla one among the others (parts, not copied into one tensor)
            all_logits = (r_logits[:, :centre], logits[d, None], r_logits[:, centre:])
            all_ious = torch.cat([r_ious[:, :centre], ious[d, None].to(r_ious.dtype), r_ious[:, centre:]], dim=1)
            c, c_iou, c_score = self._many_to_one(state, feats, d_tracks, all_logits, all_ious)
            chosen[d], chosen_iou[d] = c.to(chosen.dtype), c_iou.to(chosen_iou.dtype)
            scores[d] = c_score.to(scores.dtype)
            if cfg.selection == "similarity":
                sims[d] = c_score.to(sims.dtype)
            else:
                sims[d] = self._similarities(state, feats, d_tracks, c[:, None])[:, 0].to(sims.dtype)
        grid = set(suspect)
        for i, (t, sim, iou) in enumerate(zip(tracks, sims.tolist(), chosen_iou.tolist())):
            _remember(cfg, t, sim, iou, i in grid)
        return chosen, chosen_iou, scores

    def _update(
        self,
        state: ImageState,
        feats: torch.Tensor,
        t: _Track,
        mask: np.ndarray,
        grid: torch.Tensor,
        iou: float,
        score: float,
        area: int,
        box: Optional[np.ndarray],
        points: np.ndarray,
        occluded: bool = False,
    ) -> ObjectResult:
        """Applies the lost / re-acquire policy and advances the object's state; ``grid`` is the mask on the
        low-resolution mask grid (``(h_m, w_m)`` bool); ``area``, ``box`` and ``points`` are the mask's
        pixel count, :func:`mask_to_box` and :func:`mask_points` (all computed for all objects at once); an
        ``occluded`` object (overlap-aware tracking) reports what is visible of it and keeps its box, template and
        history."""
        cfg = self.config
        lost = area < cfg.min_mask_area or iou < cfg.lost_iou
        emb_mask = None
        if not lost and (cfg.lost_similarity > 0 or cfg.template == "update"):
            emb_mask = state.mask_to_grid(torch.as_tensor(mask, device=self.backend.device)[None], state.embed_stride)
            sim = float(template_similarity(t.template, feats, emb_mask)[0]) / t.self_score
            lost = cfg.lost_similarity > 0 and sim < cfg.lost_similarity
        if t.motion is not None and (lost or occluded):
            t.motion.hide()
        if lost:
            t.mask = np.zeros_like(mask)
            self._lose(t)
            return ObjectResult(mask=t.mask, box=None, score=score, iou=iou, lost=True, label=t.label,
                                occluded=occluded)
        if occluded:  # what is visible of it is reported; its box, template and history stay
            t.mask = mask
            t.grid_mask = grid.clone()
            t.points = points
            return ObjectResult(mask=mask, box=box, score=score, iou=iou, lost=False, label=t.label, occluded=True)
        if t.template_from_box:  # re-acquired after a box prompt that found nothing: Eq. 1 on this mask
            emb_mask = state.mask_to_grid(torch.as_tensor(mask, device=self.backend.device)[None], state.embed_stride)
            t.template = masked_template(feats, emb_mask[0])
            own = float(template_similarity(t.template, feats, emb_mask)[0])
            t.self_score, t.template_from_box = (own if own > 0 else 1.0), False
        t.lost_frames = 0
        t.mask = mask
        if t.motion is not None:
            t.motion.seen(box, float(area))
        else:  # started lost from a box prompt: motion from its first mask
            t.motion = self._motion(box, mask)
        t.box = box
        t.grid_mask = grid.clone()  # (its own copy: a lost object keeps it for frames)
        # the next frame reads these points only as its point prompt or as first-stage negatives of the others
        t.points = points
        if cfg.template == "update":
            t.template = _blend_template(t.template, masked_template(feats, emb_mask[0]), cfg.template_momentum)
        return ObjectResult(mask=mask, box=t.box, score=score, iou=iou, lost=False, label=t.label)

    def _lose(self, t: _Track):
        """Counts a lost frame of ``t`` (its mask already emptied); stops prompting it when the policy says so."""
        cfg = self.config
        t.sim_mean = t.iou_mean = None  # adaptive denoising: a re-acquisition starts a new history
        t.lost_frames += 1
        t.points = _NO_POINTS
        if not cfg.reacquire or (cfg.max_lost_frames is not None and t.lost_frames > cfg.max_lost_frames):
            t.active = False

    def _lost_result(self, t: _Track, image_size) -> ObjectResult:
        return ObjectResult(
            mask=np.zeros(image_size, dtype=bool), box=None, score=0.0, iou=0.0, lost=True, label=t.label
        )

    # --- batching -----------------------------------------------------------------------------------------------
    def _decode(self, state, boxes=None, positives=None, negatives=None, multimask=False) -> Decoded:
        """Decodes all prompts of a stage with :func:`decode_prompts` in batches of ``config.decode_batch_size``
        (``None``: the backend's preference; see :class:`SamPDConfig`)."""
        size = self.config.decode_batch_size
        if size is None:
            size = self.backend.preferred_batch_size or 0
        return decode_prompts(self.backend, state, boxes, positives, negatives, multimask, size)


def decode_prompts(
    backend: PromptableSegmenter,
    state: ImageState,
    boxes: Optional[torch.Tensor] = None,
    positives: Optional[List[Optional[np.ndarray]]] = None,
    negatives: Optional[List[np.ndarray]] = None,
    multimask: bool = False,
    batch_size: int = 0,
) -> Decoded:
    """Decodes ``B`` prompts exactly as if each were decoded alone: prompts are batched only with prompts of the
    same number of points (:func:`sampd_plugin.core.prompts.group_by_point_count`; SAM has no neutral padding token),
    ``batch_size`` at a time (0 = a whole group per call), and the results are put back in input order.

    Decoder calls: ``sum over distinct point counts P of ceil(n_P / batch_size)`` (one per distinct count when
    unlimited).

    Args:
        backend, state: the segmenter and the encoded frame
        boxes: optional ``(B, 4)`` ``xyxy`` boxes (image pixels, right/bottom exclusive)
        positives: per prompt, an optional ``(2,)`` positive point (default: none)
        negatives: per prompt, an ``(M_i, 2)`` array of negative points (default: none)
        multimask: SAM's three-mask output

    Returns:
        a :class:`Decoded` with ``B`` rows in input order
    """
    total = boxes.shape[0] if boxes is not None else len(positives)
    if positives is None:
        positives = [None] * total
    if negatives is None:
        negatives = [_NO_POINTS] * total
    dev = backend.device
    low = iou = None
    for idx, points, labels in group_by_point_count(positives, negatives, dev):
        step = batch_size if 0 < batch_size < len(idx) else len(idx)
        for a in range(0, len(idx), step):
            part = idx[a : a + step]
            dec = backend.decode(
                state,
                None if boxes is None else boxes[part.to(boxes.device)],
                None if points is None else points[a : a + step],
                None if labels is None else labels[a : a + step],
                multimask,
            )
            if step == total:  # one call for everything: already in input order
                return dec
            if low is None:
                low = dec.low_res_logits.new_empty((total, *dec.low_res_logits.shape[1:]))
                iou = dec.iou.new_empty((total, *dec.iou.shape[1:]))
            low[part.to(low.device)] = dec.low_res_logits
            iou[part.to(iou.device)] = dec.iou
    return Decoded(low_res_logits=low, iou=iou)


_NO_POINTS = np.zeros((0, 2), dtype=np.int64)


def _uses_track_points(cfg: SamPDConfig) -> bool:
    """Whether an object's points (:func:`mask_points` of its last mask) are read on the next frame: as its point
    prompt, or as negatives for the other objects' first stage. Otherwise they are not computed (a distance
    transform of the full-resolution mask per object and frame)."""
    return cfg.prompt_type == "point" or (cfg.negative_points > 0 and cfg.negatives_in_first_stage)


def vanilla_index(cfg: SamPDConfig) -> int:
    """Index of the vanilla candidate (Sec. III-B: the previous mask's box, unshifted, scale 1) in the box grid of
    :func:`sampd_plugin.core.prompts.box_prompt_grid` (``config.scales`` must contain 1.0)."""
    return (cfg.grid_size**2 // 2) * len(cfg.scales) + cfg.scales.index(1.0)


def _needs_grid(cfg: SamPDConfig, t: _Track, sim: float, iou: float, area: int, prev_area: int) -> bool:
    """Adaptive denoising: whether an object's vanilla candidate needs the full one-to-many grid (Sec. III-C).

    Suspect when the object has no history (its first propagated frame, or the first after being lost), when the
    grid has not run for ``adaptive_interval`` frames (if > 0), or when, relative to the object's history, the
    candidate's Eq. 2 similarity (``sim``, relative to the template's own) is below ``adaptive_similarity`` times
    its running mean, its SAM predicted IoU ``iou`` below ``adaptive_iou`` times its running mean, or its area
    (mask grid) differs from the previous mask's by more than a fraction ``adaptive_area`` of it, or is empty. A
    threshold of 0 disables its test.

    Args:
        area: the candidate's foreground cells on the low-resolution mask grid (logits ``> 0``)
        prev_area: the previous mask's cells on that grid (``t.grid_mask``)
    """
    if t.sim_mean is None or t.iou_mean is None:
        return True
    if cfg.adaptive_interval and t.since_grid + 1 >= cfg.adaptive_interval:
        return True
    if sim < t.sim_mean - (1 - cfg.adaptive_similarity) * abs(t.sim_mean) or iou < cfg.adaptive_iou * t.iou_mean:
        return True
    return area == 0 or bool(cfg.adaptive_area and abs(area - prev_area) > cfg.adaptive_area * prev_area)


def _remember(cfg: SamPDConfig, t: _Track, sim: float, iou: float, grid: bool):
    """Adaptive denoising: adds the accepted first-stage candidate's Eq. 2 similarity and predicted IoU to the
    object's running means (exponential, weight ``adaptive_momentum`` for the new value; the first value starts
    them) and counts the frames since the grid last ran (``grid``: it ran on this frame)."""
    a = cfg.adaptive_momentum
    t.sim_mean = sim if t.sim_mean is None else (1 - a) * t.sim_mean + a * sim
    t.iou_mean = iou if t.iou_mean is None else (1 - a) * t.iou_mean + a * iou
    t.since_grid = 0 if grid else t.since_grid + 1


def _previous(tracks: List[_Track], device=None) -> torch.Tensor:
    """The objects' previous masks on the mask grid, ``(N, h_m, w_m)`` bool (on ``device`` if given)."""
    previous = torch.stack([t.grid_mask for t in tracks])
    return previous if device is None else previous.to(device)


def _pick(logits, idx: torch.Tensor) -> torch.Tensor:
    """Each object's candidate ``idx`` (``(N,)``) of ``(N, G, h_m, w_m)`` logits, or of parts of them along ``G``
    (:func:`~sampd_plugin.backends.base.logit_parts`) -> ``(N, h_m, w_m)``."""
    parts = logit_parts(logits)
    if len(parts) == 1:
        return parts[0][torch.arange(len(idx), device=idx.device), idx]
    out = parts[0].new_empty((len(idx), *parts[0].shape[2:]))
    start = 0
    for part in parts:
        rows = torch.nonzero((idx >= start) & (idx < start + part.shape[1]))[:, 0]
        out[rows] = part[rows, idx[rows] - start]
        start += part.shape[1]
    return out


def _box_centre(box: np.ndarray) -> np.ndarray:
    return np.array([(box[0] + box[2]) // 2, (box[1] + box[3]) // 2], dtype=np.int64)


def _blend_template(old: torch.Tensor, new: Optional[torch.Tensor], momentum: float) -> torch.Tensor:
    """Template-update extension (footnote 2 of the paper tried it): ``(1 - a) * old + a * new``, with the new
    template resized to the old one's size."""
    if new is None:
        return old
    new = F.interpolate(new[None], size=old.shape[-2:], mode="bilinear", align_corners=False)[0]
    return (1 - momentum) * old + momentum * new
