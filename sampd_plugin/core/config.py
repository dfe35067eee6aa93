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

from sampd_plugin.core import checks
from sampd_plugin.errors import SampdInputError

PROMPT_TYPES = ("box", "point")
SELECTIONS = ("similarity", "iou_prev", "predicted_iou", "none")
#: old name of ``"predicted_iou"`` (before ``"iou_prev"`` existed), still accepted so stored run settings load
SELECTION_ALIASES = {"iou": "predicted_iou"}
SIMILARITIES = ("dot", "cosine")
TEMPLATES = ("fixed", "update")
MULTIMASK_PICKS = ("largest", "max_iou_prev")
#: upper bounds of the settings that size the work per object and frame (:meth:`SamPDConfig.validate`): the paper's
#: largest grid is 5x5 with 2 scales (Table IV, 50 prompts)
MAX_GRID_SIZE = 15
MAX_PROMPTS = 512
MAX_NEGATIVE_POINTS = 16
MAX_SCALE = 4.0


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
        if isinstance(self.scales, (str, bytes)) or not isinstance(self.scales, (list, tuple)):
            raise SampdInputError(f"scales must be a list of numbers, got {self.scales!r}")
        self.scales = tuple(checks.number(f"scales[{i}]", s, 0, MAX_SCALE, low_open=True)
                            for i, s in enumerate(self.scales))
        if isinstance(self.selection, str):
            self.selection = SELECTION_ALIASES.get(self.selection, self.selection)
        self.validate()

    def validate(self):
        """Raises :class:`~sampd_plugin.errors.SampdInputError` (a ``ValueError``) naming the first invalid setting:
        by type (counts are integers, thresholds finite numbers, switches bools; strings are never read as numbers)
        and by range, with upper bounds on what sizes the work (:data:`MAX_GRID_SIZE`, :data:`MAX_PROMPTS`,
        :data:`MAX_NEGATIVE_POINTS`)."""
        checks.choice("prompt_type", self.prompt_type, PROMPT_TYPES)
        checks.choice("selection", self.selection, SELECTIONS)
        checks.choice("similarity", self.similarity, SIMILARITIES)
        checks.choice("template", self.template, TEMPLATES)
        checks.choice("multimask_pick", self.multimask_pick, MULTIMASK_PICKS)
        checks.integer("grid_size", self.grid_size, 1, MAX_GRID_SIZE)
        if self.grid_size % 2 == 0:
            raise SampdInputError(f"grid_size must be an odd integer >= 1, got {self.grid_size!r}")
        checks.number("shift_step", self.shift_step, 0, 1)
        if self.shift_step == 1:
            raise SampdInputError(f"shift_step must be in [0, 1), got {self.shift_step!r}")
        if not self.scales:
            raise SampdInputError(f"scales must be positive, got {self.scales!r}")
        for i, s in enumerate(self.scales):
            checks.number(f"scales[{i}]", s, 0, MAX_SCALE, low_open=True)
        if self.num_prompts > MAX_PROMPTS:
            raise SampdInputError(
                f"grid_size={self.grid_size} and {len(self.scales)} scales give {self.num_prompts} prompts per "
                f"object and frame; at most {MAX_PROMPTS}")
        if self.selection == "none" and self.num_prompts > 1:
            raise SampdInputError(
                f"selection='none' needs a single prompt per object, but grid_size={self.grid_size} and "
                f"scales={self.scales} give {self.num_prompts}"
            )
        checks.number("template_momentum", self.template_momentum, 0, 1, low_open=True)
        for name in ("refine", "negatives_in_first_stage", "negatives_in_refinement", "reacquire", "adaptive"):
            checks.flag(name, getattr(self, name))
        checks.integer("negative_points", self.negative_points, 0, MAX_NEGATIVE_POINTS)
        checks.integer("decode_batch_size", self.decode_batch_size, 0, allow_none=True)
        checks.integer("min_mask_area", self.min_mask_area, 1)
        checks.number("lost_iou", self.lost_iou, 0, 1)
        checks.number("lost_similarity", self.lost_similarity, 0)
        checks.integer("max_lost_frames", self.max_lost_frames, 0, allow_none=True)
        if self.adaptive:
            if self.prompt_type != "box" or not self.multi_prompt or 1.0 not in self.scales:
                raise SampdInputError(
                    "adaptive=True needs box prompts, a multi-prompt grid and 1.0 in scales (its vanilla candidate), "
                    f"got prompt_type={self.prompt_type!r}, grid_size={self.grid_size}, scales={self.scales}"
                )
        checks.number("adaptive_similarity", self.adaptive_similarity, 0, 1)
        checks.number("adaptive_iou", self.adaptive_iou, 0, 1)
        checks.number("adaptive_area", self.adaptive_area, 0)
        checks.number("adaptive_momentum", self.adaptive_momentum, 0, 1, low_open=True)
        checks.integer("adaptive_interval", self.adaptive_interval, 0)
        checks.flag("overlap", self.overlap)
        if self.overlap and self.adaptive:
            raise SampdInputError("overlap=True and adaptive=True cannot be combined (yet): choose one")
        checks.flag("overlap_exclusive", self.overlap_exclusive)
        checks.flag("overlap_occlusion", self.overlap_occlusion)
        checks.number("overlap_penalty", self.overlap_penalty, 0)
        checks.number("overlap_hold", self.overlap_hold, 0)
        checks.number("occlusion_area", self.occlusion_area, 0, 1)
        checks.number("occlusion_overlap", self.occlusion_overlap, 0, 1)

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
        if not isinstance(d, dict):
            raise SampdInputError(f"a SamPDConfig dict must be a dict of settings, got {d!r}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise SampdInputError(f"unknown SamPDConfig settings: {sorted(map(str, unknown))}")
        return cls(**d)

    @property
    def preset_name(self) -> Optional[str]:
        """The name of the preset (:data:`PRESETS`) that this configuration is, or ``None`` (settings of its own)."""
        return next((name for name in PRESETS if SamPDConfig.preset(name) == self), None)

    @classmethod
    def preset(cls, name: str, **overrides) -> "SamPDConfig":
        """A named paper ablation row (Tables III and V); see :data:`PRESETS`."""
        if not isinstance(name, str) or name not in PRESETS:
            raise SampdInputError(f"unknown preset {name!r}; choose one of {list(PRESETS)}")
        base = PRESETS[name]
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
#: the config of a job that names none (``config=None``), per mode: overlap-aware tracking (our extension, not a paper
#: row) for prompted tracking (``"track"``), which on generated videos keeps identities where objects touch, cross and
#: occlude each other and loses nothing where they stay apart (README, "Method options"; ``config="full"`` is the
#: paper's method); adaptive denoising (our extension, not a paper row) in automatic mode (``"auto"``), where tens to 100
#: objects per frame make 18 boxes per object the bulk of the work: about a quarter of ``full``'s decoder passes at
#: 10 / 30 / 100 objects on the synthetic benchmark, J&F within about a point of it (docs/performance.md, "Many
#: objects"). The paper's VIS setting is ``config="full"``.
DEFAULT_PRESETS = {"track": "overlap", "auto": "adaptive"}

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


#: what a config may be given as: ``None`` (the mode's :data:`DEFAULT_PRESETS`), a preset name, a dict of settings,
#: or a config
ConfigLike = Union[None, str, dict, SamPDConfig]


def as_config(config: ConfigLike = None, mode: str = "track") -> SamPDConfig:
    """The one parser of :data:`ConfigLike` values: ``None`` -> the mode's :data:`DEFAULT_PRESETS` (``"track"``: the
    paper's full method), a preset name (:data:`PRESETS`), a dict of settings, or a config (validated). Raises
    :class:`~sampd_plugin.errors.SampdInputError` naming the problem (``error.field``: ``"config"``)."""
    try:
        if config is None:
            return SamPDConfig.preset(DEFAULT_PRESETS[mode])
        if isinstance(config, SamPDConfig):
            config.validate()
            return config
        if isinstance(config, str):
            return SamPDConfig.preset(config)
        if isinstance(config, dict):
            return SamPDConfig.from_dict(config)
    except (ValueError, TypeError) as e:
        raise SampdInputError(str(e), field="config") from None
    raise SampdInputError(f"config must be None, a preset name, a dict or a SamPDConfig, got {config!r}",
                          field="config")
