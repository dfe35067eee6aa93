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
6. J&F of a split job (``queue_track(..., evaluate=...)``): the job is recorded in the dataset's execution store
   (``sampd_jobs``); each of its operations calls :func:`finish_job` after its part, and the one that finds every
   sequence of the job finished claims the evaluation (atomically: exactly once, whatever the number of workers
   and the order they run the operations in) and runs it. A failed operation re-run later is then the last one and
   evaluates.
"""

from __future__ import annotations

import datetime
import time
import uuid
from typing import List, Optional

from sampd_plugin.errors import SampdInputError
from sampd_plugin.fo import runs, store
from sampd_plugin.fo.runs import ConfigLike, make_config, plan_track
from sampd_plugin.fo.sources import as_collection, layout_of
from sampd_plugin.fo.store import DEFAULT_BATCH_FRAMES
from sampd_plugin.ops import ownership, threads

PLUGIN_NAME = "@sampd/sampd"
#: the dataset-scoped execution store holding split jobs that evaluate when their last operation finishes
JOBS_STORE = "sampd_jobs"


def queue_track(samples, prompt_field: str = "ground_truth", label_field: str = "sampd", config: ConfigLike = None,
                model: str = "vit_h", checkpoint: Optional[str] = None, device: Optional[str] = None,
                batch_frames: int = DEFAULT_BATCH_FRAMES, overwrite: bool = False, samples_per_operation: int = 1,
                delegation_target: Optional[str] = None, mode: str = "track", max_objects: int = 100,
                job_id: Optional[str] = None, sequence_field: Optional[str] = None,
                order_field: Optional[str] = None, allow_overwrite_ground_truth: bool = False,
                evaluate: Optional[dict] = None) -> dict:
    """Queues a tracking job as delegated operations of the plugin's ``track_objects`` (``mode="track"``) or
    ``auto_track_objects`` (``mode="auto"``) operator, one per ``samples_per_operation`` unfinished sequences
    (video samples, or image sequences), for ``fiftyone delegated launch`` workers to run.

    The job is validated first (same rules as :func:`sampd_plugin.track`) and gets a ``job_id``: its operations skip
    sequences that are finished (with ``overwrite=True``: finished by this job), so a re-queued or re-run operation
    never tracks a sequence twice. Needs the plugin to be visible to FiftyOne (``FIFTYONE_PLUGINS_DIR``) here and on
    the workers, and every worker must reach the same MongoDB (``FIFTYONE_DATABASE_URI``) and the media. ``device``
    is resolved on the workers (``"cuda"`` may be queued from a machine without a GPU).

    ``evaluate={"gt_field": ..., "eval_key": ...}`` (``mode="track"``): J&F of the whole target against
    ``gt_field`` (default: the prompt field) is computed by the operation that finishes the job last
    (:func:`finish_job`), under ``eval_key`` (default ``<label_field>_jf``, replacing an older run of that key).

    Returns:
        ``{"operations": [delegated operation ids], "samples": n sequences queued, "skipped": [finished sequence
        keys], "busy": {key: message} (another live run is writing them: not queued), "job_id": ...}``
    """
    samples = as_collection(samples)
    if not isinstance(model, str):
        raise SampdInputError(
            f"a segmenter instance ({type(model).__module__}.{type(model).__qualname__}) cannot be delegated: workers "
            "rebuild models by name. Track in this process with sampd_plugin.track(..., model=instance), or use a "
            "built-in model name"
        )
    k = int(samples_per_operation)
    if k < 1:
        raise SampdInputError(f"samples_per_operation must be >= 1, got {samples_per_operation!r}")
    _check_device_name(device)
    job_id = job_id or uuid.uuid4().hex
    plan = plan_track(samples, label_field, prompt_field if mode == "track" else None, config, model, checkpoint,
                      overwrite, mode, max_objects if mode == "auto" else None, job_id, sequence_field, order_field,
                      allow_overwrite_ground_truth=allow_overwrite_ground_truth)
    plan.raise_if_invalid()
    cfg = make_config(config)
    layout = plan.layout
    store.ensure_output_field(layout, plan.label_field)  # declared once, before workers write
    params = dict(label_field=plan.label_field, model=model, checkpoint=checkpoint or None, job_id=job_id,
                  device=device or "auto", batch_frames=int(batch_frames), overwrite=bool(overwrite),
                  samples_per_operation=0, config=cfg.to_dict(), view_target="CURRENT_VIEW", evaluate=False)
    if allow_overwrite_ground_truth:  # an SDK decision carried to the workers (the forms never set it)
        params["allow_overwrite_ground_truth"] = True
    if not layout.is_video:
        params.update(sequence_field=layout.sequence_field, order_field=layout.order_field)
    if mode == "track":
        params["prompt_field"] = plan.prompt_field
        operator = f"{PLUGIN_NAME}/track_objects"
        if evaluate is not None:
            evaluate = dict(gt_field=evaluate.get("gt_field") or plan.prompt_field,
                            eval_key=evaluate.get("eval_key") or f"{plan.label_field}_jf")
            _jobs(layout.dataset).set(job_id, dict(
                sample_ids=layout.samples.values("id"), label_field=plan.label_field, run=plan.key,
                sequence_field=layout.sequence_field, order_field=layout.order_field, **evaluate))
    else:
        params["max_objects"] = int(max_objects)
        operator = f"{PLUGIN_NAME}/auto_track_objects"
    ops = []
    seqs = plan.sequences
    for lo in range(0, len(plan.todo), k):
        view = layout.select([seqs[key] for key in plan.todo[lo:lo + k]])
        res = _execute_operator(operator, ctx=dict(view=view, params=dict(params),
                                                   delegation_target=delegation_target),
                                request_delegation=True)
        ops.append(str(res.result["id"]))
    if evaluate is not None and not ops:  # nothing left to track: evaluate now
        finish_job(layout.dataset, job_id)
    return dict(operations=ops, samples=len(plan.todo), skipped=list(plan.done), busy=dict(plan.busy),
                label_field=plan.label_field, job_id=job_id, evaluate=evaluate)


def _jobs(dataset):
    from fiftyone.operators.store import ExecutionStore

    return ExecutionStore.create(JOBS_STORE, dataset_id=dataset._doc.id)


def finish_job(samples, job_id: Optional[str]):
    """Called by each operation of a split job (:func:`queue_track` with ``evaluate``) after its part: when every
    sequence of the job is finished (run markers ``done`` with the job's run settings) and no other operation has
    claimed it yet, claims the job's J&F evaluation (atomically, ``set_if_absent``) and runs it.

    Returns:
        the ``JFResults`` when this call evaluated, else ``None`` (no such job, not finished yet, or already claimed)
    """
    if not job_id:
        return None
    dataset = as_collection(samples)._root_dataset
    jobs = _jobs(dataset)
    job = jobs.get(job_id)
    if not job:
        return None
    target = dataset.select(job["sample_ids"])
    layout = layout_of(target, job.get("sequence_field"), job.get("order_field"))
    markers = runs.read_markers(layout, job["label_field"])
    if not all(m and m.get("done") and m.get("run") == job["run"] for m in markers.values()):
        return None
    if not jobs.set_if_absent(f"{job_id}.claimed", runs.now()):
        return None
    from sampd_plugin.fo.evaluation import evaluate_jf

    results = evaluate_jf(target, job["label_field"], gt_field=job["gt_field"], eval_key=job["eval_key"],
                          overwrite=True, sequence_field=job.get("sequence_field"), order_field=job.get("order_field"))
    jobs.set(job_id, dict(job, evaluated_at=runs.now(), summary=results.get_meta()))
    return results


def _check_device_name(device: Optional[str]):
    """Refuses a device string torch cannot parse (whether this machine has it is checked on the workers)."""
    if device in (None, "", "auto"):
        return
    import torch

    try:
        torch.device(device)
    except (RuntimeError, TypeError):
        raise SampdInputError(f"unknown device {device!r}: use 'auto', 'cpu', 'cuda' or 'cuda:N'") from None


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
    for op in service.list_operations(dataset_name=samples._root_dataset.name, run_state=ExecutionRunState.RUNNING):
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


__all__ = ["queue_track", "finish_job", "run_worker", "list_runs", "recover_stale", "PLUGIN_NAME"]
