"""Scale-out on delegated GPU workers: :func:`queue_track`, :func:`run_worker` and the operators' delegated mode use
FiftyOne's own delegated-operation engine, no second queue:

1. every machine points at one MongoDB (``FIFTYONE_DATABASE_URI``), sees the media at the same paths and finds the
   plugin (``FIFTYONE_PLUGINS_DIR``; ``pip install -e`` the checkout or let the plugin add it to ``sys.path``), with
   ``FIFTYONE_ALLOW_LEGACY_ORCHESTRATORS=true``;
2. each GPU machine runs ``fiftyone delegated launch`` (one process per GPU, e.g. with ``CUDA_VISIBLE_DEVICES=i``);
   ``device="auto"`` (the default) builds the model on ``cuda`` when the machine has one;
3. the job is queued: ``queue_track(dataset, samples_per_operation=1)`` from Python, or ``track_objects`` scheduled
   in the App / with ``foo.execute_operator(..., request_delegation=True)``, whose operation splits itself into one
   queued operation per ``samples_per_operation`` samples when a worker runs it;
4. a worker claims a QUEUED operation atomically (QUEUED -> RUNNING with a conditional update), runs it, and polls
   again: each operation runs on exactly one worker, several workers share a job. Progress
   (``"sample 1/1 · frame 45/90"``) and results are stored on the operation (``fiftyone delegated list``);
5. a failed or killed operation can be re-run (``fiftyone delegated`` CLI / App): it resumes, skipping samples
   that are finished (markers), and re-queuing the whole job only queues unfinished samples;
6. J&F of a split job (``queue_track(..., evaluate=True)``): :mod:`sampd_plugin.fo.jobs`.

:func:`run_request` is the one path of a tracking job through the operators: queued (split) or tracked here.
"""

from __future__ import annotations

import dataclasses
import datetime
import time
import uuid
from typing import List, Optional

from sampd_plugin.core import checks
from sampd_plugin.fo import jobs, runs, store
from sampd_plugin.fo.request import SAMPLES_PER_OPERATION, TrackRequest
from sampd_plugin.fo.runs import plan_track
from sampd_plugin.fo.sdk import track
from sampd_plugin.fo.sources import as_collection, layout_of, root_dataset
from sampd_plugin.ops import ownership, threads

PLUGIN_NAME = "@sampd/sampd"
#: the operator that runs a job of each mode (:data:`sampd_plugin.fo.request.MODES`)
OPERATORS = {"track": "track_objects", "auto": "auto_track_objects"}


def queue_track(samples, request: Optional[TrackRequest] = None, *,
                samples_per_operation: int = SAMPLES_PER_OPERATION,
                delegation_target: Optional[str] = None, **settings) -> dict:
    """Queues a tracking job as delegated operations of the plugin's ``track_objects`` (``mode="track"``) or
    ``auto_track_objects`` (``mode="auto"``) operator, one per ``samples_per_operation`` unfinished sequences
    (video samples, or image sequences), for ``fiftyone delegated launch`` workers to run.

    The job is a :class:`~sampd_plugin.fo.request.TrackRequest` (``request``, or the one ``settings`` build, as in
    :func:`sampd_plugin.track`), validated first (same rules as :func:`sampd_plugin.track`); it gets a ``job_id``:
    its operations skip sequences that are finished (with ``overwrite=True``: finished by this job), so a re-queued
    or re-run operation never tracks a sequence twice. Each operation's parameters are the request's
    (:meth:`~sampd_plugin.fo.request.TrackRequest.to_params`), read back by the worker. Needs the plugin to be
    visible to FiftyOne (``FIFTYONE_PLUGINS_DIR``) here and on the workers, and every worker must reach the same
    MongoDB (``FIFTYONE_DATABASE_URI``) and the media. ``device`` is resolved on the workers (``"cuda"`` may be
    queued from a machine without a GPU).

    ``evaluate=True`` (or ``{"gt_field": ..., "eval_key": ...}``; ``mode="track"``): J&F of the whole target
    against ``gt_field`` (default: the prompt field) is computed by the operation that finishes the job last
    (:func:`sampd_plugin.fo.jobs.finish_job`), under ``eval_key`` (default ``<label_field>_jf``, replacing an older
    run of that key).

    Returns:
        ``{"operations": [delegated operation ids], "samples": n sequences queued, "skipped": [finished sequence
        keys], "busy": {key: message} (another live run is writing them: not queued), "job_id": ...,
        "evaluate": {"gt_field", "eval_key"} or None, "samples_per_operation": ...}``
    """
    samples = as_collection(samples)
    request = TrackRequest.of(request, **settings)
    k = checks.integer("samples_per_operation", samples_per_operation, 1)
    request.to_params()  # refuses a segmenter instance before the plan reads the dataset
    plan = plan_track(samples, request, job_id=request.job_id or uuid.uuid4().hex)
    plan.raise_if_invalid()
    request, layout = plan.request, plan.layout
    if plan.todo:  # declared once, before workers write (an empty view declares nothing)
        store.ensure_output_field(layout, plan.label_field, adopt=request.allow_overwrite_ground_truth)
    evaluate = None
    if request.evaluate and (plan.todo or plan.done):
        evaluate = dict(gt_field=request.gt_field, eval_key=request.eval_key)
        jobs.register_job(layout, request.job_id, plan.label_field, plan.key, **evaluate)
    # each operation tracks its part; the job's last one evaluates it (finish_job)
    params = dict(dataclasses.replace(request, evaluate=False).to_params(), samples_per_operation=0,
                  view_target="CURRENT_VIEW")
    operator = f"{PLUGIN_NAME}/{OPERATORS[request.mode]}"
    ops = []
    seqs = plan.sequences
    for lo in range(0, len(plan.todo), k):
        view = layout.select([seqs[key] for key in plan.todo[lo:lo + k]])
        res = _execute_operator(operator, ctx=dict(view=view, params=dict(params),
                                                   delegation_target=delegation_target),
                                request_delegation=True)
        ops.append(str(res.result["id"]))
    if evaluate is not None and not ops and plan.done:  # nothing left to track: evaluate now
        jobs.finish_job(layout.dataset, request.job_id)
    return dict(operations=ops, samples=len(plan.todo), skipped=list(plan.done), busy=dict(plan.busy),
                label_field=plan.label_field, job_id=request.job_id, evaluate=evaluate, samples_per_operation=k)


def run_request(samples, request: TrackRequest, *, samples_per_operation: int = 0,
                delegation_target: Optional[str] = None, progress=True, operation: Optional[str] = None) -> dict:
    """Runs one tracking job the way the plugin's operators do, whether a person started it in the App, a worker
    runs it as a delegated operation or Python calls this: with ``samples_per_operation`` and more sequences than
    that in ``samples``, the job is queued as delegated operations of that many sequences each
    (:func:`queue_track`); else it is tracked here (:func:`sampd_plugin.track`: then its job is finished or its
    J&F evaluated, as the request says).

    Returns:
        :func:`queue_track`'s result (it has ``"operations"``) or :func:`sampd_plugin.track`'s summary
    """
    k = checks.integer("samples_per_operation", samples_per_operation or 0, 0)
    if k and len(layout_of(samples, **request.sequence_kwargs).sequences()) > k:
        return queue_track(samples, request, samples_per_operation=k, delegation_target=delegation_target)
    return track(samples, request, progress=progress, operation=operation)


def list_runs(samples, label_field: Optional[str] = None, sequence_field: Optional[str] = None,
              order_field: Optional[str] = None, stale_seconds: float = ownership.DEFAULT_STALE_SECONDS) -> List[dict]:
    """The state of every SAM-PD run on every sequence of ``samples`` (:func:`sampd_plugin.fo.runs.run_states`): one
    row per (output field, sequence) with its ``state`` (``done``, ``running``, ``stale`` = its worker stopped
    heart-beating ``stale_seconds`` ago, ``dead`` = its process on this host is gone, ``failed``, ``not started``)
    and a ``message`` such as ``"stale, last heartbeat 14 min ago (host:1234, delegated operation ...)"``."""
    return runs.run_states(samples, label_field, sequence_field, order_field, stale_seconds)


def recover_stale(samples, stale_seconds: float = ownership.DEFAULT_STALE_SECONDS, requeue: bool = True,
                  label_field: Optional[str] = None, sequence_field: Optional[str] = None,
                  order_field: Optional[str] = None) -> dict:
    """Recovers the plugin's delegated operations whose worker died: RUNNING operations on the dataset of
    ``samples`` with a sequence whose run marker is ``stale`` or ``dead`` (:func:`list_runs`), or, having written no
    marker, with no update for ``stale_seconds``, are marked FAILED (with the reason) and, with ``requeue``, queued
    again (FiftyOne's ``rerun_operation``): the new operation takes the dead owner's sequences over, re-tracks them
    from their start and skips the finished ones.

    Returns:
        ``{"failed": [operation ids], "requeued": [new operation ids], "sequences": [stale sequence rows]}``
    """
    from fiftyone.operators.delegated import DelegatedOperationService
    from fiftyone.operators.executor import ExecutionResult, ExecutionRunState

    samples = as_collection(samples)
    rows = [r for r in list_runs(samples, label_field, sequence_field, order_field, stale_seconds)
            if r["state"] in ("stale", "dead")]
    live = {r["operation"] for r in list_runs(samples, label_field, sequence_field, order_field, stale_seconds)
            if r["state"] == "running" and r["operation"]}
    dead = {r["operation"] for r in rows if r["operation"]}
    service = DelegatedOperationService()
    cutoff = ownership.utcnow().timestamp() - stale_seconds
    out = dict(failed=[], requeued=[], sequences=rows)
    for op in service.list_operations(dataset_name=root_dataset(samples).name, run_state=ExecutionRunState.RUNNING):
        op_id = str(op.id)
        if not str(op.operator).startswith(PLUGIN_NAME + "/") or op_id in live:
            continue
        updated = op.updated_at.replace(tzinfo=datetime.timezone.utc).timestamp() if op.updated_at else 0
        if op_id not in dead and updated > cutoff:
            continue
        reason = (f"worker stopped heart-beating (no update for more than {stale_seconds:.0f} s); recovered by "
                  f"sampd_plugin.recover_stale on {ownership.this_worker()}")
        if service.set_failed(op.id, result=ExecutionResult(error=reason),
                              required_state=ExecutionRunState.RUNNING) is None:
            continue  # it finished or failed meanwhile
        out["failed"].append(op_id)
        if requeue:
            out["requeued"].append(str(service.rerun_operation(op.id).id))
    return out


@threads.working
def run_worker(dataset_name: Optional[str] = None, operator: Optional[str] = None, poll_seconds: float = 0.5,
               idle_exit_seconds: Optional[float] = None, max_operations: Optional[int] = None,
               log: bool = True) -> int:
    """A ``fiftyone delegated launch`` worker loop that can stop by itself (batch schedulers, tests).

    Same engine as the CLI: FiftyOne's ``DelegatedOperationService.execute_queued_operations(limit=1)``, which claims
    one QUEUED operation atomically (QUEUED -> RUNNING) and runs it; an operation claimed by another worker is
    skipped. Optionally restricted to one dataset / operator; exits after ``idle_exit_seconds`` without work or
    after ``max_operations`` executed operations.

    Returns:
        the number of operations this worker executed
    """
    from fiftyone.operators.delegated import DelegatedOperationService

    threads.tune_malloc()  # a worker process: glibc keeps freed tensors for reuse (see sampd_plugin.ops.threads)
    service = DelegatedOperationService()
    executed, idle_since = 0, time.time()
    while max_operations is None or executed < max_operations:
        results = service.execute_queued_operations(operator=operator, dataset_name=dataset_name, limit=1, log=log)
        ran = [r for r in results if r is not None]
        if ran:
            executed += len(ran)
            idle_since = time.time()
            continue
        if idle_exit_seconds is not None and time.time() - idle_since > idle_exit_seconds:
            break
        time.sleep(poll_seconds)
    return executed


def _execute_operator(*args, **kwargs):
    """``foo.execute_operator`` that also works where an event loop is running (notebooks), via a helper thread."""
    import asyncio
    import concurrent.futures

    import fiftyone.operators as foo

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return foo.execute_operator(*args, **kwargs)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(foo.execute_operator, *args, **kwargs).result()


__all__ = ["queue_track", "run_request", "run_worker", "list_runs", "recover_stale", "PLUGIN_NAME"]
