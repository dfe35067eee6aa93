"""FiftyOne App settings of SAM-PD output fields: each tracked object in its own colour, the same on every frame and
in every view; doubtful frames flagged in red; the settings shown by an App that is already open.

The App colours labels from the dataset's ``app_config.color_scheme``; a field entry with
``colorByAttribute="index"`` colours its labels by ``Detection.index`` (the object id) when the scheme colours by
value, and its ``valueColors`` give the colour of each index. :func:`color_by_object` adds that entry for an output
field under both paths it is shown under: ``frames.x`` on the videos, and ``x`` on frame samples (the failure views'
frames, image sequences), with one :func:`object_color` per index (without ``valueColors`` the App would draw an
index in a colour hashed from its session's colour seed: different in another view or session, and dark in FiftyOne's
default pool). Settings the user made are kept: an existing entry of the path keeps its colour settings and the
colours it gives to indexes, and a colour mode the user chose is not changed. The frame-level ``<x>_doubtful``
classification (:mod:`sampd_plugin.core.quality`) is drawn in :data:`DOUBTFUL_COLOR`.

A running App reads the dataset's scheme only when it switches to the dataset; :func:`session_color_scheme` is what an
operator hands to the App's ``set_color_scheme`` operator to show new settings at once, where
:func:`app_shows_color_scheme` says the App does not show them yet.

:func:`annotation_schema` gives an output field the label schema of the App's Annotate tab (sample modal), so that a
person can correct masks there at once (without setting the field up and scanning it in the schema manager, whose
scanned range of ``index`` would refuse a new object's id). The plugin's operators give it when the App opens the
dataset and after a run in the App, not when the field is created: FiftyOne 1.22's ``delete_frame_field`` fails on a
frame field that has a label schema (it looks the schema up without the ``frames.`` prefix), so a field only ever
written from Python stays deletable as is.
"""
import logging

import fiftyone as fo

from sampd_plugin.core import quality
from sampd_plugin.fo.labels import TRACKER_ATTRIBUTES, field_name

logger = logging.getLogger(__name__)

#: the ``Detection`` attribute that identifies an object across frames
OBJECT_ATTRIBUTE = "index"
#: colour of the "doubtful" frame flag
DOUBTFUL_COLOR = "#ff3b30"
#: object colours, by ``index`` modulo their number: saturated, of medium lightness (CIE L* 52-69: a WCAG contrast
#: ratio of at least 2.3 against both black and white, so a mask shows on dark and on light frames), at least 34
#: CIE76 units apart from each other and from :data:`DOUBTFUL_COLOR` (``tests/test_app_settings.py`` measures it)
OBJECT_COLORS = ("#337aff", "#0fbd0f", "#ff8000", "#ff008c", "#0b8e8e", "#d900ff", "#8e870b", "#00b2ff",
                 "#0b8e46", "#f042d6")


def object_color(index):
    """The colour of object ``index`` (``Detection.index``): :data:`OBJECT_COLORS` cycled."""
    return OBJECT_COLORS[int(index) % len(OBJECT_COLORS)]


def field_paths(dataset, label_field):
    """The App paths of a frame field: ``["frames.x", "x"]`` on a video dataset, ``["x"]`` otherwise."""
    name = field_name(label_field)
    return [f"frames.{name}", name] if dataset.media_type == "video" else [name]


def color_by_object(dataset, label_field, indexes=()):
    """Sets the dataset's App color scheme so that the objects of ``label_field`` are coloured by ``index``, objects
    ``indexes`` in their :func:`object_color`, and its doubtful-frame flag is red (idempotent; saves the dataset only
    when something changed). Returns the scheme."""
    scheme = dataset.app_config.color_scheme or fo.ColorScheme()
    fields = [dict(f) for f in (scheme.fields or [])]
    changed = False
    doubtful = field_name(label_field) + quality.DOUBTFUL_SUFFIX
    wanted = [(p, {"colorByAttribute": OBJECT_ATTRIBUTE}) for p in field_paths(dataset, label_field)]
    wanted += [(p, {"fieldColor": DOUBTFUL_COLOR, "valueColors": [{"value": quality.DOUBTFUL_TAG,
                                                                    "color": DOUBTFUL_COLOR}]})
               for p in field_paths(dataset, doubtful)]
    for path, settings in wanted:
        entry = next((f for f in fields if f.get("path") == path), None)
        if entry is None:
            entry = dict(path=path, **settings)
            fields.append(entry)
            changed = True
        elif not any(entry.get(k) for k in settings):
            entry.update(settings)
            changed = True
        if entry.get("colorByAttribute") == OBJECT_ATTRIBUTE:
            changed |= _add_index_colors(entry, indexes)
    if scheme.color_by is None:  # the App's default, colour by field, gives one colour to every object
        scheme.color_by = "value"
        changed = True
    if changed:
        scheme.fields = fields
        dataset.app_config.color_scheme = scheme
        dataset.save()
    return scheme


def _add_index_colors(entry, indexes):
    """Adds a ``valueColors`` item to a colour-by-index entry for each of ``indexes`` it has none for."""
    colors = list(entry.get("valueColors") or [])
    known = {str(c.get("value")) for c in colors}
    new = [dict(value=str(int(i)), color=object_color(i)) for i in sorted({int(i) for i in indexes if i is not None})
           if str(int(i)) not in known]
    if new:
        entry["valueColors"] = colors + new
    return bool(new)


def session_color_scheme(dataset):
    """The dataset's saved App color scheme as the parameters of the App's built-in ``set_color_scheme`` operator
    (``ctx.trigger("set_color_scheme", params)``): an open App shows it without reloading the dataset."""
    scheme = dataset.app_config.color_scheme
    if scheme is None:
        return {}
    params = dict(color_by=scheme.color_by, fields=[dict(f) for f in (scheme.fields or [])])
    if scheme.color_pool:
        params["color_pool"] = list(scheme.color_pool)
    if scheme.opacity is not None:
        params["opacity"] = scheme.opacity
    return {k: v for k, v in params.items() if v is not None}


def app_shows_color_scheme(dataset):
    """Whether the App server this runs in (an operator executing in the App) already shows ``dataset``'s saved
    colour scheme: its session scheme (built from the saved one when the App switched to the dataset, kept after it,
    page reloads included) has the saved colour mode and field settings. Then :func:`session_color_scheme` need not be
    handed over again, and must not be: FiftyOne 1.22's grid recolours the thumbnails it is still painting, and on a
    busy machine some of them then keep their boxes without their masks until they are redrawn. ``False`` outside an
    App server or where the App shows another dataset."""
    from fiftyone.server.events.state import get_state

    state = get_state()
    saved, shown = dataset.app_config.color_scheme, state.color_scheme
    if state.dataset is None or state.dataset.name != dataset.name or shown is None:
        return False
    if saved is None:
        return True
    return saved.color_by in (None, shown.color_by) and _field_settings(saved) == _field_settings(shown)


def _field_settings(scheme):
    """``{path: {setting: value}}`` of a colour scheme's field entries, whatever their spelling: the App hands them
    back with snake_case keys (``color_by_attribute``), the saved scheme has camelCase ones; empty settings left out."""
    def key(k):
        return k.replace("_", "").lower()

    def value(v):
        return sorted((str(i.get("value")), i.get("color")) for i in v) if isinstance(v, (list, tuple)) else v

    return {f.get("path"): {key(k): value(v) for k, v in dict(f).items() if k != "path" and v not in (None, [], {})}
            for f in (scheme.fields or [])}


def shown_paths(dataset, label_fields):
    """The App sidebar paths that show ``label_fields`` and, for SAM-PD output fields, their doubtful flag, under
    both paths of a video dataset (:func:`field_paths`): ticked together, the labels stay visible when the App
    switches between the videos and the failure views' frames (a frames view has none of the ``frames.x`` paths, so a
    sidebar with only those shows no labels there)."""
    paths = []
    for f in label_fields:
        if not f:
            continue
        paths += field_paths(dataset, f)
        doubtful = field_name(f) + quality.DOUBTFUL_SUFFIX
        if dataset.has_field(field_paths(dataset, doubtful)[0]):
            paths += field_paths(dataset, doubtful)
    return list(dict.fromkeys(paths))


def annotation_schema(dataset, label_field):
    """Gives ``label_field`` (a SAM-PD output field) the App's annotation label schema and activates it, unless it
    has one: the label a free text, ``index`` a free integer (no scanned range to refuse a new object's id), the
    tracker's attributes (:data:`sampd_plugin.fo.labels.TRACKER_ATTRIBUTES`) read-only. Only these attributes are
    listed: an evaluation's ``<key>_J`` is deleted with its run, and FiftyOne refuses to delete an attribute that a
    label schema lists."""
    path = field_paths(dataset, label_field)[0]
    if path in dataset.label_schemas:
        return
    types = {"score": "float", "iou": "float", "confidence": "float", "lost": "bool", "is_prompt": "bool"}
    attributes = [dict(name="id", type="id", component="text", read_only=True),
                  dict(name="index", type="int", component="text"),
                  dict(name="tags", type="list<str>", component="text")]
    attributes += [dict(name=a, type=types[a], component="toggle" if types[a] == "bool" else "text", read_only=True)
                   for a in TRACKER_ATTRIBUTES]
    for attempt in range(2):
        dataset.reload()  # FiftyOne validates against the field's subfields, which a field just added lacks until then
        try:
            if path not in dataset.label_schemas:  # another worker may have set it meanwhile
                dataset.update_label_schema(path, dict(type="detections", component="text", attributes=attributes))
            dataset.activate_label_schemas(path)
            return
        except Exception as e:  # another process still declaring the field's attributes: once more, then let it be
            error = e
    logger.warning("the App's annotation schema of '%s' was not set (the next run or re-propagation sets it): %s",
                   path, error)
