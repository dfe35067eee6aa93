"""Reliability, second round (issue 21): the dataset importers are all-or-nothing and check every annotation against
its frame and every JSON against its schema, with errors naming the file, the sequence and the frame; the exporters
never mix a new export with an older one. Miniature trees in the official layouts (sampd_plugin.synthetic.trees).
Each test is cited by a row of docs/reliability.md."""

import json
import os
import shutil
import zipfile

import numpy as np
import pytest
from PIL import Image

from sampd_plugin.datasets.labelmaps import read_label_map, write_label_map
from sampd_plugin.synthetic.trees import write_davis, write_uvo, write_youtube_vos

fo = pytest.importorskip("fiftyone")


@pytest.fixture(scope="module")
def trees(tmp_path_factory):
    root = tmp_path_factory.mktemp("io-trees")
    return dict(davis=write_davis(str(root / "davis"), num_sequences=2, num_frames=5, height=48, width=64),
                ytvos=write_youtube_vos(str(root / "ytvos"), num_videos=2, num_frames=11, height=48, width=64),
                uvo=write_uvo(str(root / "uvo"), num_videos=2, num_frames=3, height=48, width=64))


@pytest.fixture
def copy(trees, tmp_path):
    def make(kind):
        dst = str(tmp_path / kind)
        shutil.copytree(trees[kind], dst)
        return dst

    return make


@pytest.fixture
def no_new_datasets():
    """Asserts that the test leaves no dataset behind (a failed import deletes what it built)."""
    before = set(fo.list_datasets())
    yield
    assert set(fo.list_datasets()) == before


# --- DAVIS ---------------------------------------------------------------------------------------------------------
def _davis_ann(root, seq="synthetic-1", stem="00003"):
    return os.path.join(root, "Annotations", "480p", seq, stem + ".png")


def _resized(path):
    lm = read_label_map(path)
    write_label_map(path, np.kron(lm, np.ones((2, 2), np.uint8)))  # twice the size of its JPEG


def _rgb(path):
    Image.fromarray(np.zeros((48, 64, 3), np.uint8)).save(path)


def _truncated(path):
    data = open(path, "rb").read()
    with open(path, "wb") as f:
        f.write(data[: len(data) // 2])


@pytest.mark.parametrize("spoil, message", [
    (_resized, r"is 128x96 but its frame is 64x48"),
    (_rgb, r"mode 'RGB' PNG"),
    (_truncated, r"not a readable image"),
])
def test_davis_import_refuses_an_annotation_that_is_not_its_frames_and_leaves_nothing(copy, no_new_datasets, spoil,
                                                                                     message):
    from sampd_plugin.datasets.fiftyone_io import load_davis

    root = copy("davis")
    path = _davis_ann(root)  # a later frame of the second sequence: the first one would already be imported
    spoil(path)
    with pytest.raises(ValueError, match=message) as err:
        load_davis(root, progress=False)
    assert "DAVIS sequence 'synthetic-1', frame 00003" in str(err.value) and path in str(err.value)


def test_a_failed_import_keeps_the_dataset_it_would_replace(copy, no_new_datasets):
    from sampd_plugin.datasets.fiftyone_io import load_davis

    root = copy("davis")
    ds = load_davis(root, name="davis-keep", progress=False)
    try:
        _truncated(_davis_ann(root))
        with pytest.raises(ValueError, match="not a readable image"):
            load_davis(root, name="davis-keep", overwrite=True, progress=False)
        assert fo.load_dataset("davis-keep").count("ground_truth") == len(ds) == 10  # untouched
    finally:
        fo.delete_dataset("davis-keep")


# --- YouTube-VOS ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("meta, message", [
    ("{not json", r"valid/meta.json: not valid JSON \(.* at line 1, column 2\)"),
    ('{"videos": []}', r"valid/meta.json: top level: expected an object with a 'videos' object"),
    ('{"videos": {"synthetic000000": {"objects": []}}}', r"video 'synthetic000000': expected an object with an "
                                                          r"'objects' object"),
    ('{"videos": {"synthetic000000": {"objects": {"x": {}}}}}', r"object 'x': object ids are integers"),
    ('{"videos": {"synthetic000000": {"objects": {"1": {"frames": "00000"}}}}}', r"'frames' must be a list"),
])
def test_youtube_vos_meta_json_is_checked_against_the_schema(copy, no_new_datasets, meta, message):
    from sampd_plugin.datasets.fiftyone_io import load_youtube_vos

    root = copy("ytvos")
    with open(os.path.join(root, "valid", "meta.json"), "w") as f:
        f.write(meta)
    with pytest.raises(ValueError, match=message):
        load_youtube_vos(root, "valid", progress=False)


def test_youtube_vos_bad_train_meta_leaves_no_empty_dataset(copy, no_new_datasets):
    from sampd_plugin.datasets.fiftyone_io import load_youtube_vos

    root = copy("ytvos")
    with open(os.path.join(root, "train", "meta.json"), "w") as f:
        f.write('{"videos": {"v": 3}}')
    with pytest.raises(ValueError, match=r"train/meta.json: video 'v'"):
        load_youtube_vos(root, "valid", progress=False)


def test_youtube_vos_annotation_of_another_size_is_refused(copy, no_new_datasets):
    from sampd_plugin.datasets.fiftyone_io import load_youtube_vos

    root = copy("ytvos")
    folder = os.path.join(root, "valid", "Annotations", "synthetic000001")
    path = os.path.join(folder, sorted(os.listdir(folder))[-1])
    _resized(path)
    with pytest.raises(ValueError, match=r"YouTube-VOS video 'synthetic000001', frame \d+: annotation .* is "
                                         r"128x96 but its frame is 64x48"):
        load_youtube_vos(root, "valid", progress=False)


# --- UVO -----------------------------------------------------------------------------------------------------------
def _spoil_uvo(root, spoil):
    from sampd_plugin.datasets.uvo import annotation_file

    path = annotation_file(root, "val")
    with open(path) as f:
        data = json.load(f)
    ann = data["annotations"][-1]  # a track of the last video: the first video would already be imported
    t = max(i for i, seg in enumerate(ann["segmentations"]) if seg)
    ann["segmentations"][t] = spoil(ann["segmentations"][t])
    with open(path, "w") as f:
        json.dump(data, f)
    return path, ann["id"], t


def _half_width_counts():
    """Compressed counts of a 48 x 32 mask: a well-formed RLE of half the frame (pycocotools would decode it into a
    48 x 64 mask from uninitialised memory)."""
    from sampd_plugin.datasets.uvo import encode_rle

    return encode_rle(np.ones((48, 32), bool))["counts"]


@pytest.mark.parametrize("spoil, message", [
    (lambda seg: dict(seg, counts=_half_width_counts()), r"the RLE's run lengths cover 1536 pixels .* the frame has "
                                                         r"48 x 64 = 3072"),
    (lambda seg: dict(seg, counts="0P"), r"the compressed RLE counts are not valid"),
    (lambda seg: dict(seg, counts=[-5, 3077]), r"negative runs: True"),
    (lambda seg: dict(seg, size=[96, 64]), r"the RLE's size is \[96, 64\] but the frame is \[48, 64\]"),
    (lambda seg: [[1, 2, 3]], r"a polygon segmentation is a list of"),
    (lambda seg: "oops", r"a segmentation is null, an RLE"),
])
def test_uvo_segmentations_are_checked_against_their_frame(copy, no_new_datasets, spoil, message):
    from sampd_plugin.datasets.fiftyone_io import load_uvo

    root = copy("uvo")
    path, ann, t = _spoil_uvo(root, spoil)
    with pytest.raises(ValueError, match=message) as err:
        load_uvo(root, progress=False)
    assert f"{path}: annotation {ann} (video 2), frame {t}" in str(err.value)


def test_uvo_polygons_are_rasterised_and_json_schema_is_checked(copy, no_new_datasets, tmp_path):
    from sampd_plugin.datasets.fiftyone_io import load_uvo
    from sampd_plugin.datasets.uvo import annotation_file

    root = copy("uvo")
    _spoil_uvo(root, lambda seg: [[10, 10, 30, 10, 30, 20, 10, 20]])  # a valid polygon: a 20 x 10 box
    ds = load_uvo(root, progress=False)
    try:
        dets = [d for s in ds for d in (s.ground_truth.detections if s.ground_truth else []) if d.mask is not None]
        assert any(d.mask.shape == (10, 20) and d.mask.all() for d in dets)  # pycocotools' rasterisation
    finally:
        ds.delete()
    path = annotation_file(root, "val")
    for data, message in (([], r"top level: expected an object"),
                          ({"videos": [{"id": 1}], "annotations": []}, r"video 1: 'file_names' must be"),
                          ({"videos": [{"id": 1, "file_names": ["a/0.png"], "height": "48"}], "annotations": []},
                           r"'height' must be a positive integer"),
                          ({"videos": [], "annotations": [{"id": 1, "video_id": 9, "segmentations": []}]},
                           r"annotations of video\(s\) \['9'\]: no such video")):
        with open(path, "w") as f:
            json.dump(data, f)
        with pytest.raises(ValueError, match=message):
            load_uvo(root, progress=False)


# --- exporters -----------------------------------------------------------------------------------------------------
def test_exporters_refuse_a_non_empty_folder_and_overwrite_clears_it(trees, tmp_path):
    from sampd_plugin.datasets.fiftyone_io import export_davis, export_youtube_vos, load_davis, load_youtube_vos

    ds = load_davis(trees["davis"], progress=False)
    yt = load_youtube_vos(trees["ytvos"], "valid", progress=False)
    try:
        out = tmp_path / "davis-results"
        export_davis(ds, "ground_truth", str(out), progress=False)
        stale = out / "old-sequence" / "00000.png"
        stale.parent.mkdir()
        stale.write_bytes(b"stale")
        with pytest.raises(ValueError, match=r"davis-results is not empty \(.*\): pass overwrite=True"):
            export_davis(ds, "ground_truth", str(out), progress=False)
        export_davis(ds, "ground_truth", str(out), overwrite=True, progress=False)
        assert sorted(os.listdir(out)) == ["synthetic-0", "synthetic-1"]  # the stale sequence is gone
        # YouTube-VOS: the zip holds this export only (an older video is not zipped again)
        sub = tmp_path / "sub"
        old = sub / "Annotations" / "older-video" / "00000.png"
        old.parent.mkdir(parents=True)
        write_label_map(str(old), np.zeros((4, 4), np.uint8))
        with pytest.raises(ValueError, match="pass overwrite=True"):
            export_youtube_vos(yt, "ground_truth", str(sub), progress=False)
        z = export_youtube_vos(yt.match({"sequence_id": "synthetic000000"}), "ground_truth", str(sub),
                               overwrite=True, progress=False)
        with zipfile.ZipFile(z) as zf:
            assert {n.split("/")[1] for n in zf.namelist()} == {"synthetic000000"}
        # a zip elsewhere that exists is refused too; a folder holding the dataset's media is never cleared
        elsewhere = tmp_path / "elsewhere.zip"
        elsewhere.write_bytes(b"old")
        with pytest.raises(ValueError, match="elsewhere.zip"):
            export_youtube_vos(yt, "ground_truth", str(tmp_path / "empty"), zip_path=str(elsewhere), progress=False)
        with pytest.raises(ValueError, match="holds the dataset's own media"):
            export_davis(ds, "ground_truth", trees["davis"], overwrite=True, progress=False)
        assert os.path.isdir(os.path.join(trees["davis"], "JPEGImages"))
        (tmp_path / "a-file").write_text("x")
        with pytest.raises(ValueError, match="is a file, not a folder"):
            export_davis(ds, "ground_truth", str(tmp_path / "a-file"), progress=False)
    finally:
        ds.delete()
        yt.delete()
