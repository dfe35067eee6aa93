"""The paper's ablation order (Table III) must emerge on generated videos with the synthetic segmenter, whose masks
degrade with prompt noise (tight box -> lost parts, loose / shifted box -> leakage, single point -> ambiguity).

Synthetic numbers: they check that each component does its job, they are not the paper's DAVIS figures.
"""

import pytest

from sampd_plugin.benchmark import format_table, run_synthetic_ablation


@pytest.fixture(scope="module")
def table():
    t = run_synthetic_ablation(num_videos=10, num_frames=40, num_objects=3, height=240, width=320, seed=0)
    print("\n" + format_table(t, "synthetic ablation (10 videos x 40 frames x 3 objects)"))
    return {name: row["J&F-Mean"] for name, row in t.items()}


def test_multi_prompt_improves_vanilla_box(table):
    assert table["box"] < table["box+mp"] <= table["full"]


def test_refinement_improves_vanilla_box(table):
    assert table["box"] < table["box+refine"] <= table["full"]


def test_box_prompts_beat_point_prompts(table):
    assert table["point"] < table["box"]
    assert table["point"] < table["point+refine"]


def test_rows_can_be_named_configs():
    from sampd_plugin.config import SamPDConfig

    small = dict(num_videos=1, num_frames=6, num_objects=2, height=96, width=128, seed=3)
    by_name = run_synthetic_ablation(["box"], **small)
    by_config = run_synthetic_ablation({"my box": SamPDConfig.preset("box")}, **small)
    assert list(by_config) == ["my box"] and by_config["my box"] == by_name["box"]
