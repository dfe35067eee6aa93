"""Which fields and saved views are provably SAM-PD's own: nothing else is ever written, renamed or deleted.

A field the plugin declares carries a *stamp* in its ``info``: ``{"sampd": {"id": ..., "role": ...}}``. FiftyOne
keeps a field's ``info`` when the field is renamed and drops it with the field, so the identity survives a rename
and dies with a delete; a field a person makes (``add_sample_field``, ``clone_frame_field("ground_truth", ...)``, a
dict field that happens to hold a ``run`` key) has no stamp.

Tracking: an output field ``f`` comes with the sample-level run marker ``f_track`` and the frame quality fields
``f_confidence``, ``f_doubtful`` (:mod:`sampd_plugin.fo.labels`). When ``f`` is declared an *output id* is drawn and
stamped on all of them (roles ``"marker"``, ``"labels"``, ``"confidence"``, ``"doubtful"``). ``f`` is ours only if
its stamp has the id of the marker named after it (:func:`output_identity`); a marker whose output field is gone
(deleted, or renamed without its marker) is *stale*: its values are ignored and it is deleted, with the quality
fields of its id, when ``f`` is declared again (:func:`sampd_plugin.fo.store.ensure_output_field`, under
:func:`declaring`, so that two runs starting at once agree on one id).

Evaluations: a J&F run (:mod:`sampd_plugin.fo.evaluation`) has a *run id* in its config; every field it writes is
stamped with it (role ``"evaluation"``) and every saved view it saves says it in its description
(:func:`view_description`); the config records both lists, so deleting or renaming the run touches exactly them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
import uuid
from typing import Dict, List, Optional

import fiftyone.core.fields as fof

from sampd_plugin.errors import SampdRunError
from sampd_plugin.fo.labels import field_name, marker_field, quality_fields
from sampd_plugin.fo.sources import dataset_id
from sampd_plugin.ops import ownership

#: the key of a stamp in a field's ``info``
STAMP = "sampd"
#: the roles of the fields a tracking run declares, by field (``None``: the output field itself)
MARKER, LABELS, EVALUATION = "marker", "labels", "evaluation"
#: the dataset-scoped execution store of the declaration locks (:func:`declaring`)
LOCKS_STORE = "sampd_declarations"
#: a declaration lock whose holder has not finished after this many seconds (or whose process is gone) is taken over
DECLARE_STALE_SECONDS = 30


def new_id() -> str:
    """A new output id or evaluation run id."""
    return uuid.uuid4().hex


def stamped_info(info: Optional[dict], id_: str, role: str) -> dict:
    """``info`` (a field's) with the stamp of ``id_`` in ``role``; other keys are kept."""
    return dict(info or {}, **{STAMP: {"id": id_, "role": role}})


def stamp_id(field, role: str) -> Optional[str]:
    """The id of the stamp of ``field`` (a field object, or ``None``) when it has one in ``role``, else ``None``."""
    info = getattr(field, "info", None)
    stamp = info.get(STAMP) if isinstance(info, dict) else None
    if isinstance(stamp, dict) and stamp.get("role") == role and isinstance(stamp.get("id"), str):
        return stamp["id"]
    return None


def stamp_field(dataset, path: str, id_: str, role: str):
    """Stamps the existing field ``path`` of ``dataset`` (a frame field as ``frames.x``)."""
    field = dataset.get_field(path)
    field.info = stamped_info(field.info, id_, role)
    field.save()


def label_path(dataset, name: str) -> str:
    """The path of a frame label field of ``dataset``: ``frames.<name>`` (videos) or ``<name>`` (images)."""
    return f"frames.{name}" if dataset.media_type == "video" else name


# --- tracking outputs ----------------------------------------------------------------------------------------------
@dataclasses.dataclass
class OutputIdentity:
    """Whose output field ``label_field`` is (see the module docstring).

    Attributes:
        state: ``"free"`` (no output field: a new one may be declared), ``"ours"`` (the output field, its marker and
            its existing quality fields have one output id), ``"foreign"`` (one of them is not provably ours)
        id: the output id (``"ours"``), else ``None``
        problems: ``{path: why}`` of the fields that are not provably ours (``"foreign"``)
        stale: paths of our leftovers that a new declaration deletes first: the quality fields and the marker of
            an output field that is gone (or, when a foreign output field is adopted, not ours)
    """

    label_field: str
    state: str
    id: Optional[str] = None
    problems: Dict[str, str] = dataclasses.field(default_factory=dict)
    stale: List[str] = dataclasses.field(default_factory=list)

    @property
    def message(self) -> str:
        return "; ".join(self.problems.values())


def output_identity(dataset, label_field: str) -> OutputIdentity:
    """Whose output field ``label_field`` (``"x"`` or ``"frames.x"``) of ``dataset`` is, from the stamps of the
    field, its marker and its quality fields (reads the schema only)."""
    name = field_name(label_field)
    path, mf = label_path(dataset, name), marker_field(name)
    marker, labels = dataset.get_field(mf), dataset.get_field(path)
    marker_id = stamp_id(marker, MARKER) if isinstance(marker, fof.DictField) else None
    problems: Dict[str, str] = {}
    if marker is not None and marker_id is None:
        problems[mf] = (f"'{mf}' exists and was not written by SAM-PD: it would be taken for the run marker of "
                        f"'{path}'")
    labels_ours = labels is not None and marker_id is not None and stamp_id(labels, LABELS) == marker_id
    if labels is not None and not labels_ours:
        why = "it has no SAM-PD run marker" if marker is None else f"'{mf}' is not its run marker"
        problems[path] = f"'{path}' exists and was not written by SAM-PD ({why})"
    stale = []
    for qname in quality_fields(name):
        q = dataset.get_field(label_path(dataset, qname))
        if q is None:
            continue
        qid = stamp_id(q, role_of(qname, name))
        if marker_id is None or qid != marker_id:
            problems[label_path(dataset, qname)] = (f"'{label_path(dataset, qname)}' (a quality field of "
                                                    f"'{path}') exists and was not written by SAM-PD")
        elif not labels_ours:
            stale.append(label_path(dataset, qname))
    if marker_id is not None and not labels_ours:
        stale.append(mf)
    if problems:
        return OutputIdentity(name, "foreign", problems=problems, stale=stale)
    if labels is None:
        return OutputIdentity(name, "free", stale=stale)
    return OutputIdentity(name, "ours", id=marker_id)


def is_output(dataset, label_field: str) -> bool:
    """Whether ``label_field`` is provably a SAM-PD output field of ``dataset`` (:func:`output_identity`)."""
    return output_identity(dataset, label_field).state == "ours"


def output_fields(dataset) -> List[str]:
    """The SAM-PD output fields of ``dataset``, sorted: the fields ``f`` with a run marker ``f_track`` that are
    provably ours (a stale marker, or a marker a person made, names none)."""
    suffix = marker_field("")
    names = [f[: -len(suffix)] for f in dataset.get_field_schema() if f.endswith(suffix) and len(f) > len(suffix)]
    return sorted(n for n in names if is_output(dataset, n))


def role_of(name: str, label_field: str) -> str:
    """The stamp role of a field a tracking run of ``label_field`` declares: ``"labels"``, ``"marker"`` or a
    quality field's suffix (``"confidence"``, ``"doubtful"``)."""
    base = field_name(label_field)
    if name == base:
        return LABELS
    if name == marker_field(base):
        return MARKER
    return name[len(base) + 1:]


@contextlib.contextmanager
def declaring(dataset, label_field: str):
    """Holds the dataset's lock on declaring ``label_field`` (an atomic ``set_if_absent`` in the dataset's execution
    store), so that runs that start at once declare one output id. A lock whose holder stopped or died more than
    :data:`DECLARE_STALE_SECONDS` ago is taken over."""
    from fiftyone.operators.store import ExecutionStore

    locks = ExecutionStore.create(LOCKS_STORE, dataset_id=dataset_id(dataset))
    key = f"declare.{field_name(label_field)}"
    mine = dict(owner=ownership.new_owner(), worker=ownership.this_worker(), heartbeat=ownership.utcnow())
    deadline = time.time() + 4 * DECLARE_STALE_SECONDS
    while not locks.set_if_absent(key, mine):
        held = locks.get(key)
        if held and ownership.marker_state(held, DECLARE_STALE_SECONDS)[0] in ("stale", "dead") \
                and locks.compare_and_set(key, held, mine):
            break
        if time.time() > deadline:
            raise SampdRunError(f"could not declare '{label_field}': another run has been declaring it for "
                                f"{4 * DECLARE_STALE_SECONDS} s ({held})")
        time.sleep(0.05)
    try:
        yield
    finally:
        if (locks.get(key) or {}).get("owner") == mine["owner"]:
            locks.delete(key)


# --- evaluations ---------------------------------------------------------------------------------------------------
def view_description(what: str, run_id: str) -> str:
    """The description of a saved view of the evaluation run ``run_id``: what it shows, and whose it is."""
    return f"{what} (SAM-PD J&F run {run_id})"


def is_run_view(dataset, name: str, run_id: Optional[str]) -> bool:
    """Whether the saved view ``name`` of ``dataset`` exists and was saved by the evaluation run ``run_id``."""
    if not run_id or not dataset.has_saved_view(name):
        return False
    return (dataset.get_saved_view_info(name).get("description") or "").endswith(f"(SAM-PD J&F run {run_id})")


def is_run_field(dataset, path: str, run_id: Optional[str]) -> bool:
    """Whether the field ``path`` of ``dataset`` exists and was written by the evaluation run ``run_id``."""
    return bool(run_id) and stamp_id(dataset.get_field(path), EVALUATION) == run_id


__all__ = ["OutputIdentity", "output_identity", "is_output", "output_fields", "declaring", "stamped_info",
           "stamp_id", "stamp_field", "new_id", "view_description", "is_run_view", "is_run_field"]
