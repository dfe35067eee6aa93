"""Each paper concept pinned exactly: the prompt grid (Sec. III-C), Eq. 2, the refinement points and the multimask
pick (Sec. III-D)."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from sampd_plugin.config import PRESETS, SamPDConfig
from sampd_plugin.prompts import (
    box_prompt_grid,
    clip_boxes,
    mask_points,
    mask_to_box,
    negative_points,
    pack_points,
    refinement_point,
)
from sampd_plugin.selection import masked_template, pick_multimask, select_candidates, template_similarity


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


def test_mask_to_box_is_tight_and_exclusive():
    m = np.zeros((10, 12), bool)
    m[2:5, 3:9] = True
    assert mask_to_box(m).tolist() == [3, 2, 9, 5]
    assert mask_to_box(np.zeros((4, 4), bool)) is None


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


def test_eq2_equals_a_naive_full_correlation():
    g = torch.Generator().manual_seed(0)
    emb = torch.randn(8, 12, 14, generator=g)
    template = torch.randn(8, 4, 5, generator=g)
    masks = (torch.rand(6, 12, 14, generator=g) > 0.6).float() * torch.rand(6, 12, 14, generator=g)
    masks[3] = 0
    got = template_similarity(template, emb, masks)
    naive = F.conv2d((emb[None] * masks[:, None]), template[None], padding=(3, 4)).amax(dim=(1, 2, 3))
    assert torch.isinf(got[3]) and got[3] < 0
    keep = torch.tensor([0, 1, 2, 4, 5])
    # the naive version correlates over the whole grid: identical because the masks are zero outside their box
    assert torch.allclose(got[keep], naive[keep], atol=1e-4)


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


def test_mask_points_spreads_further_points():
    m = np.zeros((10, 40), bool)
    m[2:8, 2:38] = True
    pts = mask_points(m, 3)
    assert pts.shape == (3, 2)
    assert all(m[y, x] for x, y in pts)
    assert len({tuple(p) for p in pts}) == 3
    d = np.abs(pts[1:, 0] - pts[0, 0])
    assert (d >= 3).all()  # later points move away from the first one


def test_negative_points_come_from_other_objects_and_skip_own_mask():
    own = np.zeros((10, 10), bool)
    own[0:5, 0:5] = True
    others = [np.array([[7, 7]]), np.array([[2, 2], [8, 1]]), np.zeros((0, 2), np.int64)]
    neg = negative_points(others, own_mask=own)
    assert neg.tolist() == [[7, 7], [8, 1]]
    assert negative_points([]).shape == (0, 2)


def test_pack_points_pads_with_not_a_point_labels():
    pts, labels = pack_points([np.array([1, 2]), None], [np.array([[3, 4], [5, 6]]), np.array([[7, 8]])])
    assert pts.shape == (2, 3, 2)
    assert labels.tolist() == [[1, 0, 0], [0, -1, -1]]
    assert pts[0].tolist() == [[1, 2], [3, 4], [5, 6]]
    assert pack_points([None], [np.zeros((0, 2))]) == (None, None)


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


# --- configuration ------------------------------------------------------------------------------------------------
def test_presets_are_the_paper_ablation_rows():
    assert SamPDConfig.preset("full") == SamPDConfig()
    assert SamPDConfig().num_prompts == 18
    box = SamPDConfig.preset("box")
    assert (box.num_prompts, box.refine) == (1, False)
    assert SamPDConfig.preset("box+mp").num_prompts == 18 and not SamPDConfig.preset("box+mp").refine
    assert SamPDConfig.preset("point").prompt_type == "point"
    assert SamPDConfig.preset("full-iou").selection == "iou"
    assert set(PRESETS) >= {"point", "point+refine", "box", "box+mp", "box+refine", "full"}
    cfg = SamPDConfig.preset("full", negative_points=2)
    assert SamPDConfig.from_dict(cfg.to_dict()) == cfg


@pytest.mark.parametrize(
    "kwargs, needle",
    [
        (dict(prompt_type="mask"), "prompt_type"),
        (dict(grid_size=2), "grid_size"),
        (dict(selection="none"), "selection='none'"),
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
