"""Thread counts of working processes (sampd_plugin.ops.threads): explicit, environment, cores / live workers."""
import inspect
import subprocess
import sys

import pytest
import torch

from sampd_plugin.ops import threads


@pytest.fixture
def registry(tmp_path, monkeypatch):
    monkeypatch.setenv(threads.DIR_ENV, str(tmp_path))
    monkeypatch.delenv(threads.ENV, raising=False)
    monkeypatch.setattr(threads, "available_cores", lambda: 4)
    return tmp_path


@pytest.fixture
def other_worker(registry):
    """A live process registered as a working sampd process."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    (registry / str(proc.pid)).write_text(threads._start_time(proc.pid))
    yield proc
    proc.kill()
    proc.wait()


def test_explicit_and_environment(registry, monkeypatch):
    assert threads.num_threads(3) == 3
    monkeypatch.setenv(threads.ENV, "2")
    assert threads.num_threads() == 2 and threads.num_threads(1) == 1
    for bad in ("0", "-1", "two", "1.5"):
        monkeypatch.setenv(threads.ENV, bad)
        with pytest.raises(ValueError, match=threads.ENV):
            threads.num_threads()
    with pytest.raises(ValueError, match="num_threads"):
        threads.num_threads(0)


def test_cores_divided_by_live_workers(registry, other_worker):
    assert threads.live_workers() == 1
    assert threads.num_threads() == 2  # 4 cores, the other worker and this process


def test_stale_entries_are_removed(registry):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (registry / str(dead.pid)).write_text("1")
    recycled = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (registry / str(recycled.pid)).write_text("12345")  # a live pid whose start time does not match
        (registry / "notes.txt").write_text("ignored")
        assert threads.live_workers() == 0
        assert sorted(p.name for p in registry.iterdir()) == ["notes.txt"]
    finally:
        recycled.kill()
        recycled.wait()


def test_working_registers_applies_and_restores(registry, other_worker):
    before = torch.get_num_threads()
    seen = {}

    @threads.working
    def job(x, num_threads=None):
        seen["threads"] = torch.get_num_threads()
        seen["workers"] = threads.live_workers()
        seen["inner"] = inner()
        return x

    @threads.working
    def inner():  # nested: keeps the outer setting, stays registered
        return torch.get_num_threads(), threads.live_workers()

    assert job(7) == 7
    assert seen == {"threads": 2, "workers": 2, "inner": (2, 2)}
    assert torch.get_num_threads() == before and threads.live_workers() == 1  # unregistered, restored
    job(1, num_threads=3)
    assert seen["threads"] == 3 and torch.get_num_threads() == before
    with pytest.raises(ValueError):
        job(1, num_threads=0)
    assert threads.live_workers() == 1


def test_working_adds_the_keyword_when_missing(registry):
    @threads.working
    def job(a, b=2):
        """Doc."""
        return torch.get_num_threads(), a + b

    assert "num_threads" in inspect.signature(job).parameters and "num_threads" in job.__doc__
    assert job(1, num_threads=1) == (1, 3)
    with pytest.raises(TypeError):
        job(1, unknown=2)


def test_refresh_follows_other_workers(registry, monkeypatch):
    monkeypatch.setattr(threads, "REFRESH_SECONDS", 0.0)
    assert threads.refresh() is None  # outside a working call: nothing to do
    counts = []

    @threads.working
    def job():
        counts.append(torch.get_num_threads())
        proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        try:
            (registry / str(proc.pid)).write_text(threads._start_time(proc.pid))
            counts.append(threads.refresh())
        finally:
            proc.kill()
            proc.wait()
        counts.append(threads.refresh())

    job()
    assert counts == [4, 2, 4]


def test_sdk_and_worker_entry_points_are_working():
    import sampd_plugin as sp

    for fn in (sp.track, sp.auto_track, sp.repropagate, sp.run_worker):
        assert "num_threads" in inspect.signature(fn).parameters, fn.__name__


def test_tune_malloc(monkeypatch):
    for k in threads.MALLOC_ENV:
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv(threads.MALLOC_TUNING_ENV, "0")
    assert threads.tune_malloc() is False
    monkeypatch.delenv(threads.MALLOC_TUNING_ENV)
    assert threads.tune_malloc() is (sys.platform == "linux")  # glibc's mallopt accepted both settings
    for k, v in threads.MALLOC_ENV.items():
        monkeypatch.setenv(k, v)
    assert threads.tune_malloc() is False  # already applied by glibc at start
