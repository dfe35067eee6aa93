"""SAM-PD configuration: one dataclass with the paper's defaults, and named presets for the ablation rows.

Paper defaults (Sec. IV-A): box prompts, a 3x3 grid of shifts with a step of 10 % of the box side, scales
{1.0, 1.05} (18 prompts), semantic-similarity selection against a fixed frame-0 template (Eq. 2), point refinement
keeping the largest of SAM's three masks, negative points from the other objects in both stages (Table V).
Where the paper leaves a reading open, both readings are settings and the default is the one measured better
(README, "Method options"): Eq. 2 on ``similarity="dot"`` or ``"cosine"`` features; the "IoU-based" many-to-one
as IoU with the previous mask (``"iou_prev"``) or SAM's predicted IoU (``"predicted_iou"``).

This module imports no FiftyOne.
"""

from __future__ import annotations

import dataclasses
from typing import Optional, Tuple, Union

PROMPT_TYPES = ("box", "point")
SELECTIONS = ("similarity", "iou_prev", "predicted_iou", "none")
#: old name of ``"predicted_iou"`` (before ``"iou_prev"`` existed), still accepted so stored run settings load
SELECTION_ALIASES = {"iou": "predicted_iou"}
SIMILARITIES = ("dot", "cosine")
TEMPLATES = ("fixed", "update")
MULTIMASK_PICKS = ("largest", "max_iou_prev")


@dataclasses.dataclass
class SamPDConfig:
    """Settings of :class:`sampd_plugin.core.tracker.SamPDTracker`.

    Attributes:
        prompt_type: ``"box"`` propagates the box of the previous mask (Sec. III-B); ``"point"`` propagates the
            point of the previous mask farthest from its boundary (Table III, rows 1-2)
        grid_size: side of the grid of shifted boxes of the one-to-many stage (Sec. III-C); 1 disables it
        shift_step: grid step as a fraction of the box width/height
        scales: box scale factors placed at every grid position
        selection: many-to-one pick: ``"similarity"`` (Eq. 2, the paper's "semantic-based"); ``"iou_prev"``, the
            candidate with the highest IoU with the object's previous mask (on the low-resolution mask grid; the
            paper's "IoU-based" row of Table III, read as "spatial cues"); ``"predicted_iou"``, the candidate with
            the highest SAM predicted IoU (the other reading of that row); ``"none"`` (only valid with a single
            prompt). ``"iou"`` is accepted as the old name of ``"predicted_iou"`` and stored as such.
        similarity: features of Eq. 2: ``"dot"`` (SAM's embedding as is) or ``"cosine"`` (each cell's feature
            vector L2-normalised; :func:`sampd_plugin.core.selection.similarity_features`); also used by
            ``lost_similarity`` and the template update
        template: ``"fixed"`` frame-0 template (the paper's choice, footnote 2) or ``"update"`` (an extension:
            the template is blended with the chosen candidate's each frame with weight ``template_momentum``)
        template_momentum: weight of the new template in ``"update"`` mode
        refine: run the point-based mask refinement (Sec. III-D)
        multimask_pick: ``"largest"`` area (DAVIS) or ``"max_iou_prev"`` IoU with the previous mask (parts,
            YouTube-VOS)
        negative_points: max number of negative points per other object (0 disables them)
        negatives_in_first_stage: give negative points with the first-stage (box or point) prompts (Table V,
            "Multi-Prompt" column)
        negatives_in_refinement: give negative points in the refinement stage (Table V, "Mask Refine" column)
        decode_batch_size: prompts per decoder call; ``None`` = the backend's measured preference (unlimited on
            CUDA), ``0`` = unlimited
        min_mask_area: a mask with fewer pixels than this marks its object lost
        lost_iou: an output mask whose SAM predicted IoU is below this marks its object lost (0 disables)
        lost_similarity: an output mask whose Eq. 2 similarity to the template, relative to the template's
            similarity with itself, is below this marks its object lost (0 disables)
        reacquire: keep prompting a lost object with its last good box to re-acquire it
        max_lost_frames: give up re-acquiring after this many consecutive lost frames (``None`` = never)
        adaptive: adaptive denoising (our extension, beyond the paper; off in every paper preset, on in preset
            ``"adaptive"``): per frame and object, decode only the vanilla candidate (the previous mask's box,
            unshifted, scale 1: the centre of the grid) and keep it unless it looks suspect against the object's
            history (the thresholds below; :func:`sampd_plugin.core.tracker._needs_grid`); a suspect object gets the
            whole grid and the many-to-one pick exactly as without ``adaptive``. The refinement runs as usual.
            Needs box prompts, a multi-prompt grid and 1.0 in ``scales``. A suspect frame costs the same decoder
            passes as without ``adaptive``, a kept one ``1 / num_prompts`` of the first stage
        adaptive_similarity: suspect when the vanilla candidate's Eq. 2 similarity (relative to the template's
            own) is below this fraction of its running mean over the object's accepted candidates (0 disables)
        adaptive_iou: suspect when its SAM predicted IoU is below this fraction of its running mean (0 disables)
        adaptive_area: suspect when its area differs from the previous mask's by more than this fraction of it
            (on the low-resolution mask grid; 0 disables). The defaults of these three were chosen on generated
            videos (README, "Method options")
        adaptive_momentum: weight of the newest accepted value in the running means
        adaptive_interval: run the grid at least every this many frames per object (0: only when suspect)
        overlap: overlap-aware tracking (our extension, beyond the paper; off in every paper preset, on in preset
            ``"overlap"``; :mod:`sampd_plugin.core.overlap`): the many-to-one pick is joint over the objects, the output
            masks are made mutually exclusive, and an object hidden by others keeps its template and history while
            its box moves on with its last velocity until it is re-acquired. Not combined with ``adaptive``
        overlap_penalty: joint pick: a candidate's score loses this times its fraction inside the masks the other
            objects chose before it (0: each object's own argmax, as in the paper)
        overlap_exclusive: the exclusivity step (off: the objects' masks may overlap, as in the paper)
        overlap_hold: exclusivity: logit bonus of a cell contested by several objects for the object whose previous
            mask held it
        overlap_occlusion: the occlusion step (off: no occlusion state; a lost object is prompted with its last good
            box, as in the paper's presets)
        occlusion_area: an object whose exclusive mask is below this fraction of its usual area while the others
            cover more than ``occlusion_overlap`` of its box is occluded
        occlusion_overlap: ... as is one whose chosen candidate lies more than this fraction inside the others'
    """

    prompt_type: str = "box"
    grid_size: int = 3
    shift_step: float = 0.10
    scales: Tuple[float, ...] = (1.0, 1.05)
    selection: str = "similarity"
    similarity: str = "dot"
    template: str = "fixed"
    template_momentum: float = 0.1
    refine: bool = True
    multimask_pick: str = "largest"
    negative_points: int = 1
    negatives_in_first_stage: bool = True
    negatives_in_refinement: bool = True
    decode_batch_size: Optional[int] = None
    min_mask_area: int = 1
    lost_iou: float = 0.0
    lost_similarity: float = 0.0
    reacquire: bool = True
    max_lost_frames: Optional[int] = None
    adaptive: bool = False
    adaptive_similarity: float = 0.5
    adaptive_iou: float = 0.8
    adaptive_area: float = 0.4
    adaptive_momentum: float = 0.3
    adaptive_interval: int = 0
    overlap: bool = False
    overlap_penalty: float = 1.0
    overlap_exclusive: bool = True
    overlap_hold: float = 1.0
    overlap_occlusion: bool = True
    occlusion_area: float = 0.3
    occlusion_overlap: float = 0.5

    def __post_init__(self):
        self.scales = tuple(float(s) for s in self.scales)
        self.selection = SELECTION_ALIASES.get(self.selection, self.selection)
        self.validate()

    def validate(self):
        """Raises ``ValueError`` naming the first invalid setting."""
        _choice("prompt_type", self.prompt_type, PROMPT_TYPES)
        _choice("selection", self.selection, SELECTIONS)
        _choice("similarity", self.similarity, SIMILARITIES)
        _choice("template", self.template, TEMPLATES)
        _choice("multimask_pick", self.multimask_pick, MULTIMASK_PICKS)
        if not isinstance(self.grid_size, int) or self.grid_size < 1 or self.grid_size % 2 == 0:
            raise ValueError(f"grid_size must be an odd integer >= 1, got {self.grid_size!r}")
        if not 0 <= self.shift_step < 1:
            raise ValueError(f"shift_step must be in [0, 1), got {self.shift_step!r}")
        if not self.scales or any(s <= 0 for s in self.scales):
            raise ValueError(f"scales must be positive, got {self.scales!r}")
        if self.selection == "none" and self.num_prompts > 1:
            raise ValueError(
                f"selection='none' needs a single prompt per object, but grid_size={self.grid_size} and "
                f"scales={self.scales} give {self.num_prompts}"
            )
        if not 0 < self.template_momentum <= 1:
            raise ValueError(f"template_momentum must be in (0, 1], got {self.template_momentum!r}")
        if self.negative_points < 0:
            raise ValueError(f"negative_points must be >= 0, got {self.negative_points!r}")
        if self.decode_batch_size is not None and self.decode_batch_size < 0:
            raise ValueError(f"decode_batch_size must be >= 0 or None, got {self.decode_batch_size!r}")
        if self.min_mask_area < 1:
            raise ValueError(f"min_mask_area must be >= 1, got {self.min_mask_area!r}")
        if not 0 <= self.lost_iou <= 1:
            raise ValueError(f"lost_iou must be in [0, 1], got {self.lost_iou!r}")
        if self.lost_similarity < 0:
            raise ValueError(f"lost_similarity must be >= 0, got {self.lost_similarity!r}")
        if self.max_lost_frames is not None and self.max_lost_frames < 0:
            raise ValueError(f"max_lost_frames must be >= 0 or None, got {self.max_lost_frames!r}")
        if self.adaptive:
            if self.prompt_type != "box" or not self.multi_prompt or 1.0 not in self.scales:
                raise ValueError(
                    "adaptive=True needs box prompts, a multi-prompt grid and 1.0 in scales (its vanilla candidate), "
                    f"got prompt_type={self.prompt_type!r}, grid_size={self.grid_size}, scales={self.scales}"
                )
        for name in ("adaptive_similarity", "adaptive_iou"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)!r}")
        if self.adaptive_area < 0:
            raise ValueError(f"adaptive_area must be >= 0, got {self.adaptive_area!r}")
        if not 0 < self.adaptive_momentum <= 1:
            raise ValueError(f"adaptive_momentum must be in (0, 1], got {self.adaptive_momentum!r}")
        if not isinstance(self.adaptive_interval, int) or self.adaptive_interval < 0:
            raise ValueError(f"adaptive_interval must be an integer >= 0, got {self.adaptive_interval!r}")
        if self.overlap and self.adaptive:
            raise ValueError("overlap=True and adaptive=True cannot be combined (yet): choose one")
        for name in ("overlap_penalty", "overlap_hold"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        for name in ("occlusion_area", "occlusion_overlap"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)!r}")

    @property
    def num_prompts(self) -> int:
        """Prompts per object in the first stage (18 with the paper's defaults)."""
        if self.prompt_type == "point":
            return 1
        return self.grid_size**2 * len(self.scales)

    @property
    def multi_prompt(self) -> bool:
        return self.num_prompts > 1

    def replace(self, **kwargs) -> "SamPDConfig":
        return dataclasses.replace(self, **kwargs)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["scales"] = list(self.scales)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "SamPDConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown SamPDConfig settings: {sorted(unknown)}")
        return cls(**d)

    @classmethod
    def preset(cls, name: str, **overrides) -> "SamPDConfig":
        """A named paper ablation row (Tables III and V); see :data:`PRESETS`."""
        try:
            base = PRESETS[name]
        except KeyError:
            raise ValueError(f"unknown preset {name!r}; choose one of {list(PRESETS)}") from None
        return cls(**{**base, **overrides})


_SINGLE = dict(grid_size=1, scales=(1.0,), selection="none")

#: Paper rows, in the paper's order (DAVIS 2017 val J&F with ViT-H in the comments): Table III, then Table V (whose
#: last row, negatives in both stages, is ``"full"``). Every preset reproduces its row as written; the switches
#: (``negatives_*``, ``selection``, ``similarity``) stay available as overrides. Negative points are part of the
#: pipeline in every stage a row runs (Sec. III-D, Fig. 2): Table IV's 1x1 row (68.4 / 65.9 / 71.0), the full method
#: with one box, is Table III's "Box + Mask Refine" row, so Table III's rows keep them and the two Table V rows are
#: the only ones that switch them off.
PRESETS = {
    "point": dict(prompt_type="point", refine=False, **_SINGLE),  # III row 1: 33.0
    "point+refine": dict(prompt_type="point", refine=True, **_SINGLE),  # III row 2: 49.5
    "box": dict(refine=False, **_SINGLE),  # III row 3: 67.2
    "box+mp": dict(refine=False),  # III row 4: 69.0
    "box+refine": dict(refine=True, **_SINGLE),  # III row 5 = IV row 1 (1x1): 68.4
    "full": dict(),  # III rows 6 and 8 ("semantic-based"), V row 3: 71.3
    "full-iou": dict(selection="iou_prev"),  # III row 7, "IoU-based": 70.2
    "full-no-neg-refine": dict(negatives_in_refinement=False),  # V row 1, negatives in the multi-prompt stage: 70.4
    "full-no-neg-mp": dict(negatives_in_first_stage=False),  # V row 2, negatives in the refinement: 70.4
    # our extension, not a paper row: the grid only where the vanilla candidate looks suspect
    "adaptive": dict(adaptive=True),
    # our extension, not a paper row: objects tracked jointly where they touch, cross and occlude each other
    "overlap": dict(overlap=True),
}
#: presets that are not paper rows (listed after them)
EXTENSION_PRESETS = ("adaptive", "overlap")
#: the config of a job that names none (``config=None``): the paper's full method
DEFAULT_PRESET = "full"

#: a short description of each preset with its paper table row (DAVIS 2017 val J&F, ViT-H), for forms and tables
PRESET_LABELS = {
    "point": "point prompt (Table III: 33.0 J&F)",
    "point+refine": "point + refinement (Table III: 49.5)",
    "box": "box, vanilla SAM-PD (Table III: 67.2)",
    "box+mp": "box + multi-prompt (Table III: 69.0)",
    "box+refine": "box + refinement (Table III: 68.4 = Table IV 1x1)",
    "full": "full SAM-PD: box + multi-prompt + refinement, negatives in both stages (Tables III/V: 71.3)",
    "full-iou": "full, IoU-based many-to-one: IoU with the previous mask instead of Eq. 2 (Table III: 70.2)",
    "full-no-neg-refine": "full, negative points in the multi-prompt stage only (Table V: 70.4)",
    "full-no-neg-mp": "full, negative points in the refinement only (Table V: 70.4)",
    "adaptive": "adaptive: full, but the 18-box grid only where the vanilla box looks suspect (not in the paper)",
    "overlap": "overlap-aware: full, with objects kept apart where they touch, cross and occlude (not in the paper)",
}


#: what a config may be given as: ``None`` (the paper's full method), a preset name, a dict of settings, or a config
ConfigLike = Union[None, str, dict, SamPDConfig]


def as_config(config: ConfigLike = None) -> SamPDConfig:
    """The one parser of :data:`ConfigLike` values: ``None`` -> the paper's full method, a preset name
    (:data:`PRESETS`), a dict of settings, or a config (validated). ``ValueError`` / ``TypeError`` name the
    problem."""
    if config is None:
        return SamPDConfig.preset(DEFAULT_PRESET)
    if isinstance(config, SamPDConfig):
        config.validate()
        return config
    if isinstance(config, str):
        return SamPDConfig.preset(config)
    if isinstance(config, dict):
        return SamPDConfig.from_dict(config)
    raise TypeError(f"config must be None, a preset name, a dict or a SamPDConfig, got {type(config).__name__}")


def _choice(name, value, choices):
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")
