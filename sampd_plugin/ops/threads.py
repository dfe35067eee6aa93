"""CPU threads per worker, so that workers sharing a machine split its cores instead of fighting over them.

torch (and OpenCV) use every core of the machine in every process by default: two tracking processes on two cores
then run 2 x 2 threads and are slower together than one alone. Every process that tracks (the SDK's ``track`` /
``auto_track`` / ``repropagate``, hence the operators and the delegated operations run by ``fiftyone delegated
launch``, and :func:`sampd_plugin.run_worker`) registers itself here while it works and sets its thread count to

1. ``num_threads=`` when given (SDK / worker argument), else
2. ``$SAMPD_NUM_THREADS`` when set, else
3. the cores this process may use (CPU affinity, cgroup CPU quota) divided by the number of sampd processes
   working on this machine right now (at least 1).

"Working right now" is read from a registry directory (``$SAMPD_WORKER_DIR``, default ``<tmp>/sampd-workers``): one
file per working process, named by its pid and holding its start time, so a file left by a killed process (or a
recycled pid) is recognised and removed. Counting costs one directory listing; :func:`refresh` re-counts at most
once a second (called per frame by the SDK), so a worker that started alone shrinks to its share within a frame of
a second worker starting, and grows back when it is alone again.

This module imports neither FiftyOne nor torch (torch only when a thread count is applied).
"""

from __future__ import annotations

import functools
import inspect
import os
import sys
import tempfile
import threading
import time
from typing import Optional

ENV = "SAMPD_NUM_THREADS"
DIR_ENV = "SAMPD_WORKER_DIR"
#: minimum seconds between two registry counts in :func:`refresh`
REFRESH_SECONDS = 1.0

#: glibc malloc settings: freed blocks up to 32 MiB (glibc's maximum mmap threshold) stay in the heap instead of
#: being unmapped, and the heap is not trimmed, so the per-frame tensors of the encoder and decoder reuse memory
#: instead of page-faulting it in again every frame. Measured with ``perf/memory.py --backend tiny --allocators
#: default glibc-tuned`` (tiny SAM, 1 thread, 1000 frames): 0.82x the CPU time per frame, peak RSS +2.7 % and flat
#: (1000 / 100 frames: 1.003). Larger blocks (many objects: all candidates' logits, ``(N, H, W)`` upsampled masks,
#: 35 MB at 30 objects and 115 MB at 98 on the synthetic benchmark) are mmapped whatever the threshold; a heap grown
#: 1 GiB ahead (``MALLOC_TOP_PAD_``) serves them from its top, reused every frame: ``full`` at 30 / 98 objects
#: 0.58x / 0.55x the CPU time per frame (``perf/speed.py``), peak RSS +7 % / +15 % (docs/performance.md).
#: glibc reads them at process start (``make env``, the ``.venv`` activate hook); :func:`tune_malloc` applies them
#: to a running worker.
MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": str(32 * 1024 * 1024), "MALLOC_TRIM_THRESHOLD_": str(1 << 40),
              "MALLOC_TOP_PAD_": str(1 << 30)}
#: set to 0 to keep glibc's defaults in workers
MALLOC_TUNING_ENV = "SAMPD_MALLOC_TUNING"

_lock = threading.RLock()
_depth = 0  # nesting of `working` calls in this process (run_worker -> operation -> track)
_requested: Optional[int] = None  # the outermost call's num_threads
_last_refresh = 0.0


def _parse(value, where: str) -> int:
    try:
        n = int(value)
    except (TypeError, ValueError):
        n = 0
    if n < 1 or str(value).strip() != str(n):
        raise ValueError(f"{where} must be a positive integer number of threads, got {value!r}")
    return n


def available_cores() -> int:
    """Cores this process may run on: its CPU affinity, capped by a cgroup v2 CPU quota (containers)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    try:
        with open("/sys/fs/cgroup/cpu.max") as f:
            quota, period = f.read().split()[:2]
        if quota != "max":
            cores = min(cores, max(1, int(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return max(1, cores)


def registry_dir() -> str:
    """The directory where working sampd processes register (created on first use, shared by all users)."""
    path = os.environ.get(DIR_ENV) or os.path.join(tempfile.gettempdir(), "sampd-workers")
    if not os.path.isdir(path):
        os.makedirs(path, exist_ok=True)
        try:
            os.chmod(path, 0o1777)  # every user's workers share the cores: world-writable, sticky like /tmp
        except OSError:
            pass
    return path


def _start_time(pid: int) -> str:
    """The process's start time (``/proc/<pid>/stat`` field 22) or ``""`` where /proc is not available."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def _alive(pid: int, start: str) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        pass
    except OSError:
        return False
    return not start or _start_time(pid) in ("", start)


def live_workers() -> int:
    """Number of sampd processes working on this machine now (registered and alive); stale entries are removed."""
    path = registry_dir()
    count = 0
    for name in os.listdir(path):
        if not name.isdigit():
            continue
        entry = os.path.join(path, name)
        try:
            with open(entry) as f:
                start = f.read().strip()
        except OSError:
            continue
        if _alive(int(name), start):
            count += 1
        else:
            try:
                os.remove(entry)
            except OSError:
                pass
    return count


def _register():
    entry = os.path.join(registry_dir(), str(os.getpid()))
    with open(entry, "w") as f:
        f.write(_start_time(os.getpid()))


def _unregister():
    try:
        os.remove(os.path.join(registry_dir(), str(os.getpid())))
    except OSError:
        pass


def tune_malloc() -> bool:
    """Applies :data:`MALLOC_ENV` to this process with glibc's ``mallopt`` (worker processes: freed tensors are
    reused instead of unmapped; resident memory stays at the peak, a few % above glibc's default). No-op (``False``) on
    other C libraries, when ``$SAMPD_MALLOC_TUNING=0``, or when the variables were already set at start."""
    if os.environ.get(MALLOC_TUNING_ENV, "1").strip() == "0" or not sys.platform.startswith("linux"):
        return False
    if all(k in os.environ for k in MALLOC_ENV):
        return False  # glibc applied them at start
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        ok = True
        for name, option in (("MMAP_THRESHOLD", -3), ("TRIM_THRESHOLD", -1), ("TOP_PAD", -2)):  # <malloc.h> M_*
            value = min(int(MALLOC_ENV[f"MALLOC_{name}_"]), 2**31 - 1)  # (mallopt takes an int)
            ok &= bool(libc.mallopt(option, ctypes.c_int(value)))
    except (OSError, AttributeError):
        return False
    return bool(ok)


def num_threads(requested: Optional[int] = None) -> int:
    """The thread count this process should use: ``requested``, else ``$SAMPD_NUM_THREADS``, else
    :func:`available_cores` // :func:`live_workers` (this process counted even when not registered), at least 1.

    Raises:
        ValueError: ``requested`` or ``$SAMPD_NUM_THREADS`` is not a positive integer
    """
    if requested is not None:
        return _parse(requested, "num_threads")
    env = os.environ.get(ENV, "").strip()
    if env:
        return _parse(env, f"${ENV}")
    registered = os.path.exists(os.path.join(registry_dir(), str(os.getpid())))
    workers = live_workers() + (0 if registered else 1)
    return max(1, available_cores() // max(1, workers))


def apply(requested: Optional[int] = None) -> int:
    """Sets torch's and OpenCV's thread counts to :func:`num_threads` (``requested``); returns it."""
    n = num_threads(requested)
    import torch

    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    if "cv2" in sys.modules:
        sys.modules["cv2"].setNumThreads(n)
    return n


def refresh() -> Optional[int]:
    """Inside :func:`working`: re-applies the thread count when the number of working processes may have changed
    (at most once per :data:`REFRESH_SECONDS`); returns the count applied, or ``None`` when nothing was done."""
    global _last_refresh
    with _lock:
        if _depth == 0 or time.monotonic() - _last_refresh < REFRESH_SECONDS:
            return None
        _last_refresh = time.monotonic()
        return apply(_requested)


_NUM_THREADS_DOC = """
    ``num_threads``: CPU threads of this process while it works (default: ``$SAMPD_NUM_THREADS``, else this
    machine's cores divided by the sampd processes working on it; see :mod:`sampd_plugin.ops.threads`).
"""


def working(fn):
    """Decorator for the functions that track (SDK entry points, worker loops): while ``fn`` runs this process is
    registered as working and its thread count is :func:`apply`-ed from the ``num_threads`` keyword (``fn``'s own
    parameter if it has one; otherwise the wrapper accepts it and strips it). Nested calls keep the outermost
    ``num_threads``. The previous torch thread count is restored after the outermost call (SDK users keep their
    own setting)."""
    signature = inspect.signature(fn)
    own = "num_threads" in signature.parameters

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        global _depth, _requested, _last_refresh
        if own:
            requested = signature.bind(*args, **kwargs).arguments.get("num_threads")
        else:
            requested = kwargs.pop("num_threads", None)
        with _lock:
            outer = _depth == 0
            if outer:
                num_threads(requested)  # validate before registering
                _requested = requested
                _register()
            _depth += 1
        previous = None
        try:
            if outer:
                import torch

                previous = torch.get_num_threads()
                _last_refresh = time.monotonic()
                apply(_requested)
            return fn(*args, **kwargs)
        finally:
            with _lock:
                _depth -= 1
                if _depth == 0:
                    _unregister()
                    _requested = None
                    if previous is not None:
                        import torch

                        torch.set_num_threads(previous)

    if not own:
        params = list(signature.parameters.values())
        extra = inspect.Parameter("num_threads", inspect.Parameter.KEYWORD_ONLY, default=None)
        if params and params[-1].kind == inspect.Parameter.VAR_KEYWORD:
            params.insert(len(params) - 1, extra)
        else:
            params.append(extra)
        wrapper.__signature__ = signature.replace(parameters=params)
        wrapper.__doc__ = (fn.__doc__ or "").rstrip() + "\n" + _NUM_THREADS_DOC
    return wrapper


__all__ = ["ENV", "DIR_ENV", "MALLOC_ENV", "available_cores", "live_workers", "tune_malloc", "num_threads", "apply",
           "refresh", "working"]
