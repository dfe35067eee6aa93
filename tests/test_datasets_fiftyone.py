"""FiftyOne import / export of the official layouts, and the end to end path a researcher takes:
importer -> sampd_plugin.track -> exporter -> evaluator, on miniature trees written by sampd_plugin.synthetic.trees.
The DAVIS-protocol J&F of the FiftyOne field equals the score of the exported PNGs read the way the official toolkit
reads them."""

import os
import shutil
import zipfile

import numpy as np
import pytest
from PIL import Image

from sampd_plugin.datasets.labelmaps import read_label_map, write_label_map
from sampd_plugin.synthetic.trees import write_davis, write_uvo, write_youtube_vos

from .test_benchmark_cli import toolkit_jf


@pytest.fixture(scope="module")
def trees(tmp_path_factory):
    root = tmp_path_factory.mktemp("fo-trees")
    return dict(davis=write_davis(str(root / "davis"), num_sequences=2, num_frames=5),
                ytvos=write_youtube_vos(str(root / "ytvos"), num_videos=1, num_frames=12),
                uvo=write_uvo(str(root / "uvo"), num_videos=1, num_frames=3))


@pytest.fixture
def datasets(fo):
    made = []
    yield made
    for ds in made:
        if fo.dataset_exists(ds.name):
            fo.delete_dataset(ds.name)


def _masks(ds, field="ground_truth"):
    """``{(sequence, stem, index): full-frame mask}`` of a field (detections with masks only)."""
    from sampd_plugin.fo.labels import paste_mask

    out = {}
    for s in ds.select_fields(["sequence_id", "frame_number", "metadata", field]):
        hw = (s.metadata.height, s.metadata.width)
        for d in (s[field].detections if s[field] is not None else []):
            if d.mask is not None:
                out[(s.sequence_id, s.frame_number, d.index)] = paste_mask(d, hw)
    return out


def test_load_davis_has_the_zoo_schema(trees, datasets, tmp_path):
    from sampd_plugin.datasets.fiftyone_io import load_davis

    root = str(tmp_path / "davis")
    shutil.copytree(trees["davis"], root)
    # object 1 leaves frame 00002 of synthetic-0: the zoo keeps an empty detection for it (id 1 < max id 2)
    path = os.path.join(root, "Annotations", "480p", "synthetic-0", "00002.png")
    lm = read_label_map(path)
    write_label_map(path, np.where(lm == 1, 0, lm))
    ds = load_davis(root, "val", progress=False)
    datasets.append(ds)
    assert ds.media_type == "image" and len(ds) == 10
    s = ds.sort_by("filepath").first()
    assert s.sequence_id == "synthetic-0" and s.frame_number == "00000" and s.tags == ["val", "synthetic-0"]
    assert s.filepath.endswith(os.path.join("JPEGImages", "480p", "synthetic-0", "00000.jpg"))
    dets = s.ground_truth.detections
    assert [d.index for d in dets] == [0, 1] and [d.label for d in dets] == ["synthetic-00", "synthetic-01"]
    assert isinstance(ds.get_field("frame_number"), type(ds.get_field("sequence_id")))  # both strings
    gap = ds.match({"sequence_id": "synthetic-0", "frame_number": "00002"}).first().ground_truth.detections
    assert gap[0].index == 0 and gap[0].mask is None and gap[0].bounding_box == [0.0, 0.0, 0.0, 0.0]
    # masks: the annotation's ids (void pixels belong to no object)
    for (seq, stem, idx), m in _masks(ds).items():
        lm = read_label_map(os.path.join(root, "Annotations", "480p", seq, stem + ".png"))
        assert np.array_equal(m, lm == idx + 1)
    assert ds.first().synthetic["seed"] in (0, 1)  # generated tree: the scene for model="synthetic"


def test_davis_export_reimports_to_identical_masks(trees, datasets, tmp_path):
    from sampd_plugin.datasets.fiftyone_io import export_davis, load_davis

    ds = load_davis(trees["davis"], progress=False)
    datasets.append(ds)
    out = str(tmp_path / "export")
    export_davis(ds, "ground_truth", out, progress=False)
    for seq in ("synthetic-0", "synthetic-1"):
        for i in range(5):
            written = np.array(Image.open(os.path.join(out, seq, f"{i:05d}.png")))
            original = read_label_map(os.path.join(trees["davis"], "Annotations", "480p", seq, f"{i:05d}.png"))
            assert np.array_equal(written, np.where(original == 255, 0, original))
    # a tree whose annotations are the export imports to the same masks
    again_root = str(tmp_path / "again")
    os.makedirs(os.path.join(again_root, "Annotations"))
    os.symlink(os.path.join(trees["davis"], "JPEGImages"), os.path.join(again_root, "JPEGImages"))
    os.symlink(os.path.join(trees["davis"], "ImageSets"), os.path.join(again_root, "ImageSets"))
    os.symlink(out, os.path.join(again_root, "Annotations", "480p"))
    again = load_davis(again_root, progress=False)
    datasets.append(again)
    a, b = _masks(ds), _masks(again)
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def test_end_to_end_davis(trees, datasets, tmp_path):
    import sampd_plugin as sp
    from sampd_plugin.datasets.fiftyone_io import export_davis, load_davis

    ds = load_davis(trees["davis"], progress=False)
    datasets.append(ds)
    summary = sp.track(ds, prompt_field="ground_truth", label_field="sampd", model="synthetic", progress=False)
    assert summary["frames"] == 10
    out = export_davis(ds, "sampd", str(tmp_path / "results"), progress=False)
    jf, j, f = toolkit_jf(trees["davis"], out)
    res = sp.evaluate_jf(ds, "sampd", gt_field="ground_truth", eval_key="davis", protocol="davis")
    assert res.summary["J&F-Mean"] == pytest.approx(jf, abs=1e-6)
    assert res.summary["J-Mean"] == pytest.approx(j, abs=1e-6) and res.summary["F-Mean"] == pytest.approx(f, abs=1e-6)
    assert res.summary["num_objects"] == 4
    objects = sp.evaluate_jf(ds, "sampd", gt_field="ground_truth", eval_key="objects", protocol="objects")
    assert objects.summary["num_objects"] == 4 and 0 < objects.summary["J&F-Mean"] <= 1
    with pytest.raises(ValueError, match="protocol must be one of"):
        sp.evaluate_jf(ds, "sampd", eval_key=None, protocol="coco")
    # YouTube-VOS scoring: the last frame counts, seen / unseen from the dataset's training categories
    ds.info["seen_categories"] = ["synthetic-00", "synthetic-10"]
    ds.save()
    yt = sp.evaluate_jf(ds, "sampd", gt_field="ground_truth", eval_key=None, protocol="youtube_vos")
    assert {r["num_frames"] for r in yt.per_object()} == {4} and {r["num_frames"] for r in res.per_object()} == {3}
    g = yt.summary["youtube_vos"]
    parts = [g[k] for k in ("J_seen", "F_seen", "J_unseen", "F_unseen")]
    assert g["G"] == pytest.approx(np.mean(parts))
    seen = [r for r in yt.per_object() if r["label"] in ds.info["seen_categories"]]
    assert len(seen) == 2 and g["J_seen"] == pytest.approx(np.mean([r["J_mean"] for r in seen]))
    # the CLI on the same tree feeds the model the same pixels and prompts: the same score
    from sampd_plugin.benchmark.cli import main

    cli = main(["davis", "--root", trees["davis"], "--out", str(tmp_path / "cli"), "--quiet"])
    assert cli["tables"]["main"]["full"]["J&F-Mean"] == pytest.approx(jf, abs=1e-6)


def test_end_to_end_youtube_vos(trees, datasets, tmp_path):
    import json

    import sampd_plugin as sp
    from sampd_plugin.datasets.fiftyone_io import export_youtube_vos, load_youtube_vos

    ds = load_youtube_vos(trees["ytvos"], "valid", progress=False)
    datasets.append(ds)
    assert len(ds) == 12 and ds.count_values("submission_frame") == {True: 3, False: 9}
    assert ds.info["seen_categories"]
    late = ds.match({"frame_number": "00010"}).first().ground_truth.detections
    assert [d.index for d in late] == [2]  # object 3 of meta.json first appears here
    sp.track(ds, prompt_field="ground_truth", label_field="sampd", model="synthetic", progress=False)
    z = export_youtube_vos(ds, "sampd", str(tmp_path / "sub"), progress=False)
    with open(os.path.join(trees["ytvos"], "valid", "meta.json")) as f:
        meta = json.load(f)["videos"]
    (video, m), = meta.items()
    with zipfile.ZipFile(z) as zf:
        assert sorted(zf.namelist()) == [f"Annotations/{video}/{s}.png" for s in ("00000", "00005", "00010")]
        with zf.open(f"Annotations/{video}/00010.png") as fh:
            ids = set(np.unique(np.array(Image.open(fh))).tolist()) - {0}
    assert ids <= {int(k) for k in m["objects"]} and 3 in ids  # meta.json ids, the late object included


def test_load_uvo(trees, datasets):
    from sampd_plugin.datasets.fiftyone_io import load_uvo
    from sampd_plugin.synthetic import SyntheticScene

    ds = load_uvo(trees["uvo"], progress=False)
    datasets.append(ds)
    assert len(ds) == 3 and ds.distinct("video_id") == [1]
    scene = SyntheticScene(**{k: v for k, v in ds.first().synthetic.items() if k != "start_frames"})
    for s in ds.sort_by("frame_number"):
        t = int(s.frame_number) + 1
        ids = scene.render_ids(t)
        for (seq, stem, idx), m in _masks(ds.select(s.id)).items():
            assert np.array_equal(m, ids == idx + 1)
