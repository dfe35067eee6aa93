"""Generated videos with exact ground truth (sampd_plugin.synthetic): geometry, occlusion, exits, determinism,
laziness, the mp4 writer and the FiftyOne dataset."""

import json
import subprocess
import tracemalloc

import numpy as np
import pytest

from sampd_plugin.fo.labels import xyxy_to_relative
from sampd_plugin.synthetic import SHAPES, TEXTURES, SyntheticScene, mask_box, write_video

SMALL = dict(height=120, width=160)


@pytest.fixture(scope="module")
def scene():
    return SyntheticScene(seed=0, num_frames=30, num_objects=3, **SMALL)


def test_render_shapes_and_ids(scene):
    img, ids = scene.render(1)
    assert img.shape == (120, 160, 3) and img.dtype == np.uint8
    assert ids.shape == (120, 160) and ids.dtype == np.int32
    assert set(np.unique(ids)) <= {0, 1, 2, 3}
    assert np.array_equal(ids, scene.render_ids(1))
    with pytest.raises(ValueError):
        scene.render(0)
    with pytest.raises(ValueError):
        scene.render(31)


def test_visible_masks_partition_the_id_map(scene):
    for t in range(1, scene.num_frames + 1):
        ids = scene.render_ids(t)
        vis = scene.visible_masks(t)
        union = np.zeros_like(ids, dtype=bool)
        for oid, m in vis.items():
            assert m.any()
            assert np.array_equal(m, ids == oid)
            assert not (union & m).any()
            union |= m
        assert np.array_equal(union, ids > 0)


def test_mask_box_consistency_every_frame(scene):
    h, w = scene.height, scene.width
    for t in range(1, scene.num_frames + 1):
        for oid, (box, mask) in scene.ground_truth(t).items():
            x0, y0, x1, y1 = (int(v) for v in box)
            assert np.array_equal(box, [x0, y0, x1, y1])
            crop = mask[y0:y1, x0:x1]
            assert crop.sum() == mask.sum()  # every pixel inside the box
            # tight: the crop touches all four sides
            assert crop[0].any() and crop[-1].any() and crop[:, 0].any() and crop[:, -1].any()
            rx, ry, rw, rh = xyxy_to_relative(box, (h, w))
            assert (round(rx * w), round(ry * h), round((rx + rw) * w), round((ry + rh) * h)) == (x0, y0, x1, y1)


def test_mask_box_empty_is_none():
    assert mask_box(np.zeros((4, 5), bool)) is None


def _overlaps(scene, frames):
    """(frame, a, b) for pairs of objects whose full shapes overlap."""
    out = []
    for t in frames:
        full = {o: scene.object_mask(o, t) for o in scene.object_ids}
        for a in scene.object_ids:
            for b in scene.object_ids:
                if a < b and (full[a] & full[b]).any():
                    out.append((t, a, b))
    return out


def test_occlusion_follows_depth_order():
    scene = SyntheticScene(seed=1, num_frames=40, num_objects=3, **SMALL)
    overlaps = _overlaps(scene, range(1, 41))
    assert overlaps, "expected occlusions in this scene"
    for t, a, b in overlaps:
        ids = scene.render_ids(t)
        fa, fb = scene.object_mask(a, t), scene.object_mask(b, t)
        front, back = (a, b) if scene.occludes(a, b) else (b, a)
        both = fa & fb
        assert (ids[both] == front).all()
        vis_back = scene.visible_masks(t).get(back, np.zeros_like(both))
        assert not (vis_back & both).any()
    # the id map is the depth-ordered composition of the full shapes
    t = overlaps[0][0]
    comp = np.zeros((scene.height, scene.width), np.int32)
    for oid in reversed(scene.depth_order):
        comp[scene.object_mask(oid, t)] = oid
    assert np.array_equal(comp, scene.render_ids(t))


def test_default_scenes_have_occlusions():
    hits = sum(bool(_overlaps(SyntheticScene(seed=s, **SMALL), range(1, 31, 2))) for s in range(4))
    assert hits >= 2


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_an_object_leaves_and_reenters_with_defaults(seed):
    scene = SyntheticScene(seed=seed, **SMALL)  # defaults: 30 frames, 3 objects
    oid = scene.exiting_object
    visible = [oid in scene.visible_masks(t) for t in range(1, 31)]
    assert visible[0], "visible on the prompt frame"
    gone = [t for t, v in enumerate(visible, 1) if not v]
    assert gone, "leaves the frame entirely"
    assert any(visible[gone[0]:]), "comes back"
    assert not scene.object_mask(oid, gone[0]).any()  # out of the frame, not merely occluded


def test_objects_are_distinct_and_not_rectangular(scene):
    specs = scene.objects
    assert len({o.color for o in specs}) == len(specs)
    assert len({o.texture for o in specs}) == len(specs)
    assert all(o.shape in SHAPES and o.texture in TEXTURES for o in specs)
    for oid in scene.object_ids:
        m = scene.object_mask(oid, 1)
        x0, y0, x1, y1 = mask_box(m)
        assert m.sum() < 0.93 * (x1 - x0) * (y1 - y0)
    # textured: each object shows two tones
    img, ids = scene.render(1)
    for oid in scene.object_ids:
        px = img[ids == oid].astype(int)
        assert np.ptp(px.sum(1)) > 60


def test_motion_is_smooth(scene):
    big = SyntheticScene(seed=3, num_frames=60, num_objects=4, height=240, width=320)
    for sc in (scene, big):
        for o in sc.objects:
            prev = None
            for t in range(o.start_frame, sc.num_frames + 1):
                st = sc.object_state(o.object_id, t)
                if prev is not None:
                    step = np.hypot(st.cx - prev.cx, st.cy - prev.cy) / (2 * min(st.radius, prev.radius))
                    assert step <= (0.17 if o.exit_edge else 0.105)
                    assert abs(st.radius / prev.radius - 1) < 0.05
                prev = st


def test_background_is_textured_and_moves(scene):
    img1, ids1 = scene.render(1)
    img9, ids9 = scene.render(9)
    bg = (ids1 == 0) & (ids9 == 0)
    assert img1[ids1 == 0].std() > 5
    assert np.abs(img1[bg].astype(int) - img9[bg].astype(int)).mean() > 1


def test_determinism_by_seed():
    a, b = SyntheticScene(seed=5, **SMALL), SyntheticScene(seed=5, **SMALL)
    c = SyntheticScene(seed=6, **SMALL)
    for t in (1, 17, 30):
        ia, da = a.render(t)
        ib, db = b.render(t)
        assert np.array_equal(ia, ib) and np.array_equal(da, db)
    assert not np.array_equal(a.render(1)[0], c.render(1)[0])
    assert a.labels == b.labels


def test_params_round_trip():
    a = SyntheticScene(seed=7, num_frames=12, num_objects=2, height=64, width=80, start_frames={2: 5})
    p = json.loads(json.dumps(a.params))  # JSON / MongoDB safe (string keys)
    b = SyntheticScene.from_params(p)
    assert b.params == a.params and b.start_frames == {2: 5}
    for t in (1, 5, 12):
        assert np.array_equal(a.render(t)[0], b.render(t)[0])


def test_many_small_objects_spread_over_the_frame():
    """object_size (automatic mode's many objects): smaller objects, meeting points spread, all visible; stored in
    params only when not 1, so the default scenes and their stored parameters are unchanged."""
    a = SyntheticScene(seed=1, num_frames=3, num_objects=40, height=120, width=200, object_size=0.4)
    assert a.params["object_size"] == 0.4 and "object_size" not in SyntheticScene(seed=1).params
    b = SyntheticScene.from_params(json.loads(json.dumps(a.params)))
    assert np.array_equal(a.render(2)[0], b.render(2)[0])
    visible = [m.sum() for m in a.visible_masks(1).values()]
    assert sum(v > 0 for v in visible) >= 36
    big = SyntheticScene(seed=1, num_frames=3, num_objects=40, height=120, width=200)
    assert np.mean([o.radius for o in a.objects]) < 0.5 * np.mean([o.radius for o in big.objects])
    assert np.std([o.c0[0] for o in a.objects]) > 1.5 * np.std([o.c0[0] for o in big.objects])
    with pytest.raises(ValueError, match="object_size"):
        SyntheticScene(object_size=0)


def test_start_frames():
    scene = SyntheticScene(seed=2, num_frames=20, num_objects=3, start_frames={2: 8}, **SMALL)
    for t in range(1, 8):
        assert scene.object_state(2, t) is None
        assert 2 not in scene.visible_masks(t)
        assert not scene.object_mask(2, t).any()
    assert scene.object_state(2, 8) is not None
    assert 2 in scene.visible_masks(8)
    with pytest.raises(ValueError):
        SyntheticScene(num_frames=10, num_objects=2, start_frames={3: 2})
    with pytest.raises(ValueError):
        SyntheticScene(num_frames=10, num_objects=2, start_frames={1: 11})


def test_frames_are_lazy_and_memory_is_constant():
    scene = SyntheticScene(seed=0, num_frames=1000, num_objects=3, height=48, width=64)
    arrays = [v for v in vars(scene).values() if isinstance(v, np.ndarray)]
    assert sum(a.nbytes for a in arrays) < 64 * 1024  # no per-frame arrays
    img, _ = scene.render(1000)  # closed form: no need to render 1..999
    assert img.shape == (48, 64, 3)

    def peak(stop):
        tracemalloc.start()
        n = sum(1 for _ in scene.iter_frames(1, stop))
        p = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return n, p

    n1, p1 = peak(20)
    n2, p2 = peak(200)
    assert (n1, n2) == (20, 200)
    assert p2 < 1.5 * p1 + 64 * 1024


def test_iter_frames_range(scene):
    got = [t for t, _ in scene.iter_frames(28)]
    assert got == [28, 29, 30]
    assert [t for t, _ in scene.iter_frames(3, 5)] == [3, 4, 5]


def _ffprobe(path):
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-count_frames", "-show_entries",
         "stream=nb_read_frames,width,height,pix_fmt", "-of", "json", path],
        check=True, capture_output=True, text=True,
    ).stdout
    return json.loads(out)["streams"][0]


def test_write_video(tmp_path):
    scene = SyntheticScene(seed=4, num_frames=15, num_objects=2, **SMALL)
    path = write_video(scene, str(tmp_path / "sub" / "v.mp4"), fps=10)
    info = _ffprobe(path)
    assert (int(info["nb_read_frames"]), info["width"], info["height"]) == (15, 160, 120)
    assert info["pix_fmt"] == "yuv420p"
    from sampd_plugin.core.frames import iter_frames

    n = 0
    for t, img in iter_frames(path):
        ref = scene.render(t)[0]
        assert np.abs(img.astype(int) - ref).mean() < 4
        n += 1
    assert n == 15


def test_write_video_odd_size_keeps_size(tmp_path):
    scene = SyntheticScene(seed=4, num_frames=3, num_objects=1, height=33, width=47)
    info = _ffprobe(write_video(scene, str(tmp_path / "odd.mp4")))
    assert (int(info["nb_read_frames"]), info["width"], info["height"]) == (3, 47, 33)


# --- FiftyOne dataset --------------------------------------------------------------------------------------------
def test_make_dataset(make_synthetic, fo):
    ds = make_synthetic(num_videos=2, num_frames=30, num_objects=3, height=96, width=128, seed=3)
    assert len(ds) == 2 and "synthetic" in ds.tags
    assert ds.media_type == "video"
    from sampd_plugin.synthetic import dataset_scene

    seeds = []
    for sample in ds:
        assert "synthetic" in sample.tags
        md = sample.metadata
        assert (md.frame_width, md.frame_height, md.total_frame_count) == (128, 96, 30)
        scene = dataset_scene(sample)
        seeds.append(scene.seed)
        assert scene.params == SyntheticScene(seed=scene.seed, num_frames=30, num_objects=3, height=96,
                                              width=128).params
        assert len(sample.frames) == 30
        exiter = scene.exiting_object
        exiter_frames = []
        for t, frame in sample.frames.items():
            dets = frame.ground_truth
            assert isinstance(dets, fo.Detections)
            vis = scene.visible_masks(t)
            assert sorted(d.index for d in dets.detections) == sorted(vis)
            for d in dets.detections:
                assert d.label == scene.labels[d.index]
                x, y, w, h = d.bounding_box
                x0, y0 = round(x * 128), round(y * 96)
                x1, y1 = round((x + w) * 128), round((y + h) * 96)
                assert d.mask.shape == (y1 - y0, x1 - x0) and d.mask.dtype == bool
                pasted = np.zeros((96, 128), bool)
                pasted[y0:y1, x0:x1] = d.mask
                assert np.array_equal(pasted, vis[d.index])
            exiter_frames.append(exiter in vis)
        assert exiter_frames[0] and not all(exiter_frames)  # the exiting object has no detection while gone
        last_gone = max(i for i, v in enumerate(exiter_frames) if not v)
        assert any(exiter_frames[last_gone:])
    assert seeds == [3, 4]


def test_make_dataset_start_frames(make_synthetic):
    ds = make_synthetic(num_videos=1, num_frames=10, num_objects=2, height=64, width=80, seed=1, start_frames={2: 6})
    sample = ds.first()
    assert sample["synthetic"]["start_frames"] == {"2": 6}
    idx = {t: {d.index for d in f.ground_truth.detections} for t, f in sample.frames.items()}
    assert all(2 not in idx[t] for t in range(1, 6))
    assert 2 in idx[6]


# --- the crossing scenario (issue 18) -------------------------------------------------------------------------------
CROSSING = dict(num_frames=40, num_objects=3, height=240, width=320, scenario="crossing")


def _discs_min_gap(scene, a, b):
    """min over frames of (centre distance) / (sum of mean radii) of objects a and b."""
    gaps = []
    for t in range(1, scene.num_frames + 1):
        sa, sb = scene.object_state(a, t), scene.object_state(b, t)
        gaps.append(np.hypot(sa.cx - sb.cx, sa.cy - sb.cy) / (sa.radius + sb.radius))
    return min(gaps), gaps[0]


@pytest.mark.parametrize("seed", range(6))
def test_crossing_objects_start_apart_stay_in_view_and_meet(seed):
    scene = SyntheticScene(seed=seed, **CROSSING)
    assert scene.exiting_object is None
    ids = {t: scene.render_ids(t) for t in range(1, scene.num_frames + 1)}
    assert set(np.unique(ids[1])) == {0, 1, 2, 3}  # all visible on the prompt frame
    for oid in scene.object_ids:
        for t in ids:  # in view: its full shape is mostly inside the frame
            full = scene.object_mask(oid, t).sum()
            assert full > 0.5 * np.pi * scene.object_state(oid, t).radius ** 2
    cross, start12 = _discs_min_gap(scene, 1, 2)
    touch, start13 = _discs_min_gap(scene, 1, 3)
    assert start12 > 1.0 and start13 > 1.0  # apart on the prompt frame
    assert cross < 0.5  # objects 1 and 2 cross
    assert touch < 1.0  # object 3 touches (or overlaps) object 1
    # someone is occluded for real: an object loses most of its visible area on some frame
    hidden = [min((ids[t] == o).sum() / max(scene.object_mask(o, t).sum(), 1) for t in ids) for o in scene.object_ids]
    assert min(hidden) < 0.5


def test_crossing_twins_look_alike_and_the_others_do_not():
    for seed in range(4):
        scene = SyntheticScene(seed=seed, **CROSSING)
        o1, o2, o3 = scene.objects
        assert o1.shape == o2.shape and o1.texture == o2.texture
        assert np.abs(np.subtract(o1.color, o2.color)).max() < 60
        assert o3.texture != o1.texture and np.abs(np.subtract(o1.color, o3.color)).max() > 60


def test_scenario_round_trips_and_leaves_standard_scenes_unchanged():
    a = SyntheticScene(seed=5, num_frames=20, num_objects=3, height=96, width=128, scenario="crossing")
    b = SyntheticScene.from_params(json.loads(json.dumps(a.params)))
    assert b.scenario == "crossing" and b.params == a.params
    assert np.array_equal(a.render(10)[0], b.render(10)[0])
    std = SyntheticScene(seed=5, num_frames=20, num_objects=3, height=96, width=128)
    old_params = {k: v for k, v in std.params.items() if k != "scenario"}  # stored before scenarios existed
    assert SyntheticScene.from_params(old_params).params == std.params and std.scenario == "standard"
    assert not np.array_equal(std.render(10)[0], a.render(10)[0])
    with pytest.raises(ValueError, match="scenario"):
        SyntheticScene(scenario="chaos")
