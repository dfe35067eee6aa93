"""Scale-out on FiftyOne's own engine: a job split into per-sample delegated operations on the shared database, two
real ``fiftyone delegated launch`` worker processes racing for them; every sample is tracked exactly once, the job is
evaluated exactly once (by the operation that finished it), and a re-queued operation skips its finished sample."""

import os
import signal
import subprocess
import sys
import time

import pytest
from bson import ObjectId

fo = pytest.importorskip("fiftyone")

from fiftyone.operators.delegated import DelegatedOperationService  # noqa: E402
from fiftyone.operators.executor import ExecutionRunState  # noqa: E402

import sampd_plugin as sp  # noqa: E402
from sampd_plugin.fo import runs  # noqa: E402
from sampd_plugin.fo.sources import layout_of  # noqa: E402

TERMINAL = (ExecutionRunState.COMPLETED, ExecutionRunState.FAILED)
CLI = "import sys; from fiftyone.core.cli import main; sys.argv[0] = 'fiftyone'; sys.exit(main())"


def start_worker(log_path):
    """``fiftyone delegated launch`` (the legacy local orchestrator) in its own process."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    log = open(log_path, "w")
    proc = subprocess.Popen([sys.executable, "-c", CLI, "delegated", "launch"], stdout=log,
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
    proc.log_path = log_path
    proc.log_file = log
    return proc


def wait_ready(procs, timeout=240):
    t0 = time.time()
    for p in procs:
        while "Delegated operation service running" not in open(p.log_path).read():
            assert p.poll() is None, open(p.log_path).read()
            assert time.time() - t0 < timeout, open(p.log_path).read()
            time.sleep(0.5)


def wait_done(service, op_ids, procs, timeout=600):
    t0 = time.time()
    while True:
        ops = [service.get(ObjectId(str(i))) for i in op_ids]
        if all(op.run_state in TERMINAL for op in ops):
            return ops
        for p in procs:
            assert p.poll() is None, open(p.log_path).read()[-3000:]
        assert time.time() - t0 < timeout, [op.run_state for op in ops]
        time.sleep(1)


def stop(procs):
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGINT)  # the CLI exits cleanly on Ctrl-C
    for p in procs:
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        p.log_file.close()


def test_two_workers_share_a_six_sample_queue_each_sample_exactly_once(plugin, make_synthetic, tmp_path):
    ds = make_synthetic(num_videos=6, num_frames=4, num_objects=1, height=72, width=96)
    ids = ds.values("id")
    service = DelegatedOperationService()
    workers = [start_worker(tmp_path / f"worker{i}.log") for i in (1, 2)]
    try:
        wait_ready(workers)
        queued = sp.queue_track(ds, model="synthetic", label_field="sampd", samples_per_operation=1, evaluate={})
        assert len(queued["operations"]) == 6 and queued["samples"] == 6
        ops = wait_done(service, queued["operations"], workers)

        assert all(op.run_state == ExecutionRunState.COMPLETED for op in ops), [
            (op.run_state, op.result and op.result.error) for op in ops]
        tracked = [sid for op in ops for sid in op.result.result["tracked"]]
        assert sorted(tracked) == sorted(ids)  # every sample once: no sample tracked twice, none missed
        markers = runs.read_markers(layout_of(ds), "sampd")
        assert all(m["done"] and m["frames"] == 4 for m in markers.values())
        pids = {int(m["worker"].rsplit(":", 1)[1]) for m in markers.values()}
        assert pids == {w.pid for w in workers}, (pids, [w.pid for w in workers])  # both workers took a share
        assert {m["device"] for m in markers.values()} == {"cpu"}  # `auto` on a machine without a GPU
        assert ds.count("frames.sampd.detections") == 6 * 4
        # J&F of the job: evaluated once, by the operation that finished it, whichever worker ran it
        ds.reload()
        evaluated = [op.result.result for op in ops if op.result.result.get("eval_key")]
        assert len(evaluated) == 1 and ds.list_evaluations() == ["sampd_jf"], evaluated
        assert evaluated[0]["jf"] == pytest.approx(sp.evaluate_jf(ds, "sampd", eval_key=None).summary["J&F-Mean"],
                                                   abs=5e-4)

        # re-queuing: nothing left to queue; a re-run operation skips its finished sample
        again = sp.queue_track(ds, model="synthetic", label_field="sampd", samples_per_operation=1)
        assert again["operations"] == [] and sorted(again["skipped"]) == sorted(ids)
        stamp = ds.values("frames.last_modified_at")
        rerun = service.rerun_operation(ops[0].id)
        (op,) = wait_done(service, [rerun.id], workers)
        assert op.run_state == ExecutionRunState.COMPLETED, op.result.error
        assert op.result.result["tracked"] == [] and op.result.result["skipped"] == ops[0].result.result["tracked"]
        assert ds.values("frames.last_modified_at") == stamp
    finally:
        stop(workers)
