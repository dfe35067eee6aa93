"""The App in a real headless Chromium (``tests/app/check.py``, also ``make app-check``): skipped, with the reason
printed, when Chromium, chromedriver or Selenium are missing."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.app.check import browser_paths

ROOT = Path(__file__).resolve().parents[1]


def test_app_in_a_real_browser(tmp_path):
    _, _, reason = browser_paths()
    if reason:
        print(f"App browser check SKIPPED: {reason}", file=sys.stderr)
        pytest.skip(reason)
    out = ROOT / "build" / "app-check"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, "-m", "tests.app.check", "--out", str(out)], cwd=ROOT, env=env,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=900)
    report = "\n".join(line for line in proc.stdout.splitlines() if line.startswith(("PASS", "FAIL", " ", "Trace")))
    assert proc.returncode == 0, f"{report}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    assert "FAIL" not in report and proc.stdout.count("PASS ") >= 17, report
