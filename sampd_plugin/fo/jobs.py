"""Jobs split into delegated operations that evaluate J&F when their last operation finishes.

:func:`sampd_plugin.queue_track` with ``evaluate`` records the job in the dataset's execution store
(:data:`JOBS_STORE`, one entry per job id: its samples, output field, run and evaluation); each of its operations
tracks its part and calls :func:`finish_job` (:func:`sampd_plugin.track` does, for a request with a ``job_id``): the
one that finds every sequence of the job finished claims the evaluation (atomically: exactly once, whatever the
number of workers and the order they run the operations in) and runs it. A failed operation re-run later is then the
last one and evaluates.
"""

from __future__ import annotations

from typing import Optional

from sampd_plugin.fo import runs
from sampd_plugin.fo.sources import Layout, as_collection, dataset_id, layout_of, root_dataset

#: the dataset-scoped execution store holding split jobs that evaluate when their last operation finishes
JOBS_STORE = "sampd_jobs"


def _jobs(dataset):
    from fiftyone.operators.store import ExecutionStore

    return ExecutionStore.create(JOBS_STORE, dataset_id=dataset_id(dataset))


def register_job(layout: Layout, job_id: str, label_field: str, run: str, gt_field: str, eval_key: str):
    """Records a split job whose last operation evaluates J&F of ``label_field`` against ``gt_field`` on the
    layout's samples under ``eval_key`` (``run``: the job's run key, :func:`sampd_plugin.fo.runs.run_key`)."""
    _jobs(layout.dataset).set(job_id, dict(
        sample_ids=layout.samples.values("id"), label_field=label_field, run=run, gt_field=gt_field,
        eval_key=eval_key, sequence_field=layout.sequence_field, order_field=layout.order_field))


def finish_job(samples, job_id: Optional[str]):
    """Called by each operation of a split job after its part: when every sequence of the job is finished (run
    markers ``done`` with the job's run settings) and no other operation has claimed it yet, claims the job's J&F
    evaluation (atomically, ``set_if_absent``) and runs it.

    Returns:
        the ``JFResults`` when this call evaluated, else ``None`` (no such job, not finished yet, or already claimed)
    """
    if not job_id:
        return None
    dataset = root_dataset(as_collection(samples))
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


__all__ = ["JOBS_STORE", "register_job", "finish_job"]
