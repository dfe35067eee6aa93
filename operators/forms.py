"""Shared form pieces of the SAM-PD operators: field choices drawn from the dataset, the model / preset / device
inputs, in-form error and warning messages, execution options, progress and result summaries.

Nothing here tracks or writes labels: the operators call the public SDK (``import sampd_plugin as sp``) with the
request a form makes (:func:`track_request`); the forms' other needs come from :mod:`sampd_plugin.fo.ui`. Both
resolve their names on first use, so registering the plugin imports neither torch nor the tracking code.
A refused input is shown in the form (the property is marked ``invalid`` with a message), which also makes
FiftyOne's operator machinery refuse to execute or queue the operation.
"""

import fiftyone as fo
import fiftyone.operators as foo
import fiftyone.operators.types as types

import sampd_plugin as sp
from sampd_plugin.fo import ui

#: the forms read and check every prompt (masks, boxes) of targets of at most this many sequences
DEEP_CHECK_SEQUENCES = 50


# --- dataset-derived choices -------------------------------------------------------------------------------------
def frame_label_fields(dataset, types_=(fo.Detections,)):
    """Frame label fields of the given types, sorted: frame-level fields of a video dataset, sample-level fields of
    an image dataset (whose samples are the frames of image sequences)."""
    if dataset is None or dataset.media_type not in ("video", "image"):
        return []
    if dataset.media_type == "video":
        schema = dataset.get_frame_field_schema(embedded_doc_type=tuple(types_)) or {}
    else:
        schema = dataset.get_field_schema(embedded_doc_type=tuple(types_)) or {}
    return sorted(schema)


def sampd_fields(dataset):
    """Frame label Detections fields written by SAM-PD (:func:`sampd_plugin.fo.identity.output_fields`)."""
    ours = set(ui.output_fields(dataset)) if dataset is not None else set()
    return [f for f in frame_label_fields(dataset) if f in ours]


def is_ground_truth(samples, field, sequence_kwargs=None):
    """Whether ``field`` is annotated beyond the prompt frames (more labeled frames than sequences)."""
    try:
        layout = ui.layout_of(samples, **(sequence_kwargs or {}))
        labeled = sum(layout.labeled_counts(field).values())
        return bool(field) and labeled > len(layout.sequences())
    except Exception:
        return False


def free_name(taken, base):
    """``base``, or ``base_2``, ``base_3``, ... : the first name not ``taken`` (a collection of names, or a
    predicate)."""
    is_taken = taken if callable(taken) else taken.__contains__
    name, i = base, 1
    while is_taken(name):
        i += 1
        name = f"{base}_{i}"
    return name


def free_frame_field(dataset, base):
    """A default output field name that is free: no field has it, and its run marker and quality fields do not
    exist (or are the stale leftovers of a deleted SAM-PD output: :func:`sampd_plugin.fo.identity.output_identity`)."""
    frame_schema = dataset.get_frame_field_schema() if dataset.media_type == "video" else {}
    schema = set(frame_schema or {}) | set(dataset.get_field_schema())
    return free_name(lambda n: n in schema or ui.output_identity(dataset, n).state != "free", base)


def choice(default, values):
    return default if default in values else (values[0] if values else None)


# --- messages -----------------------------------------------------------------------------------------------------
def refuse(prop, message):
    """Marks an input property invalid with ``message`` (the App shows it; execution is refused)."""
    prop.invalid = True
    prop.error_message = str(message)
    return prop


#: form inputs named otherwise than the request setting they give
INPUT_OF = {"config": "preset"}


def refuse_input(inputs, e, fallback=None):
    """Shows a refused input at the form input that ``e.field`` names (:class:`sampd_plugin.SampdInputError`: the
    request setting at fault; :data:`INPUT_OF`), else at ``fallback``, else in an error box."""
    field = getattr(e, "field", None)
    prop = inputs.get_property(INPUT_OF.get(field, field)) if field else None
    if prop is None and fallback is None:
        return error(inputs, e)
    return refuse(prop if prop is not None else fallback, e)


def error(inputs, message, name="sampd_error", label="Cannot run"):
    """An error box in the form that also invalidates it."""
    prop = inputs.view(name, types.Error(label=label, description=str(message)))
    return refuse(prop, message)


def warning(inputs, message, name, label="Note"):
    inputs.view(name, types.Warning(label=label, description=str(message)))


def notice(inputs, message, name):
    inputs.view(name, types.Notice(label=str(message)))


def require_sequences(inputs, ctx):
    """Adds an error and returns False unless the dataset holds videos or images (image sequences)."""
    if ctx.dataset is None:
        error(inputs, "Open a dataset first")
        return False
    if ctx.dataset.media_type not in ("video", "image"):
        error(inputs, f"Dataset '{ctx.dataset.name}' holds {ctx.dataset.media_type} samples: SAM-PD tracks videos "
                      "or image sequences")
        return False
    return True


# --- common inputs --------------------------------------------------------------------------------------------------
def target_input(inputs, ctx, action="Track objects in"):
    """The target choice (dataset / current view / selected samples); returns the resolved target collection."""
    inputs.view_target(ctx, action_description=action)
    return ctx.target_view()


def sequence_inputs(inputs, ctx, target, count=True):
    """Image datasets: the ``sequence_field`` / ``order_field`` inputs, defaulting to the grouped view's fields or
    FiftyOne's DAVIS zoo layout (``sequence_id``, ``frame_number``), validated, with the count of sequences in
    ``target`` (unless ``count`` is false).

    Returns the layout of ``target`` (``None`` when the fields are invalid: the form then shows why)."""
    if ctx.dataset.media_type == "video":
        try:
            return ui.layout_of(target)
        except ValueError as e:
            error(inputs, e)
            return None
    schema = ctx.dataset.get_field_schema(ftype=(fo.StringField, fo.IntField))
    candidates = sorted(f for f in schema if f not in ("filepath",))
    try:
        group = ui.group_fields(ctx.view)
    except ValueError:  # grouped by an expression: no default
        group = None, None
    seq_default = choice(group[0] or "sequence_id", candidates)
    order_default = choice(group[1] or "frame_number", [c for c in candidates if c != seq_default] or candidates)
    seq = inputs.enum("sequence_field", candidates, default=seq_default, label="Sequence field",
                      view=types.Dropdown(label="Sequence field"),
                      description="the field naming the sequence (video) each image belongs to")
    order = inputs.enum("order_field", candidates, default=order_default, label="Order field",
                        view=types.Dropdown(label="Order field"),
                        description="the field ordering the images of a sequence (integer-like strings sort "
                                    "numerically)")
    try:
        layout = ui.layout_of(target, **sequence_kwargs(ctx.params, seq_default, order_default))
        n = len(layout.sequences())
    except ValueError as e:  # SampdInputError: its .field is the input at fault
        refuse_input(inputs, e, fallback=seq)
        return None
    if count:
        notice(inputs, f"{n} image sequence(s) ({len(layout.samples)} images) in the target", "sequences")
    return layout


def sequence_kwargs(params, seq_default=None, order_default=None):
    """``sequence_field`` / ``order_field`` keyword arguments of the SDK from the form (empty for videos)."""
    kw = dict(sequence_field=params.get("sequence_field") or seq_default,
              order_field=params.get("order_field") or order_default)
    return {k: v for k, v in kw.items() if v}


def count_sequences(target, kwargs):
    """Number of sequences (videos / image sequences) of the target (1 if it cannot be worked out)."""
    try:
        return len(ui.layout_of(target, sequence_field=kwargs.get("sequence_field"),
                                order_field=kwargs.get("order_field")).sequences())
    except ValueError:
        return 1


#: what the method input says in each mode about its default
PRESET_NOTES = {
    "track": "default: 'overlap' (our extension, not a paper row): objects kept apart where they touch, cross and "
             "occlude each other; choose 'full' for the paper's method",
    "auto": "default: 'adaptive' (our extension, not a paper row): the 18-box grid only for the objects whose "
            "mask looks doubtful, about a quarter of 'full''s decoder work with many objects; choose 'full' for the "
            "paper's VIS setting",
}


def model_inputs(inputs, ctx, with_preset=True, mode="track"):
    """``model``, ``checkpoint``, ``preset`` (by default the ``mode``'s), ``device`` and ``batch_frames`` inputs,
    validated in the form."""
    defaults = sp.TrackRequest()
    models = types.Dropdown(label="Model")
    for m in ui.MODELS:
        models.add_choice(m, label=ui.MODEL_LABELS[m])
    model = ctx.params.get("model") or defaults.model
    inputs.enum("model", models.values(), default=defaults.model, view=models,
                description="SAM image encoder; 'tiny' and 'synthetic' are for tests and demos")
    ckpt = inputs.str("checkpoint", label="Checkpoint (optional)", required=False,
                      description="path to a SAM .pth; default: $SAMPD_CHECKPOINT_DIR, the FiftyOne zoo cache, "
                                  "or a download on first use")
    checkpoint = ctx.params.get("checkpoint") or None
    try:
        status = ui.checkpoint_status(model, checkpoint)
        if status:
            notice(inputs, status, "checkpoint_status")
        ui.check_model(model, checkpoint)
    except (FileNotFoundError, ValueError) as e:  # SampdInputError: its .field is the input at fault
        refuse_input(inputs, e, fallback=ckpt)
    else:
        device = ctx.params.get("device")
        advice = ui.model_warning(model, checkpoint, None if device == "auto" else device)
        if advice:
            warning(inputs, advice, "model_warning", label=f"'{model}' needs a GPU worker with its checkpoint")
    if with_preset:
        presets = types.Dropdown(label="Method (paper ablation row)")
        for name in ui.PRESETS:
            presets.add_choice(name, label=ui.PRESET_LABELS.get(name, name))
        default = ui.DEFAULT_PRESETS[mode]
        inputs.enum("preset", presets.values(), default=default, view=presets, description=PRESET_NOTES[mode])
    device_input(inputs, ctx)
    inputs.int("batch_frames", default=defaults.batch_frames, min=1, label="Frames per bulk write")
    return model


def device_input(inputs, ctx):
    """The ``device`` choice: ``auto``, ``cuda``, ``cpu``, this machine's ``cuda:N``, and the requested device
    when it names another machine's GPU (a queued ``cuda:7`` runs on the worker that has it)."""
    current = ctx.params.get("device")
    try:
        choices, problem = ui.device_choices(current), None
    except ValueError as e:
        choices, problem = ui.device_choices(), e
    devices = types.RadioGroup(orientation="horizontal")
    for d in choices:
        devices.add_choice(d, label=d)
    prop = inputs.enum("device", devices.values(), default="auto", label="Device", view=devices,
                       description="auto = cuda when the machine running the operation has a GPU")
    if problem is not None:
        refuse(prop, problem)
    return prop


def delegation_inputs(inputs, ctx, num_sequences=None, evaluate=False):
    """``samples_per_operation``, and a note of what scheduling the job queues (``num_sequences`` known)."""
    inputs.int("samples_per_operation", default=ui.SAMPLES_PER_OPERATION, min=0, required=False,
               label="Samples per delegated operation",
               description="when delegated, the job is split into one queued operation per this many samples so that "
                           "several `fiftyone delegated launch` workers share it (0 = one operation)")
    if num_sequences:
        notice(inputs, scheduling_note(num_sequences, samples_per_operation(ctx.params), evaluate), "scheduling")
    notice(inputs, where_it_runs(ui.worker_seen()), "where")


def where_it_runs(worker_seen):
    """What Execute and Schedule do, in words: which one is the default (a worker was seen or not), and what the App
    shows during and after each (FiftyOne 1.22 shows an immediate operation's progress only when it ends, and nothing
    of a scheduled one but "Operation successfully scheduled")."""
    default = ("A delegated worker ran operations on this database in the last 24 h: Schedule is the default."
               if worker_seen else "No delegated worker has run on this database in the last 24 h: Execute is the "
               "default (Schedule queues the job for `fiftyone delegated launch` workers; nothing runs it until one "
               "is started).")
    return (default + " Execute runs it in the App's server now: the App shows 'Executing...' until it ends, then "
            "the result. Schedule only shows 'Operation successfully scheduled': the job's progress is on its "
            "delegated operation (`fiftyone delegated list`); reload the App's page to see the results.")


def samples_per_operation(params):
    """The form's ``samples_per_operation`` (its default when absent)."""
    return int(param(params, "samples_per_operation", ui.SAMPLES_PER_OPERATION))


def operations_for(num_sequences, per_op):
    """Number of operations a scheduled job of ``num_sequences`` queues when a worker runs it (the first one
    splits itself into one per ``per_op`` sequences; 0 = no split)."""
    return -(-num_sequences // per_op) if per_op and num_sequences > per_op else 1


def scheduling_note(num_sequences, per_op, evaluate=False, scheduled=False):
    """What scheduling (delegating) the job does, in words."""
    n = operations_for(num_sequences, per_op)
    if n > 1:
        what = (f"1 operation that, when a worker runs it, queues {n} operations of {per_op} sequence(s) each "
                f"({num_sequences} sequences)")
    else:
        what = f"1 operation ({num_sequences} sequence(s))"
    note = f"{'Scheduled' if scheduled else 'If scheduled'}: {what}, run by `fiftyone delegated launch` workers"
    if evaluate:
        note += "; J&F is evaluated " + ("by the operation that finishes last" if n > 1 else "when tracking ends")
    return note + ". Reload the App's page to see the results when they are done."


def param(params, name, default):
    """``params[name]``, or ``default`` when it is absent or None (the form's default for SDK callers)."""
    value = params.get(name)
    return default if value is None else value


def default_prompt_field(dataset):
    """The default prompt field of a tracking form: the request's default when the dataset has it, else its first
    Detections field."""
    return choice(sp.TrackRequest.prompt_field, frame_label_fields(dataset))


def default_label_field(ctx, mode):
    """The default output field of a tracking form: the mode's default name, made free on the dataset."""
    return free_frame_field(ctx.dataset, sp.TrackRequest(mode=mode).label_field)


def track_request(ctx, mode):
    """The :class:`sampd_plugin.TrackRequest` of a tracking form (``mode`` ``"track"`` / ``"auto"``) or of a queued
    operation's parameters; what the form leaves empty takes the dataset's defaults (a free output field name, the
    ``ground_truth`` prompt field, J&F evaluation when the prompt field is annotated beyond the prompt frames), then
    the request's own. ``SampdInputError`` (``error.field``: the input at fault) when the form is invalid."""
    params = ctx.params
    defaults = dict(mode=mode, label_field=default_label_field(ctx, mode))
    if mode == "track":
        defaults["prompt_field"] = params.get("prompt_field") or default_prompt_field(ctx.dataset)
        if params.get("evaluate") is None:
            defaults["evaluate"] = is_ground_truth(ctx.target_view(), defaults["prompt_field"], sequence_kwargs(params))
    return sp.TrackRequest.from_params(params, **defaults)


def run_options(ctx):
    """How an operation runs its request (:func:`sampd_plugin.run_request`): split into delegated operations of
    ``samples_per_operation`` sequences when it is delegated, progress through ``ctx.set_progress``."""
    per_op = samples_per_operation(ctx.params) if ctx.delegated else 0
    return dict(samples_per_operation=per_op, delegation_target=ctx.delegation_target, progress=progress(ctx),
                operation=operation_id(ctx))


def operation_id(ctx):
    """The id of the delegated operation being executed (``None`` when run immediately). FiftyOne 1.22's
    ``ExecutionContext`` keeps it private (``_delegated_operation_id``, no public accessor): the one private read of
    the operators."""
    op = getattr(ctx, "_delegated_operation_id", None) if ctx.delegated else None
    return str(op) if op else None


# --- execution ------------------------------------------------------------------------------------------------------
def execution_options(ctx, allow_immediate=True):
    """Immediate or delegated; Schedule (delegated) by default only where a delegated worker has been seen running
    (``ui.worker_seen``): elsewhere a scheduled job would wait for a worker nobody started."""
    return foo.ExecutionOptions(allow_immediate_execution=allow_immediate, allow_delegated_execution=True,
                                default_choice_to_delegated=ui.worker_seen())


def progress(ctx, dt=1.0):
    """A FiftyOne progress callback reporting ``"sample 3/10 · frame 45/90"`` through ``ctx.set_progress``."""

    def report(pb):
        ctx.set_progress(progress=pb.progress, label=getattr(pb, "label", None))

    return fo.report_progress(report, dt=dt)


def finish(ctx):
    """After a run in the App: the output fields get the Annotate tab's label schema, the App reloads the dataset (new
    fields) and shows its colour scheme at once."""
    if not ctx.delegated:
        annotation_schemas(ctx.dataset)
        ctx.ops.reload_dataset()
        show_colors(ctx)


def refuse_empty(layout):
    """Raises ``SampdInputError`` for a target without sequences (an empty view): the App's forms refuse it, where
    the SDK would track nothing and write nothing."""
    if not layout.sequences():
        raise sp.SampdInputError(f"nothing to track: the target (in {layout.where}) has no videos or images")


def annotation_schemas(dataset):
    """Gives each SAM-PD output field of ``dataset`` without one the Annotate tab's label schema
    (``ui.annotation_schema``: corrected in the App at once)."""
    for field in sampd_fields(dataset):
        ui.annotation_schema(dataset, field)


def show_labels(ctx, label_fields):
    """Ticks ``label_fields`` (and their doubtful flags) in the App's sidebar, besides what is already ticked, under the
    paths of both the videos and the frames views (``ui.shown_paths``): a view the operator opens shows its labels."""
    paths = ui.shown_paths(ctx.dataset, label_fields)
    ctx.ops.set_active_fields(list(dict.fromkeys(list(ctx.active_fields or []) + paths)))


def eval_fields(dataset, eval_key):
    """The predicted and ground-truth fields of a J&F evaluation."""
    config = dataset.get_evaluation_info(eval_key).config
    return [config.pred_field, config.gt_field]


def show_colors(ctx):
    """Hands the dataset's saved colour scheme (objects coloured by index, the doubtful flag in red) to the open App,
    which otherwise keeps the scheme it read when it opened the dataset; not when the App already shows it (handed
    again, it makes the App recolour thumbnails it is still drawing: some then show boxes without masks)."""
    scheme = ui.session_color_scheme(ctx.dataset)
    if scheme and not ui.app_shows_color_scheme(ctx.dataset):
        ctx.trigger("set_color_scheme", scheme)


def is_scheduled(results):
    """Whether ``results`` is what FiftyOne returns for an operation just scheduled (queued, not run)."""
    return bool(results) and "run_state" in results and "operator" in results


def summary_outputs(ctx, title, evaluate=None, splits=True):
    """The result summary of a tracking run (``ctx.results``), or, for an operation just scheduled, what it queued
    and what runs it (the App shows this instead of a bare "scheduled"): ``evaluate`` whether it evaluates J&F
    (``None``: the form's ``evaluate``), ``splits`` whether it splits into one operation per sequences."""
    outputs = types.Object()
    r = ctx.results or {}
    if is_scheduled(r):
        target = ctx.target_view()
        n = count_sequences(target, sequence_kwargs(ctx.params))
        if evaluate is None:
            evaluate = param(ctx.params, "evaluate", None)
            if evaluate is None:
                evaluate = is_ground_truth(target, ctx.params.get("prompt_field"), sequence_kwargs(ctx.params))
        per_op = samples_per_operation(ctx.params) if splits else 0
        note = scheduling_note(n, per_op, bool(evaluate), scheduled=True)
        outputs.view("scheduled", types.Notice(label=note))
        return types.Property(outputs, view=types.View(label=f"{title}: scheduled"))
    outputs.str("message", label="Result")
    for key, label, kind in (("objects", "Objects tracked", "int"), ("frames", "Frames written", "int"),
                             ("samples_tracked", "Samples tracked", "int"), ("samples_skipped",
                             "Samples skipped (already finished)", "int"), ("seconds", "Time (s)", "float"),
                             ("frames_per_second", "Frames per second", "float"), ("jf", "J&F", "float"),
                             ("j", "J-Mean", "float"), ("f", "F-Mean", "float"),
                             ("operations", "Queued operations", "list")):
        if r.get(key) is None:
            continue
        if kind == "int":
            outputs.int(key, label=label)
        elif kind == "float":
            outputs.float(key, label=label)
        else:
            outputs.list(key, types.String(), label=label)
    jf_report_outputs(outputs, r)
    return types.Property(outputs, view=types.View(label=title))


def job_result(result):
    """The JSON result of a tracking operation from :func:`sampd_plugin.run_request`'s result."""
    return split_result(result) if "operations" in result else track_result(result)


def track_result(summary):
    """The JSON result of a tracking operation from an SDK summary (with its ``evaluation``, if any)."""
    res = dict(summary)
    res["samples_tracked"] = len(summary.get("tracked", []))
    res["samples_skipped"] = len(summary.get("skipped", []))
    msg = (f"{res['samples_tracked']} sequence(s) tracked into {summary['label_field']}: {summary['objects']} "
           f"objects, {summary['frames']} frames in {summary['seconds']:.1f} s on {summary['device']} with method "
           f"'{summary['method']}'")
    if res["samples_skipped"]:
        msg += f"; {res['samples_skipped']} already finished sequence(s) skipped"
    if summary.get("busy"):
        msg += (f"; {len(summary['busy'])} sequence(s) skipped because another run is writing them ("
                + "; ".join(list(summary["busy"].values())[:3]) + ")")
    jf = summary.get("evaluation")
    if jf:
        res.update(jf)
        msg += f"; J&F {jf['jf']:.3f} (eval key '{jf['eval_key']}')"
    res["message"] = msg
    return res


def split_result(queued):
    """The JSON result of an operation that split its job into delegated operations (``sp.queue_track``)."""
    n, ev, per_op = len(queued["operations"]), queued.get("evaluate"), queued["samples_per_operation"]
    msg = (f"queued {n} delegated operation(s) of {per_op} sequence(s) for `fiftyone delegated launch` workers; "
           f"{len(queued['skipped'])} finished sequence(s) skipped")
    msg += (f"; J&F (eval key '{ev['eval_key']}') is evaluated by the operation that finishes last" if ev else
            "; run 'evaluate_tracking' when they are done")
    return dict(queued, message=msg + ". Reload the App's page to see the results when they are done.")


def plan_notices(inputs, plan):
    """Shows a plan's runs of other workers in the form: sequences being written (skipped) and stale ones (their
    worker presumed dead: taken over)."""
    if plan.busy:
        warning(inputs, f"{len(plan.busy)} sequence(s) are being written by another run and will be skipped: "
                        + "; ".join(list(plan.busy.values())[:3]), "busy", label="Running elsewhere")
    if plan.stale:
        warning(inputs, f"{len(plan.stale)} sequence(s) were left by a run that stopped heart-beating (dead "
                        "worker?) and will be taken over: " + "; ".join(list(plan.stale.values())[:3]), "stale",
                label="Stale runs")


def eval_key_input(inputs, ctx):
    """The "Evaluation" dropdown of the J&F evaluations on the dataset, newest first (the default), refused for a key
    that is none of them and with a warning when predictions were written after the chosen run; returns the
    evaluation keys (none when the given key is unknown) and the property."""
    keys = ui.jf_eval_keys(ctx.dataset)
    key = inputs.enum("eval_key", keys, default=keys[0] if keys else None, label="Evaluation",
                      view=types.Dropdown(label="Evaluation"))
    chosen = ctx.params.get("eval_key")
    if chosen and chosen not in keys:
        refuse(key, f"No J&F evaluation '{chosen}' on this dataset" + (f": choose one of {keys}" if keys else ""))
        return [], key
    if keys:
        outdated = ui.outdated_sequences(ctx.dataset, chosen or keys[0])
        if outdated:
            warning(inputs, f"{len(outdated)} sequence(s) were tracked again or re-propagated after evaluation "
                            f"'{chosen or keys[0]}' ({', '.join(outdated[:3])}{', ...' if len(outdated) > 3 else ''}): "
                            "its scores and failure views are out of date there; run 'evaluate_tracking' again "
                            "(with 'overwrite') to refresh them", "outdated", label="Out of date")
    return keys, key


#: columns of the per-object table: result key -> header
JF_COLUMNS = {"object": "Object", "label": "Label", "JF": "J&F", "J": "J", "F": "F",
              "first_failure": "First failure (frame)", "lost_frames": "Lost frames"}
#: objects drawn in the J-over-time plot of an operator's output (the worst ones)
PLOT_OBJECTS = 10


def jf_report(results):
    """The App's view of a J&F result: ``per_object`` rows (3 decimals, worst J&F first) and the plotly figures
    ``jf_plot`` (J&F per object) and ``j_plot`` (J over time of the :data:`PLOT_OBJECTS` worst objects): their traces
    (the value the App's plot view draws) and ``<name>_layout``."""
    r3 = lambda v: None if v is None else round(float(v), 3)  # noqa: E731
    rows = sorted(results.per_object(), key=lambda r: (r["JF"] is None, r["JF"] or 0.0))
    per_object = [dict(object=ui.object_name(r), label=r.get("label") or "", JF=r3(r["JF"]), J=r3(r["J_mean"]),
                       F=r3(r["F_mean"]), first_failure=frame_name(r), lost_frames=r["lost_frames"])
                  for r in rows]
    report = dict(per_object=per_object)
    for name, fig in (("jf_plot", results.plot_jf_bars()), ("j_plot", results.plot_j_over_time(worst=PLOT_OBJECTS))):
        fig = ui.figure_json(fig)
        layout = dict(fig["layout"], showlegend=True, margin=dict(t=72))
        # the title top left, above the plot and clear of plotly's mode bar (top right)
        layout["title"] = dict(layout.get("title") or {}, x=0, xref="paper", xanchor="left", y=1, yref="container",
                               yanchor="top", pad=dict(t=8))
        report.update({name: fig["data"], f"{name}_layout": layout})
    return report


def frame_name(row):
    """What the dataset calls the first failure frame of a per-object row (an image sequence's order value; rows of
    older evaluations have only the 1-based position)."""
    return row.get("first_failure_name", row["first_failure"])


def jf_report_outputs(outputs, results):
    """Adds the per-object table and the two plots of :func:`jf_report` values (``results``) to ``outputs``."""
    rows = results.get("per_object") or []
    if rows:
        table = types.TableView()
        for key, header in JF_COLUMNS.items():
            table.add_column(key, label=header)
        outputs.list("per_object", types.Object(), view=table,
                     label=f"Per object, worst J&F first ({len(rows)} object(s))")
    for name, label in (("jf_plot", "J&F per object"), ("j_plot", "J over time")):
        if results.get(name):
            outputs.plot(name, label=label, layout=dict(results.get(f"{name}_layout") or {}, height=380),
                         config={"displaylogo": False, "responsive": True})
