"""Test session set-up: FiftyOne settings, plugin discovery of this checkout, unique throw-away datasets.

- FiftyOne runs on its embedded MongoDB with ``FIFTYONE_DATABASE_VALIDATION=false``, ``FIFTYONE_DO_NOT_TRACK=true``
  and ``FIFTYONE_ALLOW_LEGACY_ORCHESTRATORS=true`` (delegated operations run by ``fiftyone delegated launch``).
- Plugin discovery works from a clone at any path: unless ``FIFTYONE_PLUGINS_DIR`` already names a directory that
  links to this checkout (``make test``), a temporary plugins directory holding one symlink to the checkout root is
  used (FiftyOne follows links when it walks the plugins directory). Subprocess workers inherit it.
- Every test session has its own MongoDB (:mod:`tests.isolated_db`: the bundled ``mongod`` on a free port,
  ``FIFTYONE_DATABASE_URI`` set before FiftyOne is imported, inherited by subprocess workers), so concurrent sessions
  and a user's own FiftyOne never see each other's datasets or delegated operations. ``SAMPD_TEST_DB=shared`` (or
  an explicit ``FIFTYONE_DATABASE_URI``) uses that database instead.
- Sampled failure-frame images (``SAMPD_FRAMES_DIR``) go to a temporary folder deleted at exit.
- Datasets get unique names and their own media directory, and are deleted (with their delegated operations) at
  the end of the test.
"""

import atexit
import os
import shutil
import tempfile
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

os.environ.setdefault("FIFTYONE_DATABASE_VALIDATION", "false")
os.environ.setdefault("FIFTYONE_DO_NOT_TRACK", "true")
os.environ["FIFTYONE_ALLOW_LEGACY_ORCHESTRATORS"] = "true"
os.environ.setdefault("FIFTYONE_SHOW_PROGRESS_BARS", "false")

if os.environ.get("SAMPD_TEST_DB") != "shared" and not os.environ.get("FIFTYONE_DATABASE_URI"):
    from tests import isolated_db

    isolated_db.start()


def _links_here(plugins_dir):
    try:
        return any(not p.name.startswith(".") and p.resolve() == ROOT for p in Path(plugins_dir).iterdir())
    except OSError:
        return False


if not (os.environ.get("FIFTYONE_PLUGINS_DIR") and _links_here(os.environ["FIFTYONE_PLUGINS_DIR"])):
    _plugins = Path(tempfile.mkdtemp(prefix="sampd-test-plugins-"))
    (_plugins / "sampd").symlink_to(ROOT, target_is_directory=True)
    atexit.register(shutil.rmtree, _plugins, True)  # removes the link, never follows it
    os.environ["FIFTYONE_PLUGINS_DIR"] = str(_plugins)

if not os.environ.get("SAMPD_FRAMES_DIR"):  # sampled failure-frame images (sampd_plugin.fo.views), one folder per session
    _frames = tempfile.mkdtemp(prefix="sampd-test-frames-")
    atexit.register(shutil.rmtree, _frames, True)
    os.environ["SAMPD_FRAMES_DIR"] = _frames

PLUGIN = "@sampd/sampd"
OPERATORS = ("track_objects", "auto_track_objects", "repropagate_from_frame", "evaluate_tracking",
             "browse_tracking_failures", "plot_tracking")


@pytest.fixture(scope="session")
def fo():
    return pytest.importorskip("fiftyone")


@pytest.fixture(scope="session")
def plugin(fo):
    """Checks that FiftyOne discovers the plugin through ``FIFTYONE_PLUGINS_DIR`` and registers every operator."""
    import fiftyone.operators as foo
    import fiftyone.plugins as fop

    names = [p.name for p in fop.list_plugins()]
    assert PLUGIN in names, f"{PLUGIN} not found in {os.environ['FIFTYONE_PLUGINS_DIR']}: {names}"
    registry = foo.OperatorRegistry()
    for name in OPERATORS:
        assert registry.operator_exists(f"{PLUGIN}/{name}"), f"{PLUGIN}/{name} is not registered"
    return PLUGIN


@pytest.fixture
def unique_name():
    return f"sampd-test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def make_synthetic(fo, tmp_path_factory):
    """Factory of small synthetic video datasets (unique names, own media dir), deleted after the test."""
    made = []

    def make(num_videos=1, num_frames=8, num_objects=2, height=96, width=128, seed=0, **kwargs):
        from sampd_plugin.synthetic import make_dataset

        name = f"sampd-test-{uuid.uuid4().hex[:12]}"
        out = tmp_path_factory.mktemp("videos")
        ds = make_dataset(name=name, num_videos=num_videos, num_frames=num_frames, num_objects=num_objects,
                          height=height, width=width, seed=seed, output_dir=str(out), **kwargs)
        made.append(ds)
        return ds

    yield make
    for ds in made:
        _delete(fo, ds)


@pytest.fixture
def make_synthetic_images(fo, tmp_path_factory):
    """Factory of small synthetic image-sequence datasets in FiftyOne's DAVIS zoo schema (unique names, own media
    dir), deleted after the test."""
    made = []

    def make(num_sequences=1, num_frames=8, num_objects=2, height=96, width=128, seed=0, **kwargs):
        from sampd_plugin.synthetic import make_image_dataset

        ds = make_image_dataset(name=f"sampd-test-{uuid.uuid4().hex[:12]}", num_sequences=num_sequences,
                                num_frames=num_frames, num_objects=num_objects, height=height, width=width, seed=seed,
                                output_dir=str(tmp_path_factory.mktemp("images")), **kwargs)
        made.append(ds)
        return ds

    yield make
    for ds in made:
        _delete(fo, ds)


def _delete(fo, ds):
    try:
        from fiftyone.operators.delegated import DelegatedOperationService

        DelegatedOperationService().delete_for_dataset(ds._doc.id)
    except Exception:
        pass
    if fo.dataset_exists(ds.name):
        fo.delete_dataset(ds.name)
