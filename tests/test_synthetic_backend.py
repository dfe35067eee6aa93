"""The synthetic promptable segmenter (sampd_plugin.backends.synthetic): interface, geometry, and a degradation
with prompt noise that behaves like SAM's (tight box -> lost parts, loose box -> leakage, points -> ambiguity)."""

import time

import numpy as np
import pytest
import torch

from sampd_plugin.backends.synthetic import Realism, SyntheticSegmenter, image_features
from sampd_plugin.synthetic import SyntheticScene, mask_box

H, W = 240, 320


@pytest.fixture(scope="module")
def scene():
    return SyntheticScene(seed=1, num_frames=40, num_objects=3, height=H, width=W)


@pytest.fixture(scope="module")
def seg(scene):
    return SyntheticSegmenter(scene)


@pytest.fixture(scope="module")
def states(scene, seg):
    return {t: seg.encode(scene.render(t)[0], t) for t in range(1, 41, 3)}


def iou(a, b):
    u = (a | b).sum()
    return (a & b).sum() / u if u else 1.0


def decode_masks(seg, st, boxes=None, points=None, labels=None, multimask=False):
    t = lambda x, dt=torch.float32: None if x is None else torch.as_tensor(np.asarray(x), dtype=dt)  # noqa: E731
    d = seg.decode(st, boxes=t(boxes), points=t(points), point_labels=t(labels, torch.int64), multimask=multimask)
    b, k = d.low_res_logits.shape[:2]
    m = seg.upsample(st, d.low_res_logits.reshape(b * k, *d.low_res_logits.shape[-2:]))
    return m.reshape(b, k, H, W).numpy(), d


def cases(scene, states, min_area=400):
    """(state, object id, visible mask) for the well-visible objects of the sampled frames."""
    for t, st in states.items():
        for oid, m in scene.visible_masks(t).items():
            if m.sum() >= min_area:
                yield st, oid, m


def test_geometry_and_shapes(scene, seg, states):
    st = states[1]
    assert st.image_size == (H, W) and st.input_size == (192, 256)
    assert st.embedding.shape == (8, 64, 64) and st.embedding.dtype == torch.float32
    assert st.embed_stride == 4 and st.mask_stride == 2 and st.frame_number == 1
    assert seg.preferred_batch_size is None
    boxes = torch.tensor([[10.0, 20, 80, 90], [100, 50, 200, 150]])
    d = seg.decode(st, boxes=boxes)
    assert d.low_res_logits.shape == (2, 1, 128, 128) and d.low_res_logits.dtype == torch.float32
    assert d.iou.shape == (2, 1) and ((d.iou >= 0) & (d.iou <= 1)).all()
    assert (d.low_res_logits[:, :, 96:, :] < 0).all()  # padding rows below the 192-px input are background
    d3 = seg.decode(st, boxes=boxes, multimask=True)
    assert d3.low_res_logits.shape == (2, 3, 128, 128) and d3.iou.shape == (2, 3)
    pts = torch.tensor([[[50.0, 60], [0, 0]]])
    dp = seg.decode(st, points=pts, point_labels=torch.tensor([[1, -1]]), multimask=True)
    assert dp.low_res_logits.shape == (1, 3, 128, 128)
    up = seg.upsample(st, d.low_res_logits[:, 0])
    assert up.shape == (2, H, W) and up.dtype == torch.bool
    assert seg.decode_calls == 3 and seg.decoded_prompts == 5


def test_needs_frame_number(scene, seg):
    st = seg.encode(scene.render(1)[0])
    with pytest.raises(ValueError, match="frame number"):
        seg.decode(st, boxes=torch.tensor([[0.0, 0, 10, 10]]))
    with pytest.raises(ValueError):
        seg.encode(np.zeros((10, 10, 3), np.uint8), 1)  # not the scene's frame size


def test_exact_box_gives_high_iou(scene, seg, states):
    ious, preds, confused = [], [], 0
    for st, oid, m in cases(scene, states):
        box = mask_box(m)
        masks, d = decode_masks(seg, st, boxes=[box])
        x0, y0, x1, y1 = (int(v) for v in box)
        counts = np.bincount(scene.render_ids(st.frame_number)[y0:y1, x0:x1].ravel(), minlength=4)
        counts[0] = 0
        if counts.argmax() != oid:  # an occluder fills the box of the occluded object more: SAM segments it
            dominant = scene.visible_masks(st.frame_number)[counts.argmax()]
            assert (masks[0, 0] & dominant).sum() > 0.5 * masks[0, 0].sum()
            confused += 1
            continue
        ious.append(iou(masks[0, 0], m))
        preds.append(float(d.iou[0, 0]))
    ious = np.array(ious)
    assert len(ious) >= 20 and confused <= 0.1 * len(ious)
    # near-exact, except when the box also encloses most of a neighbour (SAM then sometimes merges the two) and
    # for SAM's occasional instability
    assert np.median(ious) > 0.94 and np.mean(ious > 0.85) > 0.85
    assert np.mean(preds) > 0.85


def _shift(box, fx, fy=0.0):
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    return [x0 + fx * w, y0 + fy * h, x1 + fx * w, y1 + fy * h]


def _scale(box, s):
    x0, y0, x1, y1 = box
    cx, cy, w, h = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) * s, (y1 - y0) * s
    return [max(0, cx - w / 2), max(0, cy - h / 2), min(W, cx + w / 2), min(H, cy + h / 2)]


def test_iou_degrades_as_the_box_shifts(scene, seg, states):
    shifts = (0.0, 0.15, 0.3, 0.5)
    vals = {f: [] for f in shifts}
    for st, oid, m in cases(scene, states):
        box = mask_box(m)
        prompts = [(f, _shift(box, sx, sy)) for f in shifts for sx, sy in ((f, 0), (-f, 0), (0, f), (0, -f))]
        masks, _ = decode_masks(seg, st, boxes=[b for _, b in prompts])
        for k, (f, _) in enumerate(prompts):
            vals[f].append(iou(masks[k, 0], m))
    means = [np.mean(vals[f]) for f in shifts]
    assert all(a >= b - 0.01 for a, b in zip(means, means[1:])), means
    assert means[0] - means[-1] > 0.25, means


def test_tight_box_loses_parts(scene, seg, states):
    kept, outside = [], []
    for st, oid, m in cases(scene, states):
        box = mask_box(m)
        tight = _scale(box, 0.6)
        masks, _ = decode_masks(seg, st, boxes=[tight])
        p = masks[0, 0]
        kept.append((p & m).sum() / m.sum())
        x0, y0, x1, y1 = (int(v) for v in tight)
        mb = np.zeros_like(m)
        mb[y0:y1, x0:x1] = True
        outside.append((m & ~mb & p).sum() / max((m & ~mb).sum(), 1))
    # like SAM with an over-tight box: mostly the area enveloped by the box
    assert np.mean(kept) < 0.75
    assert np.mean(outside) < 0.25


def test_loose_box_leaks(scene, seg, states):
    leak, exact_leak = [], []
    for st, oid, m in cases(scene, states):
        box = mask_box(m)
        masks, _ = decode_masks(seg, st, boxes=[_scale(box, 1.6), _scale(box, 1.9), box])
        leak += [(masks[k, 0] & ~m).sum() / m.sum() for k in (0, 1)]
        exact_leak.append((masks[2, 0] & ~m).sum() / m.sum())
    leak = np.array(leak)
    assert (leak > 0.1).mean() > 0.2  # a loose box often leaks into background / neighbours
    assert leak.mean() > 3 * np.mean(exact_leak) + 0.02


def test_leakage_is_deterministic_and_depends_on_the_prompt(scene, seg, states):
    st = states[4]
    m = next(iter(scene.visible_masks(4).values()))
    boxes = [_scale(mask_box(m), s) for s in np.linspace(1.3, 2.0, 8)]
    a, da = decode_masks(seg, st, boxes=boxes)
    b, db = decode_masks(SyntheticSegmenter(scene), st, boxes=boxes)
    assert np.array_equal(a, b) and torch.equal(da.iou, db.iou)


def test_box_over_background_gives_a_low_iou_blob(scene, seg, states):
    st = states[1]
    ids = scene.render_ids(1)
    ys, xs = np.nonzero(ids == 0)
    found = 0
    for x, y in zip(xs[::997], ys[::997]):
        box = [x - 4, y - 4, x + 5, y + 5]
        x0, y0, x1, y1 = (int(np.clip(v, 0, s)) for v, s in zip(box, (W, H, W, H)))
        if (ids[y0:y1, x0:x1] > 0).any():
            continue
        masks, d = decode_masks(seg, st, boxes=[[x0, y0, x1, y1]])
        assert masks[0, 0].any()  # SAM always segments something
        assert (ids[masks[0, 0]] == 0).mean() > 0.9
        assert float(d.iou[0, 0]) < 0.5
        found += 1
    assert found >= 3


def test_multimask_point_largest_is_the_whole_object(scene, seg, states):
    from sampd_plugin.core.prompts import mask_points

    n = 0
    for st, oid, m in cases(scene, states):
        vis = scene.visible_masks(st.frame_number)
        p = mask_points(m, 1)[0]
        negs = [mask_points(o, 1)[0] for j, o in vis.items() if j != oid]
        pts = [list(p)] + [list(q) for q in negs]
        labels = [1] + [0] * len(negs)
        masks, d = decode_masks(seg, st, points=[pts], labels=[labels], multimask=True)
        areas = masks[0].reshape(3, -1).sum(1)
        assert areas[0] <= areas[1] <= areas[2]  # subpart, part, whole (nested)
        assert (masks[0, 0] <= masks[0, 1]).all() and (masks[0, 1] <= masks[0, 2]).all()
        assert iou(masks[0, int(np.argmax(areas))], m) > 0.85
        assert areas[0] < 0.6 * areas[2]
        n += 1
    assert n >= 20


def test_single_point_is_ambiguous(scene, seg, states):
    """multimask=False with one positive point: sometimes the whole object, sometimes a part (SAM's ambiguity)."""
    from sampd_plugin.core.prompts import mask_points

    fracs = []
    for st, oid, m in cases(scene, states):
        pts = mask_points(m, 3)
        masks, _ = decode_masks(seg, st, points=[[list(p)] for p in pts], labels=[[1]] * len(pts))
        fracs += [(masks[k, 0] & m).sum() / m.sum() for k in range(len(pts))]
    fracs = np.array(fracs)
    assert (fracs > 0.9).mean() > 0.25 and (fracs < 0.7).mean() > 0.25


def test_point_on_background_gives_background_blob(scene, seg, states):
    st = states[1]
    ids = scene.render_ids(1)
    ys, xs = np.nonzero(ids == 0)
    i = len(xs) // 2
    masks, d = decode_masks(seg, st, points=[[[xs[i], ys[i]]]], labels=[[1]], multimask=True)
    for k in range(3):
        assert masks[0, k].any() and (ids[masks[0, k]] == 0).mean() > 0.9
    assert (d.iou < 0.5).all()


def _two_object_frame(scene, seg):
    """The frame and pair of objects (a smaller than b) that fill their union box best."""
    best = None
    for t in range(1, 41):
        vis = scene.visible_masks(t)
        for a, ma in vis.items():
            for b, mb in vis.items():
                if a == b or not 400 < ma.sum() < mb.sum():
                    continue
                ba, bb = mask_box(ma), mask_box(mb)
                area = (max(ba[2], bb[2]) - min(ba[0], bb[0])) * (max(ba[3], bb[3]) - min(ba[1], bb[1]))
                fill = (ma.sum() + mb.sum()) / area
                if best is None or fill > best[0]:
                    best = (fill, t, a, b, vis)
    assert best is not None and best[0] > 0.3, "no frame with two objects side by side"
    return best[1:]


def test_negative_point_removes_a_neighbour(scene, seg):
    from sampd_plugin.core.prompts import mask_points

    t, a, b, vis = _two_object_frame(scene, seg)
    st = seg.encode(scene.render(t)[0], t)
    ba, bb = mask_box(vis[a]), mask_box(vis[b])
    union = [min(ba[0], bb[0]), min(ba[1], bb[1]), max(ba[2], bb[2]), max(ba[3], bb[3])]
    plain, _ = decode_masks(seg, st, boxes=[union])
    assert (plain[0, 0] & vis[b]).sum() > 0.5 * vis[b].sum()  # the box covers b best: b is segmented
    nb = mask_points(vis[b], 1)[0]
    masks, _ = decode_masks(seg, st, boxes=[union], points=[[list(nb)]], labels=[[0]])
    assert (masks[0, 0] & vis[b]).sum() < 0.03 * vis[b].sum()  # the negative point removes b (up to edge cells)...
    assert (masks[0, 0] & vis[a]).sum() > 0.5 * vis[a].sum()  # ...and the box now segments a


def test_predicted_iou_is_informative(scene, seg, states):
    pred, true = [], []
    for st, oid, m in cases(scene, states):
        box = mask_box(m)
        boxes = [_scale(box, 0.5), _scale(box, 0.8), box, _shift(box, 0.3), _scale(box, 1.8)]
        masks, d = decode_masks(seg, st, boxes=boxes)
        pred += d.iou[:, 0].tolist()
        true += [iou(masks[k, 0], m) for k in range(len(boxes))]
    assert np.corrcoef(pred, true)[0, 1] > 0.5


def test_embedding_tells_objects_apart(scene, seg):
    """Pooled embeddings: the same object on two frames is closer than two different objects (Eq. 2's cue)."""
    sts = {t: seg.encode(scene.render(t)[0], t) for t in (1, 6)}

    def vec(t, oid):
        m = torch.as_tensor(scene.visible_masks(t)[oid])[None]
        g = sts[t].mask_to_grid(m, sts[t].embed_stride)[0]
        v = (sts[t].embedding * g).sum((1, 2)) / g.sum()
        return v / v.norm()

    ids = sorted(set(scene.visible_masks(1)) & set(scene.visible_masks(6)))
    assert len(ids) >= 2
    same = [float(vec(1, o) @ vec(6, o)) for o in ids]
    diff = [float(vec(1, a) @ vec(6, b)) for a in ids for b in ids if a != b]
    assert min(same) > max(diff)
    assert min(same) > 0.8


def test_embedding_comes_from_pixels_only():
    img = np.zeros((64, 64, 3), np.uint8)
    img[16:48, 16:48] = (255, 0, 0)
    f = image_features(img, 4, 64)
    assert f.shape == (8, 16, 16)
    inside, outside = f[:, 8, 8], f[:, 1, 1]
    assert float(inside @ outside) < 0
    f2 = image_features(img[::-1].copy(), 4, 64)
    assert torch.allclose(f2[:, 8, 8], inside, atol=1e-5)


def test_generate_masks_returns_the_objects(scene, seg):
    img = scene.render(1)[0]
    masks = seg.generate_masks(img, max_masks=100, frame_number=1)
    vis = scene.visible_masks(1)
    assert len(masks) >= len(vis)
    assert all(m.shape == (H, W) and m.dtype == bool for m in masks)
    areas = [m.sum() for m in masks[: len(vis)]]
    assert areas == sorted(areas, reverse=True)
    for oid, m in vis.items():
        assert max(iou(g, m) for g in masks[: len(vis)]) > 0.9
    assert len(seg.generate_masks(img, max_masks=2, frame_number=1)) == 2
    with pytest.raises(ValueError):
        seg.generate_masks(img)


def test_decoding_54_prompts_is_fast(scene, seg, states):
    from sampd_plugin.core.prompts import box_prompt_grid

    st = states[10]
    boxes = torch.as_tensor(np.stack([mask_box(m) for m in scene.visible_masks(10).values()]))
    grid = box_prompt_grid(boxes, (H, W)).reshape(-1, 4)
    negs = torch.zeros((grid.shape[0], 2, 2))
    labels = torch.full((grid.shape[0], 2), -1)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        seg.decode(st, boxes=grid, points=negs, point_labels=labels)
        t0 = time.perf_counter()
        for _ in range(5):
            seg.decode(st, boxes=grid, points=negs, point_labels=labels)
        per_call = (time.perf_counter() - t0) / 5
    finally:
        torch.set_num_threads(threads)
    assert grid.shape[0] == 18 * len(boxes)
    assert per_call < 1.0  # ~10 ms on one idle CPU core; a loose bound for loaded, shared CI machines


def test_box_instability_is_rare_confident_and_prompt_specific(scene, seg, states):
    """Now and then one box segments something else (SAM's instability, paper Sec. III-C); its neighbours don't."""
    glitches = total = 0
    for st, oid, m in cases(scene, states):
        box = np.asarray(mask_box(m))
        x0, y0, x1, y1 = (int(v) for v in box)
        counts = np.bincount(scene.render_ids(st.frame_number)[y0:y1, x0:x1].ravel(), minlength=4)
        if counts[1:].argmax() + 1 != oid:
            continue  # an occluder dominates the box: not an instability
        boxes = [box + [dx, dy, dx, dy] for dx in (-2, -1, 0, 1, 2) for dy in (-2, -1, 0, 1, 2)]
        masks, d = decode_masks(seg, st, boxes=boxes)
        for k in range(len(boxes)):
            total += 1
            if (masks[k, 0] & m).sum() < 0.2 * masks[k, 0].sum():  # mostly something else
                glitches += 1
                assert float(d.iou[k, 0]) > 0.7  # confident all the same
    assert 0 < glitches < 0.06 * total


def test_realism_knobs_change_behaviour(scene, states):
    """A perfectly tolerant segmenter recovers parts outside an over-tight box."""
    tolerant = SyntheticSegmenter(scene, realism=Realism(recover_tolerance=(100.0, 100.0), box_instability=0.0))
    st = states[1]
    for oid, m in scene.visible_masks(1).items():
        masks, _ = decode_masks(tolerant, st, boxes=[_scale(mask_box(m), 0.8)])
        assert iou(masks[0, 0], m) > 0.85


def test_an_unstable_box_still_segments_something(scene, states):
    """SAM always segments something: an unstable box whose other objects all carry negative points segments a
    background segment in the box (wherever its random point falls), or its object, never nothing."""
    from sampd_plugin.core.prompts import mask_points

    unstable = SyntheticSegmenter(scene, realism=Realism(box_instability=1.0))
    checked = 0
    for st, oid, m in cases(scene, states):
        others = [mask_points(v, 1)[0].tolist() for k, v in scene.visible_masks(st.frame_number).items() if k != oid]
        if not others:
            continue
        masks, d = decode_masks(unstable, st, boxes=[mask_box(m)], points=[others], labels=[[0] * len(others)])
        assert masks[0, 0].any()
        checked += 1
    assert checked > 10


@pytest.mark.parametrize("preset", ["full", "adaptive", "full-iou"])
def test_batched_host_work_tracks_as_object_by_object(preset, monkeypatch):
    """Issue 22: Eq. 2 of all objects' candidates, their points and boxes computed at once give the tracking that
    computing them object by object gives (tests/per_object.py), with the synthetic segmenter and 12 objects."""
    from sampd_plugin.core.config import SamPDConfig
    from sampd_plugin.core.tracker import ObjectPrompt, SamPDTracker
    from tests.per_object import assert_same_tracking

    scene = SyntheticScene(seed=2, num_frames=8, num_objects=12, height=120, width=160, object_size=0.5)
    seg = SyntheticSegmenter(scene)
    prompts = [ObjectPrompt(object_id=i, frame_number=1, mask=m) for i, m in scene.visible_masks(1).items()
               if m.sum() >= 20]
    assert len(prompts) >= 10
    run = lambda: list(SamPDTracker(seg, SamPDConfig.preset(preset)).track(scene.iter_frames(), prompts))  # noqa
    results = assert_same_tracking(run, monkeypatch)
    assert sum(not o.lost for r in results for o in r.objects.values()) > 0.8 * len(prompts) * len(results)
