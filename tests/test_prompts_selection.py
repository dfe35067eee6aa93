"""Each paper concept pinned exactly: the prompt grid (Sec. III-C), Eq. 2, the refinement points and the multimask
pick (Sec. III-D)."""

import numpy as np
import pytest
import torch

from sampd_plugin.core.config import EXTENSION_PRESETS, PRESET_LABELS, PRESETS, SamPDConfig
from sampd_plugin.core.prompts import (
    box_prompt_grid,
    clip_boxes,
    group_by_point_count,
    mask_points,
    masks_points,
    mask_to_box,
    masks_boxes,
    negative_points,
    refinement_point,
    sam_box,
)
from sampd_plugin.core.selection import (
    iou_with_previous,
    masked_template,
    pick_multimask,
    select_candidates,
    similarity_features,
    template_similarity,
)
from tests.per_object import clip_torch, grid_torch, points_whole_frame


# --- Sec. III-C one-to-many grid ----------------------------------------------------------------------------------
def test_grid_has_18_boxes_with_paper_geometry():
    box = torch.tensor([[100.0, 200.0, 200.0, 260.0]])  # w=100, h=60, centre (150, 230)
    grid = box_prompt_grid(box, (480, 640))
    assert grid.shape == (1, 18, 4)
    g = grid[0].reshape(3, 3, 2, 4)  # (row y, col x, scale, xyxy)
    # unshifted, scale 1: the box itself
    assert torch.allclose(g[1, 1, 0], box[0])
    # shift step = 10 % of the width in x, of the height in y
    assert torch.allclose(g[1, 2, 0], torch.tensor([110.0, 200.0, 210.0, 260.0]))
    assert torch.allclose(g[0, 1, 0], torch.tensor([100.0, 194.0, 200.0, 254.0]))
    assert torch.allclose(g[2, 0, 0], torch.tensor([90.0, 206.0, 190.0, 266.0]))
    # scale 1.05 about the (shifted) centre
    assert torch.allclose(g[1, 1, 1], torch.tensor([150 - 52.5, 230 - 31.5, 150 + 52.5, 230 + 31.5]))
    assert torch.allclose(g[0, 0, 1], torch.tensor([140 - 52.5, 224 - 31.5, 140 + 52.5, 224 + 31.5]))


def test_grid_is_clipped_to_the_image_and_never_degenerate():
    h, w = 100, 120
    boxes = torch.tensor([[0.0, 0.0, 30.0, 20.0], [110.0, 95.0, 120.0, 100.0], [119.0, 0.0, 120.0, 1.0]])
    grid = box_prompt_grid(boxes, (h, w))
    assert (grid[..., 0] >= 0).all() and (grid[..., 1] >= 0).all()
    assert (grid[..., 2] <= w).all() and (grid[..., 3] <= h).all()
    assert ((grid[..., 2] - grid[..., 0]) >= 1).all() and ((grid[..., 3] - grid[..., 1]) >= 1).all()
    # the top-left box shifted up-left is cut at the border: x0 = y0 = 0, far sides kept
    up_left = grid[0].reshape(3, 3, 2, 4)[0, 0, 0]
    assert torch.allclose(up_left, torch.tensor([0.0, 0.0, 27.0, 18.0]))


def test_clip_boxes_widens_degenerate_boxes_inside_the_image():
    out = clip_boxes(torch.tensor([[130.0, 50.0, 140.0, 50.0], [-10.0, -5.0, -1.0, -2.0]]), (100, 120))
    assert torch.allclose(out, torch.tensor([[119.0, 50.0, 120.0, 51.0], [0.0, 0.0, 1.0, 1.0]]))


def test_grid_follows_config_settings():
    cfg = SamPDConfig(grid_size=5, shift_step=0.2, scales=(0.9, 1.0, 1.1))
    assert cfg.num_prompts == 75
    grid = box_prompt_grid(torch.tensor([[50.0, 50.0, 60.0, 60.0]]), (200, 200), 5, 0.2, cfg.scales)
    assert grid.shape == (1, 75, 4)
    # first box: two steps of 0.2 x 10 px up-left of the centre (55, 55), scale 0.9 -> half side 4.5
    assert torch.allclose(grid[0, 0], torch.tensor([51 - 4.5, 51 - 4.5, 51 + 4.5, 51 + 4.5]))


def test_grid_and_clipping_are_bit_for_bit_the_torch_computation():
    # the grid is computed in numpy (issue 22: torch's per-operation dispatch was most of its cost); the tracker's
    # prompts, and so its outputs, must stay bit for bit those of the torch float32 formula
    rng = np.random.default_rng(0)
    for trial in range(300):
        n = int(rng.integers(1, 30))
        h, w = int(rng.integers(20, 1500)), int(rng.integers(20, 1500))
        x0, y0 = rng.uniform(-40, w + 40, n), rng.uniform(-40, h + 40, n)
        bw, bh = rng.uniform(0.3, w, n), rng.uniform(0.3, h, n)
        if trial % 2:  # mask boxes: whole pixels
            x0, y0, bw, bh = np.floor(x0), np.floor(y0), np.ceil(bw), np.ceil(bh)
        dtype = torch.float64 if trial % 5 == 0 else torch.float32
        boxes = torch.tensor(np.stack([x0, y0, x0 + bw, y0 + bh], 1), dtype=dtype)
        grid, step = int(rng.choice([1, 3, 5])), float(rng.choice([0.1, 0.2, rng.uniform(0, 0.5)]))
        scales, min_size = ((1.0, 1.05), (0.95, 1.0, 1.05))[trial % 2], float(rng.choice([1.0, 0.5, 2.0]))
        ours = box_prompt_grid(boxes, (h, w), grid, step, scales, min_size)
        assert ours.dtype == torch.float32
        assert torch.equal(ours, grid_torch(boxes, (h, w), grid, step, scales, min_size))
        clipped = clip_boxes(boxes, (h, w), min_size)
        assert clipped.dtype == dtype and torch.equal(clipped, clip_torch(boxes, (h, w), min_size))


def test_mask_to_box_is_tight_and_exclusive():
    m = np.zeros((10, 12), bool)
    m[2:5, 3:9] = True
    assert mask_to_box(m).tolist() == [3, 2, 9, 5]
    assert mask_to_box(np.zeros((4, 4), bool)) is None


def test_sam_box_of_a_mask_box_is_segment_anythings_batched_mask_to_box():
    """SAM was trained on boxes whose right/bottom lie on the last mask pixel; ours (exclusive ends) reach it so."""
    from segment_anything.utils.amg import batched_mask_to_box

    rng = np.random.default_rng(0)
    masks = np.zeros((20, 37, 53), bool)
    for i, m in enumerate(masks):
        y0, x0 = rng.integers(0, 30), rng.integers(0, 45)
        m[y0 : y0 + rng.integers(1, 8), x0 : x0 + rng.integers(1, 9)] = True
        if i % 3 == 0:  # a second, disjoint-ish blob: the box spans both
            m[rng.integers(0, 37), rng.integers(0, 53)] = True
    ours = sam_box(torch.as_tensor(np.stack([mask_to_box(m) for m in masks])))
    theirs = batched_mask_to_box(torch.as_tensor(masks)).float()
    assert torch.equal(ours, theirs)
    # continuous boxes (the jittered grid) are inset by one pixel on the right/bottom only
    assert sam_box(torch.tensor([[1.5, 2.0, 10.25, 8.0]])).tolist() == [[1.5, 2.0, 9.25, 7.0]]


# --- Eq. 1-2 ---------------------------------------------------------------------------------------------------
def test_masked_template_crops_by_the_mask_box_and_masks():
    emb = torch.arange(2 * 4 * 5, dtype=torch.float32).reshape(2, 4, 5)
    mask = torch.zeros(4, 5)
    mask[1, 1] = mask[2, 2] = 1.0
    mask[1, 2] = 0.5
    t = masked_template(emb, mask)
    assert t.shape == (2, 2, 2)
    expected = emb[:, 1:3, 1:3] * torch.tensor([[1.0, 0.5], [0.0, 1.0]])
    assert torch.equal(t, expected)
    assert masked_template(emb, torch.zeros(4, 5)) is None


def test_eq2_against_a_hand_computed_case():
    # 1-channel embedding, template of two cells [2, 1]; the candidate mask covers cells with values [1, 2, 3].
    emb = torch.zeros(1, 3, 5)
    emb[0, 1, 1:4] = torch.tensor([1.0, 2.0, 3.0])
    template = torch.tensor([[[2.0, 1.0]]])  # (1, 1, 2)
    cand = torch.zeros(2, 3, 5)
    cand[0, 1, 1:4] = 1.0  # whole row segment
    cand[1, 1, 1] = 1.0  # only the first cell
    sims = template_similarity(template, emb, cand)
    # candidate 0: correlations of [2,1] over [1,2,3] with zero padding: [1*1, 2*1+1*2, 2*2+1*3, 2*3] = [1,4,7,6]
    # candidate 1: over [1]: [1, 2] -> max 2
    assert sims.tolist() == [7.0, 2.0]


def brute_force_eq2(template: torch.Tensor, emb: torch.Tensor, mask: torch.Tensor) -> float:
    """One candidate alone, by loops: the correlation of the template with the masked embedding at every shift where
    the template's non-zero cells meet the candidate's mask cells; the maximum over those shifts."""
    t, e, m = template.double().numpy(), emb.double().numpy(), mask.double().numpy()
    _, th, tw = t.shape
    h, w = m.shape
    t_on = (t != 0).any(0)
    ys, xs = np.nonzero(m > 0)
    best = -np.inf
    for dy in range(ys.min() - th + 1, ys.max() + 1):
        for dx in range(xs.min() - tw + 1, xs.max() + 1):
            total, meet = 0.0, False
            for py in range(th):
                for px in range(tw):
                    y, x = dy + py, dx + px
                    if 0 <= y < h and 0 <= x < w:
                        total += m[y, x] * float(t[:, py, px] @ e[:, y, x])
                        meet |= bool(t_on[py, px] and m[y, x] > 0)
            if meet:
                best = max(best, total)
    return best


def test_eq2_equals_a_brute_force_per_candidate_correlation():
    g = torch.Generator().manual_seed(0)
    emb = torch.randn(8, 12, 14, generator=g)
    template = torch.randn(8, 4, 5, generator=g) * (torch.rand(4, 5, generator=g) > 0.3)  # non-rectangular
    masks = (torch.rand(6, 12, 14, generator=g) > 0.6).float() * torch.rand(6, 12, 14, generator=g)
    masks[3] = 0
    masks[4] = 0
    masks[4, 1:3, 2:4] = torch.tensor([[0.5, 1.0], [1.0, 0.25]])  # small, far from the others' union
    # random features, then features anti-correlated with the template everywhere (all-negative candidates)
    for t, e in ((template, emb), (template.abs(), -emb.abs())):
        got = template_similarity(t, e, masks)
        assert torch.isinf(got[3]) and got[3] < 0
        for i in (0, 1, 2, 4, 5):
            assert got[i].item() == pytest.approx(brute_force_eq2(t, e, masks[i]), abs=1e-4)
            # independent of the other candidates: the same score alone
            assert torch.allclose(template_similarity(t, e, masks[i : i + 1])[0], got[i], atol=1e-5)
    assert (got[[0, 1, 2, 4, 5]] < 0).all()


def test_eq2_all_negative_candidates_are_not_zero_ties():
    """The old union-box correlation gave every all-negative candidate the zero-padding maximum 0: ties, argmax 0."""
    template = torch.ones(2, 3, 3)  # looks like +1 features
    emb = torch.zeros(2, 16, 16)
    emb[:, 2:5, 2:5] = -1.0  # candidate 0: strongly unlike the template
    emb[:, 10:13, 10:13] = -0.2  # candidate 1: unlike, but less so
    emb[:, 6:8, 12:14] = -0.1  # candidate 2: the least unlike
    masks = torch.zeros(3, 16, 16)
    masks[0, 2:5, 2:5] = 1
    masks[1, 10:13, 10:13] = 1
    masks[2, 6:8, 12:14] = 1
    got = template_similarity(template, emb, masks)
    for i in range(3):
        assert got[i].item() == pytest.approx(brute_force_eq2(template, emb, masks[i]), abs=1e-5)
    # the best shift of an all-negative candidate overlaps one cell (2 channels x the cell's value)
    assert got.tolist() == pytest.approx([-2.0, -0.4, -0.2])
    assert select_candidates(got[None]).item() == 2
    # an all-zero template has no support: nothing to compare with
    assert torch.isinf(template_similarity(torch.zeros(2, 3, 3), emb, masks)).all()


def test_cosine_features_are_unit_cells_and_bound_eq2_by_the_mask_area():
    g = torch.Generator().manual_seed(1)
    emb = torch.randn(16, 10, 12, generator=g) * torch.rand(1, 10, 12, generator=g) * 5
    emb[:, 0, 0] = 0  # padding-like zero cell
    assert similarity_features(emb, "dot") is emb
    f = similarity_features(emb, "cosine")
    norms = f.norm(dim=0)
    assert torch.allclose(norms[1:], torch.ones_like(norms[1:]), atol=1e-5) and norms[0, 0] == 0
    mask = torch.zeros(10, 12)
    mask[3:7, 2:9] = 1
    mask[3, 2] = 0
    # each term is a cosine <= 1 and at most the whole area overlaps: the self-similarity is the area
    self_sim = template_similarity(masked_template(f, mask), f, mask[None])[0]
    assert self_sim.item() == pytest.approx(float(mask.sum()), abs=1e-4)
    other = torch.zeros(10, 12)
    other[1:5, 4:11] = 1
    assert template_similarity(masked_template(f, mask), f, other[None])[0] < self_sim
    with pytest.raises(ValueError, match="similarity"):
        similarity_features(emb, "l2")


def test_similarity_prefers_the_candidate_that_looks_like_the_template():
    emb = torch.zeros(2, 10, 10)
    emb[0, 2:5, 2:5] = 1.0  # object A: channel 0
    emb[1, 6:9, 6:9] = 1.0  # object B: channel 1
    template = torch.zeros(2, 3, 3)
    template[0] = 1.0  # looks like A
    on_a = torch.zeros(10, 10)
    on_a[2:5, 2:5] = 1
    on_b = torch.zeros(10, 10)
    on_b[6:9, 6:9] = 1
    sims = template_similarity(template, emb, torch.stack([on_b, on_a]))
    assert select_candidates(sims[None]).item() == 1


# --- Sec. III-D refinement points and multimask pick --------------------------------------------------------------
def test_refinement_point_is_farthest_from_the_boundary():
    m = np.zeros((20, 30), bool)
    m[2:9, 3:20] = True  # 7 rows x 17 cols: centre row 5, the widest-inset column range
    m[12:19, 22:29] = True  # a 7x7 square: its centre (25, 15) is as deep (4 px) ...
    p = refinement_point(m)
    # ... so the tie goes to the first maximum in row-major order, inside the first rectangle's centre row
    assert p[1] == 5 and 6 <= p[0] <= 16
    assert m[p[1], p[0]]
    # the image border counts as boundary: a mask filling the image has its deepest point at the centre
    full = np.ones((9, 9), bool)
    assert refinement_point(full).tolist() == [4, 4]
    assert refinement_point(np.zeros((5, 5), bool)) is None


def test_eq2_of_many_objects_at_once_equals_each_alone():
    """template_similarities (issue 22: all objects' candidates in groups of padded, batched products) gives each
    object's template_similarity: objects of very different sizes, an empty candidate, an object with no
    candidates at all, and a missing template."""
    from sampd_plugin.core.selection import template_similarities

    g = torch.Generator().manual_seed(5)
    emb = torch.randn(16, 40, 48, generator=g)
    templates, masks = [], torch.zeros(7, 4, 40, 48)
    for i, (th, tw, y, x, hh, ww) in enumerate([(2, 3, 1, 1, 3, 4), (9, 12, 5, 6, 20, 30), (3, 3, 30, 40, 6, 5),
                                                 (1, 1, 0, 0, 40, 48), (5, 4, 10, 10, 8, 8), (4, 4, 2, 2, 5, 5),
                                                 (2, 2, 3, 3, 4, 4)]):
        templates.append(emb[:, 2:2 + th, 3:3 + tw] * (torch.rand(th, tw, generator=g) > 0.3))
        masks[i, :, y:y + hh, x:x + ww] = torch.rand(4, hh, ww, generator=g) * (torch.rand(4, hh, ww, generator=g) > 0.4)
    masks[1, 2] = 0  # an empty candidate
    masks[5] = 0  # no candidate at all
    templates[6] = None  # no template (empty on the grid)
    got = template_similarities(templates, emb, masks)
    assert got.shape == (7, 4)
    for i in range(7):
        alone = (torch.full((4,), float("-inf")) if templates[i] is None
                 else template_similarity(templates[i], emb, masks[i]))
        assert torch.equal(torch.isinf(got[i]), torch.isinf(alone)), i
        fin = torch.isfinite(alone)
        assert torch.allclose(got[i][fin], alone[fin], rtol=1e-5, atol=1e-5), i
    assert torch.isinf(got[1, 2]) and torch.isinf(got[5]).all() and torch.isinf(got[6]).all()
    # against the brute-force correlation: positive maxima (no support-overlap search) and non-positive ones alike
    # (random features; then object 2 unlike everything while 0 and 4 look alike, all in one call)
    unlike = [None if t is None else (-t.abs() if i == 2 else t.abs()) for i, t in enumerate(templates)]
    signs = set()
    for temps, e in ((templates, emb), (unlike, emb.abs())):
        sims = template_similarities(temps, e, masks)
        for i in (0, 2, 4):
            for j in range(4):
                want = brute_force_eq2(temps[i], e, masks[i, j])
                assert sims[i, j].item() == pytest.approx(want, abs=1e-4), (i, j)
                signs.add(bool(want > 0))
    assert signs == {True, False}
    # groups are bounded by the work, not by the number of objects: tiny bounds give the same values
    assert torch.allclose(template_similarities(templates, emb, masks, max_elements=1), got, rtol=1e-5, atol=1e-5)


def test_mask_points_spreads_further_points():
    m = np.zeros((10, 40), bool)
    m[2:8, 2:38] = True
    pts = mask_points(m, 3)
    assert pts.shape == (3, 2)
    assert all(m[y, x] for x, y in pts)
    assert len({tuple(p) for p in pts}) == 3
    d = np.abs(pts[1:, 0] - pts[0, 0])
    assert (d >= 3).all()  # later points move away from the first one


def test_negative_points_are_every_other_objects_points():
    """Sent unconditionally (Sec. III-D, Fig. 2): every other object's points, also one inside the object's own mask
    (there its mask has spread onto the other object: the confusion the negatives exist to correct)."""
    points = [np.array([[1, 1]]), np.array([[7, 7]]), np.array([[2, 2], [8, 1]]), np.zeros((0, 2), np.int64)]
    first, second = negative_points(points, objects=[0, 2])  # (object 3: no points of its own)
    assert first.tolist() == [[7, 7], [2, 2], [8, 1]]
    assert second.tolist() == [[1, 1], [7, 7]]
    assert [n.tolist() for n in negative_points(points)] == [[[7, 7], [2, 2], [8, 1]], [[1, 1], [2, 2], [8, 1]],
                                                             [[1, 1], [7, 7]], [[1, 1], [7, 7], [2, 2], [8, 1]]]
    assert negative_points([]) == [] and negative_points([np.zeros((0, 2))])[0].shape == (0, 2)


def test_points_are_grouped_by_count_never_padded():
    pos = [np.array([1, 2]), None, np.array([9, 9]), None, np.array([4, 4])]
    neg = [np.array([[3, 4], [5, 6]]), np.array([[7, 8]]), np.zeros((0, 2)), np.zeros((0, 2)), np.array([[0, 1]])]
    groups = group_by_point_count(pos, neg)
    assert [g[0].tolist() for g in groups] == [[3], [1, 2], [4], [0]]  # by count 0, 1, 2, 3; input order inside
    idx, pts, labels = groups[0]
    assert pts is None and labels is None
    _, pts, labels = groups[1]
    assert pts.tolist() == [[[7, 8]], [[9, 9]]] and labels.tolist() == [[0], [1]]
    _, pts, labels = groups[2]
    assert pts.tolist() == [[[4, 4], [0, 1]]] and labels.tolist() == [[1, 0]]
    _, pts, labels = groups[3]
    assert pts.tolist() == [[[1, 2], [3, 4], [5, 6]]] and labels.tolist() == [[1, 0, 0]]
    assert all(g[2] is None or (g[2] >= 0).all() for g in groups)  # no "not a point" token anywhere


def test_pick_multimask_rules():
    logits = -torch.ones(2, 3, 4, 4)
    logits[0, 0, :1] = 1  # 4 px
    logits[0, 1, :3] = 1  # 12 px (largest)
    logits[0, 2, :2] = 1  # 8 px
    logits[1, 0, :, :2] = 1  # 8 px
    logits[1, 2, :, :] = 1  # 16 px (largest)
    assert pick_multimask(logits, "largest").tolist() == [1, 2]
    prev = torch.zeros(2, 4, 4)
    prev[0, :2] = 1  # equals mask 2 of object 0
    prev[1, :, :2] = 1  # equals mask 0 of object 1
    assert pick_multimask(logits, "max_iou_prev", prev).tolist() == [2, 0]
    with pytest.raises(ValueError):
        pick_multimask(logits, "max_iou_prev")
    logits[1, 0] = logits[1, 2]  # a tie goes to the first mask
    assert pick_multimask(logits, "largest").tolist() == [1, 0]


def test_foreground_counts_are_the_cells_above_zero():
    from sampd_plugin.core.selection import foreground_counts

    logits = torch.randn(4, 3, 9, 11, generator=torch.Generator().manual_seed(2))
    logits[1, 2] = 0.0  # zero is background
    counts = foreground_counts(logits)
    assert counts.dtype == torch.int64 and counts.tolist() == (logits > 0).sum((-2, -1)).tolist()
    assert counts[1, 2] == 0
    assert foreground_counts(logits[:0]).shape == (0, 3)


def test_iou_with_previous():
    logits = -torch.ones(1, 3, 4, 4)
    logits[0, 0, :2] = 1  # 8 px, 4 shared with prev -> 4 / 12
    logits[0, 1, :, :2] = 1  # 8 px, equal to prev -> 1
    prev = torch.zeros(1, 4, 4)
    prev[0, :, :2] = 0.75  # fractions: foreground above 0.5
    iou = iou_with_previous(logits, prev)
    assert iou[0].tolist() == pytest.approx([4 / 12, 1.0, 0.0])
    assert iou_with_previous(-torch.ones(1, 1, 4, 4), torch.zeros(1, 4, 4)).tolist() == [[0.0]]  # both empty


# --- configuration ------------------------------------------------------------------------------------------------
def test_presets_are_the_paper_ablation_rows():
    assert SamPDConfig.preset("full") == SamPDConfig()
    assert SamPDConfig().num_prompts == 18
    box = SamPDConfig.preset("box")
    assert (box.num_prompts, box.refine) == (1, False)
    assert SamPDConfig.preset("box+mp").num_prompts == 18 and not SamPDConfig.preset("box+mp").refine
    assert SamPDConfig.preset("point").prompt_type == "point"
    assert SamPDConfig.preset("full-iou").selection == "iou_prev"  # Table III "IoU-based": spatial cues
    # Table III in the paper's order, then the Table V rows, then our extensions
    assert list(PRESETS) == [
        "point", "point+refine", "box", "box+mp", "box+refine", "full", "full-iou",
        "full-no-neg-refine", "full-no-neg-mp", *EXTENSION_PRESETS,
    ]
    # negative points wherever a stage runs (Table IV's 1x1 row = Table III's "Box + Mask Refine"): on every Table III row
    for name in ("point", "point+refine", "box", "box+mp", "box+refine", "full", "full-iou"):
        c = SamPDConfig.preset(name)
        assert c.negatives_in_first_stage and c.negatives_in_refinement and c.negative_points > 0, name
    # Table V: negatives in one stage each; both = full
    stages = lambda c: (c.negatives_in_first_stage, c.negatives_in_refinement)  # noqa: E731
    assert stages(SamPDConfig.preset("full-no-neg-refine")) == (True, False)
    assert stages(SamPDConfig.preset("full-no-neg-mp")) == (False, True)
    assert stages(SamPDConfig.preset("full")) == stages(SamPDConfig.preset("full-iou")) == (True, True)
    # negatives stay a switch on any row
    assert stages(SamPDConfig.preset("box", negatives_in_first_stage=False)) == (False, True)
    cfg = SamPDConfig.preset("full", negative_points=2, similarity="cosine")
    assert SamPDConfig.from_dict(cfg.to_dict()) == cfg


def test_every_preset_is_labelled_with_its_table():
    assert list(PRESET_LABELS) == list(PRESETS)
    for name, label in PRESET_LABELS.items():
        if name in EXTENSION_PRESETS:
            assert "not in the paper" in label, name
        else:
            assert "Table III" in label or "Table V" in label or "Tables III/V" in label, name


def test_old_selection_name_iou_is_predicted_iou():
    """``"iou"`` was SAM's predicted IoU before the spatial reading existed; stored settings keep loading."""
    assert SamPDConfig(selection="iou").selection == "predicted_iou"
    assert SamPDConfig.from_dict({"selection": "iou"}) == SamPDConfig(selection="predicted_iou")
    assert SamPDConfig(selection="iou").to_dict()["selection"] == "predicted_iou"


@pytest.mark.parametrize(
    "kwargs, needle",
    [
        (dict(prompt_type="mask"), "prompt_type"),
        (dict(grid_size=2), "grid_size"),
        (dict(selection="none"), "selection='none'"),
        (dict(selection="semantic"), "iou_prev"),  # the message names the choices
        (dict(similarity="l2"), "similarity"),
        (dict(shift_step=1.5), "shift_step"),
        (dict(scales=()), "scales"),
        (dict(multimask_pick="smallest"), "multimask_pick"),
        (dict(decode_batch_size=-1), "decode_batch_size"),
    ],
)
def test_invalid_config_is_refused_by_name(kwargs, needle):
    with pytest.raises(ValueError, match=needle):
        SamPDConfig(**kwargs)
    with pytest.raises(ValueError, match="unknown preset"):
        SamPDConfig.preset("nope")


def test_mask_points_on_the_box_equal_the_whole_frame_transform():
    """Cropping to the mask's box is exact: random blobs, several components, masks touching the image border,
    thin lines, single pixels and ties (squares), large masks (distances in the hundreds), for several k."""
    rng = np.random.default_rng(3)
    masks = []
    for _ in range(60):
        h, w = rng.integers(8, 60, size=2)
        m = np.zeros((h, w), bool)
        for _ in range(rng.integers(1, 4)):
            y0, x0 = rng.integers(0, h), rng.integers(0, w)
            m[y0:y0 + rng.integers(1, h), x0:x0 + rng.integers(1, w)] = True
        m &= rng.random((h, w)) > rng.choice([0.0, 0.2])  # holes in some
        masks.append(m)
    sq = np.zeros((20, 30), bool)
    sq[4:8, 10:14] = True  # four tied centre pixels
    line = np.zeros((15, 15), bool)
    line[7, 2:13] = True
    masks += [sq, line, np.ones((6, 9), bool), np.eye(12, dtype=bool)]
    yy, xx = np.mgrid[:700, :1300]
    big = [np.pad(np.ones((401, 1201), bool), 3),  # distances up to 200, tied along the middle row
           ((yy - 350) ** 2 / 340 ** 2 + (xx - 640) ** 2 / 600 ** 2 < 1) & ~((yy - 300) ** 2 + (xx - 500) ** 2 < 900)]
    for m in masks + big:
        for k in (1, 3):
            assert mask_points(m, k).tolist() == points_whole_frame(m, k).tolist()
    # all masks at once (issue 22: one transform per point for all objects), empty masks included: the same points
    frames = np.zeros((len(masks) + 1, 60, 60), bool)
    for i, m in enumerate(masks):
        frames[i, :m.shape[0], :m.shape[1]] = m
    for k in (1, 3):
        assert [p.tolist() for p in masks_points(frames, k)] == [mask_points(f, k).tolist() for f in frames]
        boxes = [mask_to_box(f) for f in frames]  # (given by the caller: the same points)
        assert [p.tolist() for p in masks_points(frames, k, boxes)] == [mask_points(f, k).tolist() for f in frames]


def test_mask_points_beyond_a_thousand_pixels_from_the_boundary():
    """Squared distances of a million and more (a 4K frame's large object) are compared exactly too (float64; below
    that, float32 squares are exact: the first tied pixel wins)."""
    big = np.pad(np.ones((2101, 2207), bool), 2)  # distances up to 1051, tied along the middle row
    assert mask_points(big, 2).tolist() == points_whole_frame(big, 2).tolist()
    assert mask_points(big, 1).tolist() == [[1052, 1052]]  # distance 1051: row 1052, the first such column


def test_masks_boxes_are_mask_to_box_and_the_pixel_counts():
    """issue 22: boxes and areas of many full-frame masks, each searched only in its own rows."""
    rng = np.random.default_rng(7)
    masks = np.zeros((9, 48, 64), bool)
    for i in range(6):
        y, x = rng.integers(0, 40), rng.integers(0, 56)
        masks[i, y:y + rng.integers(1, 20), x:x + rng.integers(1, 30)] = rng.random() > 0.5
        masks[i] |= rng.random((48, 64)) > 0.995
    masks[6, 0, 0] = masks[6, 47, 63] = True  # the corners
    masks[7, :, 5] = True  # one column, all rows
    boxes, areas = masks_boxes(masks)  # masks[8] is empty
    for i, m in enumerate(masks):
        want = mask_to_box(m)
        assert (boxes[i] is None) == (want is None), i
        if want is not None:
            assert boxes[i].tolist() == want.tolist() and boxes[i].dtype == want.dtype, i
        assert areas[i] == int(m.sum()), i
    assert boxes[8] is None and areas[8] == 0


def test_mask_points_break_ties_the_same_way_every_call():
    """OpenCV's exact transform returns float distances that differ by one ulp between calls on the same input;
    compared as such, pixels at the same distance would win at random. Squared integer distances: the first pixel
    in row-major order, every time."""
    rng = np.random.default_rng(11)
    m = rng.random((37, 44)) > 0.3
    first = mask_points(m, 3).tolist()
    for _ in range(50):
        assert mask_points(m, 3).tolist() == first
    sq = np.zeros((9, 9), bool)
    sq[2:6, 2:6] = True  # four pixels at distance 2 from the boundary: (2, 2)... the first is (3, 3)
    assert mask_points(sq, 1).tolist() == [[3, 3]]
