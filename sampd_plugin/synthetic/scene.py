"""Generated videos with exact ground truth, for tests, benchmarks and the synthetic backend.

A :class:`SyntheticScene` is a video defined in closed form by a seed: every frame is rendered on demand from
per-object parameters (shape, texture, colour, depth, a smooth trajectory, a scale and rotation schedule), so a
scene holds no per-frame arrays and a 1000-frame scene costs the same memory as a 30-frame one.

What a scene contains (the difficulties SAM-PD is about, paper Sec. III):

- ``num_objects`` objects with distinct colours *and* textures (stripes, checker, dots, rings, ...) and
  non-rectangular shapes (``ellipse``, ``blob``, ``polygon``, non-convex ``star``);
- smooth motion (at most ~10 % of the object's size per frame; the exiting object peaks at ~15 %), slow scale and
  rotation changes;
- occlusions, with a fixed depth order (:attr:`SyntheticScene.depth_order`, front first);
- one object (:attr:`SyntheticScene.exiting_object`) whose trajectory leaves the frame entirely and comes back,
  periodically (period ``clip(num_frames - 1, 24, 80)`` frames: with 24 frames or more it is fully out for a
  few frames, ~13 % of the period, and visible again by the last frame);
- optional late starts (``start_frames``, YouTube-VOS protocol);
- a textured background that drifts slowly.

Conventions: frame numbers are 1-based; images are ``(H, W, 3)`` uint8 RGB; object ids are ``1..num_objects``
(0 is background in id maps); pixel boxes are ``xyxy`` with exclusive ends (:func:`mask_box`).

This module imports no FiftyOne; videos and FiftyOne datasets of scenes are built by
:mod:`sampd_plugin.synthetic.dataset`.
"""

from __future__ import annotations

import colorsys
import dataclasses
from typing import Dict, Iterator, List, Optional, Tuple

import numpy as np

from sampd_plugin.core.prompts import mask_to_box

SHAPES = ("ellipse", "blob", "polygon", "star")
TEXTURES = ("stripes", "checker", "dots", "rings", "diagonal", "grid")

#: per-frame motion limit, as a fraction of the object's mean diameter (non-exiting objects)
MAX_SPEED = 0.10
#: the scene-parameter keys stored on dataset samples (see :meth:`SyntheticScene.params`)
PARAM_KEYS = ("seed", "num_frames", "num_objects", "height", "width", "start_frames", "scenario", "object_size")
#: what the scene is about: ``"standard"`` (objects meet now and then, one leaves and re-enters) or ``"crossing"``
#: (objects that touch, cross and occlude each other, two of them look alike; ``_make_crossing_objects``)
SCENARIOS = ("standard", "crossing")
#: where a generated sequence keeps its scene's :attr:`SyntheticScene.params`: the sample field of the FiftyOne
#: datasets of :mod:`sampd_plugin.synthetic.dataset` (on every sample), the value a segmenter finds under this name
#: (:meth:`sampd_plugin.backends.base.PromptableSegmenter.for_sequence`)
SCENE_FIELD = "synthetic"


@dataclasses.dataclass(frozen=True)
class ObjectSpec:
    """Closed-form description of one object (all lengths in pixels, angles in radians, times in frames).

    The object's outline in its own rotated frame is ``rho < radius * R(theta)`` with the shape's radial function
    ``R`` (mean 1 over ``theta``); its centre, radius and angle at frame ``t`` are given by
    :meth:`SyntheticScene.object_state`.
    """

    object_id: int
    shape: str
    texture: str
    color: Tuple[int, int, int]  # bright tone (RGB)
    color2: Tuple[int, int, int]  # dark tone (RGB)
    depth: int  # 0 = front-most
    start_frame: int
    radius: float  # mean radius at scale 1
    shape_params: Tuple[float, ...]
    r_norm: float  # divides the raw radial function so that its mean is 1
    r_max: float  # max of the normalised radial function
    texture_freq: float
    # trajectory (non-exiting objects): the centre oscillates through the meeting point c0 along `direction`,
    #   c0 + amp sin(2 pi (t - start) / period + phase) (cos d, sin d) + a small perpendicular wobble,
    # so that objects cross the middle of the frame at different times (occlusions)
    c0: Tuple[float, float]
    direction: float
    amp: float
    period: float
    phase: float
    wobble_amp: float
    wobble_period: float
    wobble_phase: float
    scale_amp: float
    scale_period: float
    scale_phase: float
    angle0: float
    spin: float  # radians per frame
    exit_edge: Optional[str] = None  # "left" | "right" | "top" | "bottom" for the exiting object
    exit_period: float = 0.0


@dataclasses.dataclass(frozen=True)
class ObjectState:
    """An object's pose on one frame: centre ``(cx, cy)`` pixels, mean radius pixels, rotation radians."""

    cx: float
    cy: float
    radius: float
    angle: float


def mask_box(mask: np.ndarray) -> Optional[np.ndarray]:
    """Tight ``(4,)`` ``xyxy`` pixel box ``(x0, y0, x1 + 1, y1 + 1)`` of a bool mask (``None`` if empty).

    The one box convention of the library (:func:`sampd_plugin.core.prompts.mask_to_box`), re-exported here.
    """
    return mask_to_box(mask)


class SyntheticScene:
    """A deterministic, lazily rendered synthetic video with exact ground truth.

    Args:
        seed: everything is derived from it (same seed -> identical frames)
        num_frames: video length
        num_objects: objects, with ids ``1..num_objects``
        height, width: frame size in pixels
        start_frames: optional ``{object_id: first frame}``; the object does not exist before that frame
        object_size: scales every object's radius (1: 10-15 % of the frame's smaller side) and spreads the points
            where trajectories meet by its inverse (1: within 10 % of the frame of its centre; at most 40 %): many
            objects, as in automatic mode, need smaller ones spread over the frame to be visible
    """

    def __init__(
        self,
        seed: int = 0,
        num_frames: int = 30,
        num_objects: int = 3,
        height: int = 480,
        width: int = 854,
        start_frames: Optional[Dict[int, int]] = None,
        scenario: str = "standard",
        object_size: float = 1.0,
    ):
        if scenario not in SCENARIOS:
            raise ValueError(f"scenario must be one of {SCENARIOS}, got {scenario!r}")
        if num_frames < 1 or num_objects < 1 or height < 16 or width < 16:
            raise ValueError(
                f"need num_frames >= 1, num_objects >= 1 and a frame of at least 16x16, got {num_frames} frames, "
                f"{num_objects} objects, {height}x{width}"
            )
        start_frames = {int(k): int(v) for k, v in (start_frames or {}).items()}
        bad = {k: v for k, v in start_frames.items() if not (1 <= k <= num_objects and 1 <= v <= num_frames)}
        if bad:
            raise ValueError(
                f"start_frames must map object ids 1..{num_objects} to frames 1..{num_frames}, got {bad}"
            )
        self.seed = int(seed)
        self.num_frames = int(num_frames)
        self.num_objects = int(num_objects)
        self.height = int(height)
        self.width = int(width)
        self.start_frames = start_frames
        self.scenario = scenario
        if not object_size > 0:
            raise ValueError(f"object_size must be > 0, got {object_size}")
        self.object_size = float(object_size)
        rng = np.random.default_rng([self.seed, 0x5A3D])
        self._make_background(rng)
        make = self._make_crossing_objects if scenario == "crossing" else self._make_objects
        self.objects: List[ObjectSpec] = make(rng)

    # --- parameters -------------------------------------------------------------------------------------------
    @property
    def params(self) -> dict:
        """JSON/MongoDB-safe parameters that rebuild this exact scene with :meth:`from_params`
        (``start_frames`` keys are strings; ``object_size`` only when it is not 1)."""
        params = dict(
            seed=self.seed,
            num_frames=self.num_frames,
            num_objects=self.num_objects,
            height=self.height,
            width=self.width,
            start_frames={str(k): v for k, v in sorted(self.start_frames.items())},
            scenario=self.scenario,
        )
        if self.object_size != 1:
            params["object_size"] = self.object_size
        return params

    @classmethod
    def from_params(cls, params: dict) -> "SyntheticScene":
        """Rebuilds a scene from :attr:`params` (e.g. a dataset sample's ``synthetic`` field)."""
        d = dict(params)
        missing = [k for k in PARAM_KEYS if k not in d and k not in ("start_frames", "scenario", "object_size")]
        if missing:
            raise ValueError(f"synthetic scene parameters lack {missing}: {params!r}")
        return cls(**{k: d[k] for k in PARAM_KEYS if d.get(k) is not None})

    def __repr__(self):
        return (
            f"SyntheticScene(seed={self.seed}, num_frames={self.num_frames}, num_objects={self.num_objects}, "
            f"height={self.height}, width={self.width}, start_frames={self.start_frames or None}"
            + (f", scenario={self.scenario!r}" if self.scenario != "standard" else "")
            + (f", object_size={self.object_size})" if self.object_size != 1 else ")")
        )

    @property
    def object_ids(self) -> List[int]:
        return [o.object_id for o in self.objects]

    @property
    def labels(self) -> Dict[int, str]:
        """``{object_id: class name}``; the class is the object's shape."""
        return {o.object_id: o.shape for o in self.objects}

    @property
    def depth_order(self) -> List[int]:
        """Object ids front-most first (an object occludes every object after it)."""
        return [o.object_id for o in sorted(self.objects, key=lambda o: o.depth)]

    def occludes(self, a: int, b: int) -> bool:
        """Whether object ``a`` is in front of object ``b``."""
        return self.spec(a).depth < self.spec(b).depth

    @property
    def exiting_object(self) -> Optional[int]:
        """The id of the object whose trajectory leaves the frame entirely and re-enters (``None`` in the
        ``"crossing"`` scenario, where every object stays in view)."""
        return next((o.object_id for o in self.objects if o.exit_edge is not None), None)

    def spec(self, object_id: int) -> ObjectSpec:
        if not 1 <= object_id <= self.num_objects:
            raise KeyError(f"no object {object_id}; ids are 1..{self.num_objects}")
        return self.objects[object_id - 1]

    # --- generation ---------------------------------------------------------------------------------------------
    def _make_background(self, rng):
        h, w = self.height, self.width
        s = min(h, w)
        hue = rng.uniform()
        self._bg_color = np.array(colorsys.hsv_to_rgb(hue, rng.uniform(0.12, 0.25), rng.uniform(0.45, 0.6))) * 255
        self._bg_tint = np.array(colorsys.hsv_to_rgb((hue + 0.5) % 1, 1.0, 1.0)) - 0.5
        # luminance gratings (3) and one tint grating: (kx, ky, phase, amplitude), k in radians per pixel
        gratings = []
        for amplitude in (0.09, 0.06, 0.05, 0.08):
            period = rng.uniform(0.08, 0.35) * s
            theta = rng.uniform(0, np.pi)
            k = 2 * np.pi / period
            gratings.append((k * np.cos(theta), k * np.sin(theta), rng.uniform(0, 2 * np.pi), amplitude))
        self._bg_gratings = gratings
        self._bg_noise = rng.uniform(-0.06, 0.06, size=(32, 32)).astype(np.float32)
        speed = rng.uniform(0.15, 0.5)  # pixels per frame: a slow pan
        ang = rng.uniform(0, 2 * np.pi)
        self._bg_drift = (speed * np.cos(ang), speed * np.sin(ang))

    def _draw_looks(self, rng):
        """The draws every scenario starts its objects with, in this order (a scene of a given seed depends on it):
        the shape and texture orders, the first hue, the depth order; and the objects' start frames."""
        n = self.num_objects
        shapes = [SHAPES[i] for i in rng.permutation(len(SHAPES))]
        textures = [TEXTURES[i] for i in rng.permutation(len(TEXTURES))]
        hue0 = rng.uniform()
        depths = rng.permutation(n)
        starts = {i: self.start_frames.get(i, 1) for i in range(1, n + 1)}
        return shapes, textures, hue0, depths, starts

    def _make_objects(self, rng) -> List[ObjectSpec]:
        n, h, w = self.num_objects, self.height, self.width
        s = min(h, w)
        shapes, textures, hue0, depths, starts = self._draw_looks(rng)
        first = min(starts.values())
        exiter = next(i for i in range(1, n + 1) if starts[i] == first)
        exit_period = float(np.clip(self.num_frames - 1, 24, 80))
        spread = min(0.4, 0.1 / self.object_size)  # meeting points within +-10 % of the frame of its centre (size 1)

        best, best_overlap = None, np.inf
        for _attempt in range(60):
            specs = []
            for i in range(1, n + 1):
                shape = shapes[(i - 1) % len(shapes)]
                texture = textures[(i - 1) % len(textures)]
                bright, dark = _tones((hue0 + (i - 1) / n) % 1.0)
                params = _shape_params(shape, rng)
                r_norm, r_max = _radial_norms(shape, params)
                radius = rng.uniform(0.10, 0.15) * s * self.object_size
                start = starts[i]
                scale_amp = rng.uniform(0.1, 0.25)
                scale_period = rng.uniform(50, 90)
                common = dict(
                    object_id=i,
                    shape=shape,
                    texture=texture,
                    color=bright,
                    color2=dark,
                    depth=int(depths[i - 1]),
                    start_frame=start,
                    radius=radius,
                    shape_params=tuple(float(p) for p in params),
                    r_norm=r_norm,
                    r_max=r_max,
                    texture_freq=rng.uniform(2.0, 3.0),
                    scale_period=scale_period,
                    scale_phase=rng.uniform(0, 2 * np.pi),
                    angle0=rng.uniform(0, 2 * np.pi),
                    spin=rng.uniform(-0.02, 0.02),
                )
                wobble = dict(
                    wobble_amp=rng.uniform(0.1, 0.3) * radius,
                    wobble_period=rng.uniform(40, 80),
                    wobble_phase=rng.uniform(0, 2 * np.pi),
                )
                if i == exiter:
                    edge = str(rng.choice(["left", "right", "top", "bottom"]))
                    along = w if edge in ("top", "bottom") else h
                    c_along = rng.uniform(0.3, 0.7) * along
                    spec = ObjectSpec(
                        **common, **wobble, c0=(c_along, c_along), direction=0.0, amp=0.0, period=1.0, phase=0.0,
                        scale_amp=0.08, exit_edge=edge, exit_period=exit_period,
                    )
                else:
                    # at most MAX_SPEED of the (smallest) diameter per frame, wobble included
                    speed = rng.uniform(0.55, 0.85) * MAX_SPEED * 2 * radius * (1 - scale_amp)
                    period = rng.uniform(90, 160)
                    amp = min(speed * period / (2 * np.pi), 0.4 * s)
                    t_meet = rng.uniform(0.15, 0.85) * self.num_frames  # passes c0 then (frames after start)
                    spec = ObjectSpec(
                        **common, **wobble,
                        c0=(w / 2 + rng.uniform(-spread, spread) * w, h / 2 + rng.uniform(-spread, spread) * h),
                        direction=rng.uniform(0, 2 * np.pi), amp=amp, period=period,
                        phase=-2 * np.pi * t_meet / period, scale_amp=scale_amp,
                    )
                specs.append(spec)
            overlap = self._start_overlap(specs)
            if overlap < best_overlap:
                best, best_overlap = specs, overlap
            if overlap <= 0:
                break
        return best

    def _make_crossing_objects(self, rng) -> List[ObjectSpec]:
        """The ``"crossing"`` scenario: objects 1 and 2 look alike (same shape class and texture, hues at most 0.04
        apart) and cross each other's path near the frame's centre at about the same time, half-way through the
        video; object 3 brushes past object 1 a little later (their outlines touch or overlap by up to about half
        a radius); further objects cross the centre at other times. Motion is nearly straight (a sine of period
        six times the video's length) at the standard speeds; the depth order is random, so who passes in front
        varies. Every object starts apart from the others and stays in view (drawn again, up to 100 times, when
        not)."""
        n, h, w, num_frames = self.num_objects, self.height, self.width, self.num_frames
        s = min(h, w)
        shapes, textures, hue0, depths, starts = self._draw_looks(rng)
        centre = np.array([w / 2 + rng.uniform(-0.05, 0.05) * w, h / 2 + rng.uniform(-0.05, 0.05) * h])
        period = 6.0 * max(num_frames, 10)

        best, best_bad = None, np.inf
        for _attempt in range(100):
            specs: List[ObjectSpec] = []
            t_cross = rng.uniform(0.45, 0.55) * num_frames  # objects 1 and 2 cross (frames after frame 1)
            heading = rng.uniform(0, 2 * np.pi)
            for i in range(1, n + 1):
                look = 1 if i == 2 else i  # object 2 looks like object 1
                shape = shapes[(look - 1) % len(shapes)]
                hue = (hue0 + (rng.uniform(0, 0.04) if i == 2 else (i - 1) / n)) % 1.0
                bright, dark = _tones(hue)
                params = _shape_params(shape, rng)
                r_norm, r_max = _radial_norms(shape, params)
                radius = rng.uniform(0.11, 0.15) * s * self.object_size
                scale_amp = rng.uniform(0.05, 0.15)
                speed = rng.uniform(0.55, 0.85) * MAX_SPEED * 2 * radius * (1 - scale_amp)
                if i == 1:
                    direction, c0, t_meet = heading, centre, t_cross
                elif i == 2:  # crosses object 1's path at an angle, at about the same time
                    direction = heading + rng.choice([-1, 1]) * rng.uniform(0.3, 0.75) * np.pi
                    c0, t_meet = centre, t_cross + rng.uniform(-0.04, 0.04) * num_frames
                elif i == 3:  # brushes past object 1: at its meeting time, their centres are about r1 + r3 apart
                    t_meet = t_cross + rng.uniform(0.15, 0.25) * num_frames
                    direction = heading + rng.choice([-1, 1]) * rng.uniform(0.25, 0.75) * np.pi
                    p1 = self._state(specs[0], t_meet + 1)
                    normal = np.array([-np.sin(direction), np.cos(direction)])
                    gap = (specs[0].radius + radius) * rng.uniform(0.55, 0.95)
                    c0 = np.array([p1.cx, p1.cy]) + rng.choice([-1, 1]) * gap * normal
                else:
                    direction, c0 = rng.uniform(0, 2 * np.pi), centre
                    t_meet = rng.uniform(0.25, 0.75) * num_frames
                specs.append(ObjectSpec(
                    object_id=i,
                    shape=shape,
                    texture=textures[(look - 1) % len(textures)],
                    color=bright,
                    color2=dark,
                    depth=int(depths[i - 1]),
                    start_frame=starts[i],
                    radius=radius,
                    shape_params=tuple(float(p) for p in params),
                    r_norm=r_norm,
                    r_max=r_max,
                    texture_freq=rng.uniform(2.0, 3.0),
                    c0=(float(c0[0]), float(c0[1])),
                    direction=float(direction),
                    amp=speed * period / (2 * np.pi),
                    period=period,
                    phase=-2 * np.pi * (t_meet + 1 - starts[i]) / period,
                    wobble_amp=rng.uniform(0.05, 0.15) * radius,
                    wobble_period=rng.uniform(40, 80),
                    wobble_phase=rng.uniform(0, 2 * np.pi),
                    scale_amp=scale_amp,
                    scale_period=rng.uniform(50, 90),
                    scale_phase=rng.uniform(0, 2 * np.pi),
                    angle0=rng.uniform(0, 2 * np.pi),
                    spin=rng.uniform(-0.02, 0.02),
                ))
            bad = self._start_overlap(specs) + self._out_of_view(specs)
            if bad < best_bad:
                best, best_bad = specs, bad
            if bad <= 0:
                break
        return best

    def _out_of_view(self, specs: List[ObjectSpec]) -> float:
        """How far (pixels, summed over objects) the objects' centres come closer than one mean radius to the
        frame's border on any frame; 0 when every object stays in view."""
        out = 0.0
        for spec in specs:
            for t in range(spec.start_frame, self.num_frames + 1):
                st = self._state(spec, t)
                r = st.radius
                out += max(0.0, r - st.cx, st.cx - (self.width - r), r - st.cy, st.cy - (self.height - r))
        return out

    def _start_overlap(self, specs: List[ObjectSpec]) -> float:
        """How much objects overlap (as discs) on each object's start frame; 0 when all start well apart."""
        worst = 0.0
        for t in sorted({a.start_frame for a in specs}):  # the objects that start on t against those present then
            present = [b for b in specs if b.start_frame <= t]
            starting = np.array([b.start_frame == t for b in present])
            states = [self._state(b, t) for b in present]
            cx, cy, r = (np.array([getattr(st, k) for st in states]) for k in ("cx", "cy", "radius"))
            gap = 1.1 * (r[:, None] + r[None, :]) - np.hypot(cx[:, None] - cx[None, :], cy[:, None] - cy[None, :])
            np.fill_diagonal(gap, -np.inf)
            worst = max(worst, float(gap[starting].max(initial=-np.inf)))
        return worst

    # --- closed-form state --------------------------------------------------------------------------------------
    def object_state(self, object_id: int, frame_number: int) -> Optional[ObjectState]:
        """The object's pose on ``frame_number`` (``None`` before its start frame)."""
        spec = self.spec(object_id)
        if frame_number < spec.start_frame:
            return None
        return self._state(spec, frame_number)

    def _state(self, spec: ObjectSpec, t: int) -> ObjectState:
        dt = float(t - spec.start_frame)
        radius = spec.radius * (1 + spec.scale_amp * np.sin(2 * np.pi * dt / spec.scale_period + spec.scale_phase))
        angle = spec.angle0 + spec.spin * dt
        wob = spec.wobble_amp * np.sin(2 * np.pi * dt / spec.wobble_period + spec.wobble_phase)
        if spec.exit_edge is None:
            a = spec.amp * np.sin(2 * np.pi * dt / spec.period + spec.phase)
            c, s_ = np.cos(spec.direction), np.sin(spec.direction)
            cx, cy = spec.c0[0] + a * c - wob * s_, spec.c0[1] + a * s_ + wob * c
        else:
            # out and back: the centre's signed distance past the edge (positive = outside) goes
            # -1.15 h -> +1.15 h -> -1.15 h per exit period, h = the shape's larger extent along the edge's normal
            # (support function): fully inside at the start, fully outside for ~13 % of the period around its middle
            nx, ny = {"left": (-1, 0), "right": (1, 0), "top": (0, -1), "bottom": (0, 1)}[spec.exit_edge]
            theta = np.linspace(0, 2 * np.pi, 256, endpoint=False)
            rr = _radial_raw(spec.shape, spec.shape_params, theta) / spec.r_norm * radius
            proj = rr * (np.cos(theta + angle) * nx + np.sin(theta + angle) * ny)
            h = float(max(proj.max(), -proj.min()))  # extent towards the edge and away from it
            offset = (1 - np.cos(2 * np.pi * dt / spec.exit_period)) / 2
            beyond = h * (-1.15 + 2.3 * offset)
            along = spec.c0[0] + wob
            cx, cy = {
                "left": (-beyond, along),
                "right": (self.width + beyond, along),
                "top": (along, -beyond),
                "bottom": (along, self.height + beyond),
            }[spec.exit_edge]
        return ObjectState(float(cx), float(cy), float(radius), float(angle))

    def background_offset(self, frame_number: int) -> Tuple[float, float]:
        """``(dx, dy)`` pixels the background texture has drifted by on ``frame_number`` since frame 1."""
        return tuple(float(d * (frame_number - 1)) for d in self._bg_drift)

    # --- rendering ----------------------------------------------------------------------------------------------
    def _object_pixels(self, spec: ObjectSpec, t: int, with_texture: bool):
        """The object's unoccluded pixels on frame ``t``: ``(window slices, inside (h, w) bool, pattern or None,
        shading or None)``, or ``None`` when it is absent or entirely outside the frame."""
        if t < spec.start_frame:
            return None
        st = self._state(spec, t)
        cx, cy = st.cx, st.cy
        ext = st.radius * spec.r_max + 1
        x0, x1 = max(0, int(np.floor(cx - ext))), min(self.width, int(np.ceil(cx + ext)) + 1)
        y0, y1 = max(0, int(np.floor(cy - ext))), min(self.height, int(np.ceil(cy + ext)) + 1)
        if x0 >= x1 or y0 >= y1:
            return None
        dx = (np.arange(x0, x1, dtype=np.float32) + 0.5 - cx)[None, :]
        dy = (np.arange(y0, y1, dtype=np.float32) + 0.5 - cy)[:, None]
        c, s = np.cos(st.angle), np.sin(st.angle)
        u = (c * dx + s * dy) / st.radius
        v = (-s * dx + c * dy) / st.radius
        rho = np.hypot(u, v)
        r_theta = _radial_raw(spec.shape, spec.shape_params, np.arctan2(v, u)) / spec.r_norm
        inside = rho < r_theta
        if not inside.any():
            return None
        window = (slice(y0, y1), slice(x0, x1))
        if not with_texture:
            return window, inside, None, None
        pattern = _texture(spec.texture, u, v, rho, spec.texture_freq)
        shading = 1.0 - 0.22 * (rho / np.maximum(r_theta, 1e-6)) ** 2
        return window, inside, pattern, shading

    def _check_frame(self, frame_number: int):
        if not 1 <= frame_number <= self.num_frames:
            raise ValueError(f"frame {frame_number} is outside 1..{self.num_frames}")

    def render_ids(self, frame_number: int) -> np.ndarray:
        """``(H, W)`` int32 map of the visible object's id per pixel (0 = background); cheaper than
        :meth:`render`."""
        self._check_frame(frame_number)
        ids = np.zeros((self.height, self.width), dtype=np.int32)
        for spec in sorted(self.objects, key=lambda o: -o.depth):  # back to front
            px = self._object_pixels(spec, frame_number, with_texture=False)
            if px is not None:
                window, inside = px[0], px[1]
                ids[window][inside] = spec.object_id
        return ids

    def render(self, frame_number: int) -> Tuple[np.ndarray, np.ndarray]:
        """Renders frame ``frame_number`` (1-based).

        Returns:
            ``(image, ids)``: ``(H, W, 3)`` uint8 RGB image and ``(H, W)`` int32 visible-object id map
            (0 = background)
        """
        self._check_frame(frame_number)
        img = self._background(frame_number)
        ids = np.zeros((self.height, self.width), dtype=np.int32)
        for spec in sorted(self.objects, key=lambda o: -o.depth):
            px = self._object_pixels(spec, frame_number, with_texture=True)
            if px is None:
                continue
            window, inside, pattern, shading = px
            col = np.where(pattern[..., None], np.array(spec.color2, np.float32), np.array(spec.color, np.float32))
            col = col * shading[..., None]
            patch = img[window]
            patch[inside] = col[inside]
            ids[window][inside] = spec.object_id
        return np.clip(img + 0.5, 0, 255).astype(np.uint8), ids

    def _background(self, t: int) -> np.ndarray:
        h, w = self.height, self.width
        ddx, ddy = self.background_offset(t)
        xs = np.arange(w, dtype=np.float32) - ddx
        ys = np.arange(h, dtype=np.float32) - ddy
        fields = []
        for kx, ky, ph, a in self._bg_gratings:
            # sin(kx x + ky y + ph), separably
            sx, cx = np.sin(kx * xs + ph), np.cos(kx * xs + ph)
            sy, cy = np.sin(ky * ys), np.cos(ky * ys)
            fields.append(a * (np.outer(cy, sx) + np.outer(sy, cx)))
        lum = 1.0 + fields[0] + fields[1] + fields[2]
        iy = (np.arange(h) + int(round(ddy))) % 32
        ix = (np.arange(w) + int(round(ddx))) % 32
        lum += self._bg_noise[np.ix_(iy, ix)]
        img = lum[..., None] * self._bg_color.astype(np.float32)
        img += (fields[3][..., None] * 255.0) * self._bg_tint.astype(np.float32)
        return img.astype(np.float32)

    def object_mask(self, object_id: int, frame_number: int) -> np.ndarray:
        """``(H, W)`` bool: the object's full (unoccluded) shape inside the frame; all False when absent."""
        self._check_frame(frame_number)
        out = np.zeros((self.height, self.width), dtype=bool)
        px = self._object_pixels(self.spec(object_id), frame_number, with_texture=False)
        if px is not None:
            out[px[0]] = px[1]
        return out

    def visible_masks(self, frame_number: int) -> Dict[int, np.ndarray]:
        """``{object_id: (H, W) bool}`` of the objects with at least one visible pixel on the frame."""
        ids = self.render_ids(frame_number)
        present = np.unique(ids)
        return {int(i): ids == i for i in present if i != 0}

    def ground_truth(self, frame_number: int) -> Dict[int, Tuple[np.ndarray, np.ndarray]]:
        """``{object_id: (box, mask)}`` for the visible objects: ``(4,)`` ``xyxy`` pixel box (:func:`mask_box`)
        and the full ``(H, W)`` bool visible mask."""
        return {i: (mask_box(m), m) for i, m in self.visible_masks(frame_number).items()}

    def iter_frames(self, start: int = 1, stop: Optional[int] = None) -> Iterator[Tuple[int, np.ndarray]]:
        """Yields ``(frame_number, (H, W, 3) uint8 RGB image)`` for frames ``start..stop`` (inclusive), lazily."""
        stop = self.num_frames if stop is None else min(stop, self.num_frames)
        for t in range(max(1, start), stop + 1):
            yield t, self.render(t)[0]


# --- shape and texture functions -----------------------------------------------------------------------------------
def _tones(hue: float) -> Tuple[Tuple[int, int, int], Tuple[int, int, int]]:
    """The ``(bright, dark)`` RGB tones of an object of hue ``hue`` in ``[0, 1)``."""
    bright = tuple(int(round(c * 255)) for c in colorsys.hsv_to_rgb(hue, 0.75, 0.95))
    dark = tuple(int(round(c * 255)) for c in colorsys.hsv_to_rgb(hue, 0.95, 0.45))
    return bright, dark


def _shape_params(shape: str, rng) -> Tuple[float, ...]:
    """Random parameters of a shape's radial function (:func:`_radial_raw`)."""
    if shape == "ellipse":
        return (rng.uniform(1.4, 2.2),)
    if shape == "blob":
        amps = rng.uniform(0.05, 0.13, 3) * rng.choice([-1, 1], 3)
        return tuple(amps) + tuple(rng.uniform(0, 2 * np.pi, 3))
    if shape == "polygon":
        return (float(rng.choice([3, 5, 6])),)
    return (float(rng.choice([4, 5])), rng.uniform(0.3, 0.4))


def _radial_norms(shape: str, params: Tuple[float, ...]) -> Tuple[float, float]:
    """``(r_norm, r_max)`` of a shape: the mean of its raw radial function, and the maximum once divided by it."""
    raw = _radial_raw(shape, params, np.linspace(0, 2 * np.pi, 720, endpoint=False))
    r_norm = float(raw.mean())
    return r_norm, float(raw.max() / r_norm)


def _radial_raw(shape: str, params: Tuple[float, ...], theta: np.ndarray) -> np.ndarray:
    """Unnormalised radial function ``R(theta)`` of a shape in its own frame."""
    if shape == "ellipse":
        a = np.sqrt(params[0])
        b = 1 / a
        return 1.0 / np.sqrt((np.cos(theta) / a) ** 2 + (np.sin(theta) / b) ** 2)
    if shape == "blob":
        amps, phases = params[:3], params[3:]
        r = np.ones_like(theta)
        for k, (a, ph) in enumerate(zip(amps, phases), start=2):
            r = r + a * np.cos(k * theta + ph)
        return r
    if shape == "polygon":
        n = params[0]
        seg = 2 * np.pi / n
        return np.cos(np.pi / n) / np.cos(np.mod(theta, seg) - np.pi / n)
    if shape == "star":
        n, depth = params
        return 1.0 + depth * np.cos(n * theta)
    raise ValueError(f"unknown shape {shape!r}")


def _texture(texture: str, u: np.ndarray, v: np.ndarray, rho: np.ndarray, f: float) -> np.ndarray:
    """Boolean two-tone pattern in the object's normalised coordinates (it moves, scales and turns with it)."""
    if texture == "stripes":
        return np.sin(2 * np.pi * f * u) > 0
    if texture == "checker":
        return (np.floor(u * f).astype(np.int64) + np.floor(v * f).astype(np.int64)) % 2 == 0
    if texture == "dots":
        fu, fv = np.mod(u * f * 1.3, 1.0) - 0.5, np.mod(v * f * 1.3, 1.0) - 0.5
        return fu**2 + fv**2 < 0.09
    if texture == "rings":
        return np.sin(2 * np.pi * f * rho) > 0
    if texture == "diagonal":
        return np.sin(2 * np.pi * f * (u + v) / np.sqrt(2)) > 0
    if texture == "grid":
        return (np.mod(u * f, 1.0) < 0.3) | (np.mod(v * f, 1.0) < 0.3)
    raise ValueError(f"unknown texture {texture!r}")
