"""SAM-PD configuration: one dataclass with the paper's defaults, and named presets for the ablation rows.

Paper defaults (Sec. IV-A): box prompts, a 3x3 grid of shifts with a step of 10 % of the box side, scales
{1.0, 1.05} (18 prompts), semantic-similarity selection against a fixed frame-0 template (Eq. 2), point refinement
keeping the largest of SAM's three masks, negative points from the other objects in both stages (Table V).

This module imports no FiftyOne.
"""

from __future__ import annotations

import dataclasses
from typing import Optional, Tuple

PROMPT_TYPES = ("box", "point")
SELECTIONS = ("similarity", "iou", "none")
TEMPLATES = ("fixed", "update")
MULTIMASK_PICKS = ("largest", "max_iou_prev")


@dataclasses.dataclass
class SamPDConfig:
    """Settings of :class:`sampd_plugin.tracker.SamPDTracker`.

    Attributes:
        prompt_type: ``"box"`` propagates the box of the previous mask (Sec. III-B); ``"point"`` propagates the
            point of the previous mask farthest from its boundary (Table III, rows 1-2)
        grid_size: side of the grid of shifted boxes of the one-to-many stage (Sec. III-C); 1 disables it
        shift_step: grid step as a fraction of the box width/height
        scales: box scale factors placed at every grid position
        selection: many-to-one pick: ``"similarity"`` (Eq. 2), ``"iou"`` (SAM's predicted IoU, Table III) or
            ``"none"`` (only valid with a single prompt)
        template: ``"fixed"`` frame-0 template (the paper's choice, footnote 2) or ``"update"`` (an extension:
            the template is blended with the chosen candidate's each frame with weight ``template_momentum``)
        template_momentum: weight of the new template in ``"update"`` mode
        refine: run the point-based mask refinement (Sec. III-D)
        multimask_pick: ``"largest"`` area (DAVIS) or ``"max_iou_prev"`` IoU with the previous mask (parts,
            YouTube-VOS)
        negative_points: max number of negative points per other object (0 disables them)
        negatives_in_first_stage: also give negative points with the box prompts (Table V, row 1)
        negatives_in_refinement: give negative points in the refinement stage (Table V, row 2)
        decode_batch_size: prompts per decoder call; ``None`` = the backend's measured preference (unlimited on
            CUDA), ``0`` = unlimited
        min_mask_area: a mask with fewer pixels than this marks its object lost
        lost_iou: an output mask whose SAM predicted IoU is below this marks its object lost (0 disables)
        lost_similarity: an output mask whose Eq. 2 similarity to the template, relative to the template's
            similarity with itself, is below this marks its object lost (0 disables)
        reacquire: keep prompting a lost object with its last good box to re-acquire it
        max_lost_frames: give up re-acquiring after this many consecutive lost frames (``None`` = never)
    """

    prompt_type: str = "box"
    grid_size: int = 3
    shift_step: float = 0.10
    scales: Tuple[float, ...] = (1.0, 1.05)
    selection: str = "similarity"
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

    def __post_init__(self):
        self.scales = tuple(float(s) for s in self.scales)
        self.validate()

    def validate(self):
        """Raises ``ValueError`` naming the first invalid setting."""
        _choice("prompt_type", self.prompt_type, PROMPT_TYPES)
        _choice("selection", self.selection, SELECTIONS)
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
        """A named paper ablation row (Table III); see :data:`PRESETS`."""
        try:
            base = PRESETS[name]
        except KeyError:
            raise ValueError(f"unknown preset {name!r}; choose one of {list(PRESETS)}") from None
        return cls(**{**base, **overrides})


_SINGLE = dict(grid_size=1, scales=(1.0,), selection="none")

#: Paper Table III rows (DAVIS 2017 val J&F with ViT-H in the comments) and the IoU-selection variant.
PRESETS = {
    "point": dict(prompt_type="point", refine=False, **_SINGLE),  # 33.0
    "point+refine": dict(prompt_type="point", refine=True, **_SINGLE),  # 49.5
    "box": dict(refine=False, **_SINGLE),  # 67.2
    "box+mp": dict(refine=False),  # 69.0
    "box+refine": dict(refine=True, **_SINGLE),  # 68.4
    "full": dict(),  # 71.3
    "full-iou": dict(selection="iou"),  # 70.2
}

#: a short description of each preset with its paper table row (DAVIS 2017 val J&F, ViT-H), for forms and tables
PRESET_LABELS = {
    "point": "point prompt (Table III: 33.0 J&F)",
    "point+refine": "point + refinement (49.5)",
    "box": "box, vanilla SAM-PD (67.2)",
    "box+mp": "box + multi-prompt (69.0)",
    "box+refine": "box + refinement (68.4)",
    "full": "full SAM-PD: box + multi-prompt + refinement (71.3)",
    "full-iou": "full, IoU selection instead of Eq. 2 (70.2)",
}


def _choice(name, value, choices):
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")
