"""App settings of SAM-PD output fields (``sampd_plugin.fo.app``): objects coloured by ``index``, user settings kept."""
import numpy as np
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
    # each tracked index its palette colour, under both paths (the App's own colour for an index depends on a
    # per-session seed)
    indexes = ds.distinct("frames.sampd.detections.index")
    for path in ("frames.sampd", "sampd"):
        assert fields[path]["valueColors"] == [{"value": str(i), "color": app.object_color(i)} for i in indexes]

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


def _lab(hex_color):
    """CIE L*a*b* (D65) of an sRGB ``#rrggbb`` colour."""
    c = np.array([int(hex_color[i:i + 2], 16) for i in (1, 3, 5)]) / 255
    c = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    xyz = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]]) @ c
    t = xyz / np.array([0.95047, 1.0, 1.08883])
    f = np.where(t > (6 / 29) ** 3, np.cbrt(t), t / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.array([116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])]), xyz[1]


def test_object_colours_show_on_dark_and_light_frames_and_differ():
    labs = {c: _lab(c) for c in app.OBJECT_COLORS}
    for c, (_, luminance) in labs.items():  # WCAG contrast ratio against black and against white
        assert min((luminance + 0.05) / 0.05, 1.05 / (luminance + 0.05)) >= 2.3, c
    pairs = [np.linalg.norm(labs[a][0] - labs[b][0]) for i, a in enumerate(labs) for b in list(labs)[i + 1:]]
    assert min(pairs) >= 34
    assert min(np.linalg.norm(lab - _lab(app.DOUBTFUL_COLOR)[0]) for lab, _ in labs.values()) >= 34
    assert [app.object_color(i) for i in (0, 1, len(app.OBJECT_COLORS) + 1)] == [app.OBJECT_COLORS[0]] + [
        app.OBJECT_COLORS[1]] * 2


def test_the_open_app_gets_the_saved_scheme(make_synthetic):
    ds = make_synthetic(num_videos=1, num_frames=2, num_objects=2, height=48, width=64)
    assert app.session_color_scheme(ds) == {}
    sp.track(ds, model="synthetic", progress=False)
    params = app.session_color_scheme(ds)
    assert params["color_by"] == "value" and params["fields"] == ds.app_config.color_scheme.fields
    assert app.shown_paths(ds, ["frames.sampd", "ground_truth"]) == [
        "frames.sampd", "sampd", "frames.sampd_doubtful", "sampd_doubtful", "frames.ground_truth", "ground_truth"]


def test_the_scheme_is_handed_over_only_to_an_app_that_does_not_show_it(make_synthetic):
    """The App server's session scheme is built from the saved one when the App switches to the dataset: the same
    scheme again is not handed over (it makes the App recolour thumbnails it is still drawing); a field tracked since,
    or the App on another dataset or none, needs it (also with the App's snake_case spelling of the settings)."""
    import fiftyone.core.state as fos
    from fiftyone.server.events import state as server_state

    ds = make_synthetic(num_videos=1, num_frames=2, num_objects=2, height=48, width=64)
    sp.track(ds, model="synthetic", progress=False)
    before = server_state.get_state()
    try:
        assert not app.app_shows_color_scheme(ds)  # no App shows the dataset
        server_state.set_state(fos.StateDescription(dataset=ds, color_scheme=fos.build_color_scheme(None, ds)))
        assert app.app_shows_color_scheme(ds)
        handed = fo.ColorScheme(color_by="value", fields=[
            {"path": f["path"], "color_by_attribute": f.get("colorByAttribute"), "field_color": f.get("fieldColor"),
             "value_colors": f.get("valueColors"), "mask_targets_colors": None}
            for f in ds.app_config.color_scheme.fields])
        server_state.set_state(fos.StateDescription(dataset=ds, color_scheme=handed))  # as the App hands it back
        assert app.app_shows_color_scheme(ds)
        sp.track(ds, label_field="sampd_new", model="synthetic", progress=False)
        assert not app.app_shows_color_scheme(ds)  # the App shows the scheme without the new field
    finally:
        server_state.set_state(before)
