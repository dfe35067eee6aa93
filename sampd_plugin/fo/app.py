"""FiftyOne App settings of SAM-PD output fields: each tracked object in its own colour, the same on every frame;
doubtful frames flagged in red.

The App colours labels from the dataset's ``app_config.color_scheme``; a field entry with
``colorByAttribute="index"`` colours its labels by ``Detection.index`` (the object id) when the scheme colours by
value. :func:`color_by_object` adds that entry for an output field under both paths it is shown under: ``frames.x``
on the videos, and ``x`` on frame samples (the failure views' frames, image sequences). Settings the user made are
kept: an existing entry of the path keeps its colour settings, and a colour mode the user chose is not changed.
The frame-level ``<x>_doubtful`` classification (:mod:`sampd_plugin.core.quality`) is drawn in :data:`DOUBTFUL_COLOR`.
"""
import fiftyone as fo

from sampd_plugin.core import quality
from sampd_plugin.fo.labels import field_name

#: the ``Detection`` attribute that identifies an object across frames
OBJECT_ATTRIBUTE = "index"
#: colour of the "doubtful" frame flag
DOUBTFUL_COLOR = "#ff3b30"


def field_paths(dataset, label_field):
    """The App paths of a frame field: ``["frames.x", "x"]`` on a video dataset, ``["x"]`` otherwise."""
    name = field_name(label_field)
    return [f"frames.{name}", name] if dataset.media_type == "video" else [name]


def color_by_object(dataset, label_field):
    """Sets the dataset's App color scheme so that the objects of ``label_field`` are coloured by ``index`` and its
    doubtful-frame flag is red (idempotent; saves the dataset only when something changed). Returns the scheme."""
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
            fields.append(dict(path=path, **settings))
            changed = True
        elif not any(entry.get(k) for k in settings):
            entry.update(settings)
            changed = True
    if scheme.color_by is None:  # the App's default, colour by field, gives one colour to every object
        scheme.color_by = "value"
        changed = True
    if changed:
        scheme.fields = fields
        dataset.app_config.color_scheme = scheme
        dataset.save()
    return scheme
