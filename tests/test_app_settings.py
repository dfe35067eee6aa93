"""App settings of SAM-PD output fields (``sampd_plugin.fo.app``): objects coloured by ``index``, user settings kept."""
import pytest

fo = pytest.importorskip("fiftyone")

import sampd_plugin as sp  # noqa: E402
from sampd_plugin.fo import app  # noqa: E402


def scheme_fields(ds):
    ds.reload()
    return {f["path"]: f for f in ds.app_config.color_scheme.fields}


def test_tracking_colours_each_object_by_index_and_keeps_user_settings(make_synthetic):
    ds = make_synthetic(num_videos=1, num_frames=2, num_objects=1, height=48, width=64)
    assert ds.app_config.color_scheme is None
    sp.track(ds, model="synthetic", progress=False)
    fields = scheme_fields(ds)
    assert fields["frames.sampd"]["colorByAttribute"] == "index"  # the videos
    assert fields["sampd"]["colorByAttribute"] == "index"  # frame samples (failure views)
    assert ds.app_config.color_scheme.color_by == "value"  # the mode in which colorByAttribute applies
    assert fields["frames.sampd_doubtful"]["valueColors"] == [{"value": "doubtful", "color": app.DOUBTFUL_COLOR}]

    # a user's own choices survive another output field
    ds.app_config.color_scheme.color_by = "instance"
    ds.app_config.color_scheme.fields = [dict(f, fieldColor="#ff0000") if f["path"] == "sampd" else f
                                         for f in ds.app_config.color_scheme.fields]
    ds.app_config.color_scheme.fields.append({"path": "frames.other", "colorByAttribute": "label"})
    ds.save()
    app.color_by_object(ds, "frames.other")
    sp.track(ds, model="synthetic", label_field="sampd_2", progress=False)
    fields = scheme_fields(ds)
    assert ds.app_config.color_scheme.color_by == "instance"
    assert fields["sampd"]["fieldColor"] == "#ff0000" and fields["frames.other"]["colorByAttribute"] == "label"
    assert fields["frames.sampd_2"]["colorByAttribute"] == "index" and fields["other"]["colorByAttribute"] == "index"
    images = fo.Dataset()
    try:
        assert app.field_paths(images, "x") == ["x"]  # image datasets: one path
    finally:
        images.delete()
