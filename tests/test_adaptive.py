"""Adaptive denoising (``SamPDConfig.adaptive``, preset ``adaptive``; our extension, not in the paper): the vanilla
candidate first, the one-to-many grid only when it looks suspect."""

import numpy as np
import pytest

from sampd_plugin.backends.synthetic import SyntheticSegmenter
from sampd_plugin.core.config import SamPDConfig
from sampd_plugin.core.prompts import box_prompt_grid
from sampd_plugin.core.tracker import ObjectPrompt, SamPDTracker, vanilla_index
from sampd_plugin.synthetic import SyntheticScene
from tests.toy_backend import ToyBackend, frames_of, moving_squares

import torch


def _prompts(id_maps, ids, frame=1):
    return [ObjectPrompt(object_id=i, frame_number=frame, mask=id_maps[frame] == i) for i in ids]


def _run(maps, cfg, ids=(1, 2)):
    return list(SamPDTracker(ToyBackend(maps), cfg).track(frames_of(maps), _prompts(maps, ids)))


def _synthetic_run(cfg, seed=1):
    scene = SyntheticScene(seed=seed, num_frames=10, num_objects=3, height=96, width=128)
    frames = list(scene.iter_frames())
    prompts = [ObjectPrompt(object_id=i, frame_number=1, mask=m) for i, m in scene.visible_masks(1).items()]
    return list(SamPDTracker(SyntheticSegmenter(scene), cfg).track(frames, prompts))


def _same(a, b):
    assert [r.frame_number for r in a] == [r.frame_number for r in b]
    for ra, rb in zip(a, b):
        for oid, oa in ra.objects.items():
            ob = rb.objects[oid]
            assert np.array_equal(oa.mask, ob.mask), (ra.frame_number, oid)
            assert (oa.score, oa.iou, oa.lost) == pytest.approx((ob.score, ob.iou, ob.lost)), (ra.frame_number, oid)


def test_vanilla_index_is_the_unshifted_unscaled_box():
    boxes = torch.tensor([[10.0, 20.0, 50.0, 40.0]])
    for grid, scales in ((3, (1.0, 1.05)), (5, (1.0, 1.05)), (3, (0.95, 1.0, 1.05)), (3, (1.0,))):
        cfg = SamPDConfig(grid_size=grid, scales=scales)
        g = box_prompt_grid(boxes, (100, 100), grid, cfg.shift_step, scales)
        assert g[0, vanilla_index(cfg)].tolist() == boxes[0].tolist(), (grid, scales)


def test_adaptive_off_is_full_and_always_suspect_is_full_too():
    """On the synthetic segmenter (masks degrade with prompt noise, so the pick matters): ``adaptive=False`` is
    ``full`` whatever its thresholds, and an adaptive run that finds every frame suspect (``adaptive_interval=1``)
    picks exactly ``full``'s masks from the grid it completes around the vanilla candidate, with the same number of
    prompts decoded (the vanilla box is decoded once, not twice)."""
    full = _synthetic_run(SamPDConfig.preset("full"))
    off = _synthetic_run(SamPDConfig.preset("adaptive", adaptive=False, adaptive_similarity=0.5, adaptive_area=0.9))
    _same(full, off)
    always = _synthetic_run(SamPDConfig.preset("adaptive", adaptive_interval=1))
    _same(full, always)
    assert [r.decoded_prompts for r in always] == [r.decoded_prompts for r in full]
    assert all(r.decoded_prompts == 3 * 19 for r in full[1:])


@pytest.mark.parametrize("dx", [0, 1])
def test_easy_objects_skip_the_grid_after_their_first_frame(dx):
    """A static / slowly moving square: the grid runs once per object (its first propagated frame: no history);
    then only the vanilla box and the refinement point are decoded, and the masks stay exact."""
    maps = moving_squares(10, objects=((1, 8, 8, dx), (2, 50, 36, -dx)), side=14)
    adaptive = _run(maps, SamPDConfig.preset("adaptive"))
    full = _run(maps, SamPDConfig.preset("full"))
    for r in adaptive:
        for oid, o in r.objects.items():
            assert np.array_equal(o.mask, maps[r.frame_number] == oid), (r.frame_number, oid)
    assert adaptive[1].decoded_prompts == 2 * 19
    assert [r.decoded_prompts for r in adaptive[2:]] == [2 * 2] * 8
    assert sum(r.decoded_prompts for r in adaptive) < sum(r.decoded_prompts for r in full) / 3


def test_a_jump_triggers_the_grid_on_that_frame_only():
    """Object 1 jumps by half its side on frame 6: its vanilla box holds half of it (area drop), so the grid runs
    for it on that frame (18 first-stage prompts, the vanilla one reused, + 1 refinement), not for object 2."""
    maps = moving_squares(9, objects=((1, 8, 8, 0), (2, 50, 36, 0)), side=14)
    for f in range(6, 10):
        maps[f] = np.where(maps[f] == 1, 0, maps[f])
        maps[f][8:22, 15:29] = 1
    adaptive = _run(maps, SamPDConfig.preset("adaptive"))
    assert [r.decoded_prompts for r in adaptive[2:]] == [4, 4, 4, 19 + 2, 4, 4, 4]
    for r in adaptive:
        assert np.array_equal(r.objects[1].mask, maps[r.frame_number] == 1), r.frame_number


def test_a_changed_appearance_triggers_the_grid_by_similarity():
    """On frame 5 object 1's pixels are replaced by another object (id 3, same place and shape): area and
    predicted IoU are unchanged, but the vanilla candidate's Eq. 2 similarity to object 1's template drops."""
    maps = moving_squares(7, objects=((1, 8, 8, 0), (2, 50, 36, 0)), side=14)
    maps[5] = np.where(maps[5] == 1, 3, maps[5])
    counts = [r.decoded_prompts for r in _run(maps, SamPDConfig.preset("adaptive"))]
    assert counts[2:5] == [4, 4, 19 + 2]
    no_sim = [r.decoded_prompts for r in _run(maps, SamPDConfig.preset("adaptive", adaptive_similarity=0.0))]
    assert no_sim[4] == 4


def test_lost_object_restarts_its_history():
    maps = moving_squares(9, objects=((1, 10, 10, 0), (2, 50, 30, 0)), side=14)
    for f in (4, 5):
        maps[f] = np.where(maps[f] == 2, 0, maps[f])
    results = _run(maps, SamPDConfig.preset("adaptive"))
    assert [r.objects[2].lost for r in results] == [False] * 3 + [True] * 2 + [False] * 4
    # frame 6 re-acquires object 2 from its last good box: no history, so the grid runs again for it
    assert results[5].decoded_prompts == 19 + 2
    assert [r.decoded_prompts for r in results[6:]] == [4, 4, 4]


@pytest.mark.parametrize("settings", [dict(prompt_type="point"), dict(grid_size=1, scales=(1.0,), selection="none"),
                                      dict(scales=(1.05, 1.1)), dict(adaptive_iou=1.5), dict(adaptive_area=-1),
                                      dict(adaptive_momentum=0), dict(adaptive_interval=-1)])
def test_invalid_adaptive_settings_are_refused(settings):
    with pytest.raises(ValueError):
        SamPDConfig.preset("adaptive", **settings)


def test_adaptive_is_a_preset_and_off_in_every_paper_preset():
    from sampd_plugin.core.config import EXTENSION_PRESETS, PRESET_LABELS, PRESETS

    assert SamPDConfig.preset("adaptive") == SamPDConfig(adaptive=True)
    assert "adaptive" in PRESET_LABELS and "adaptive" in EXTENSION_PRESETS
    assert not any(SamPDConfig.preset(name).adaptive for name in PRESETS if name not in EXTENSION_PRESETS)
