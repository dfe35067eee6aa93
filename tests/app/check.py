"""Automated check of the FiftyOne App with the plugin, in a real headless Chromium (``make app-check``).

    python -m tests.app.check [--out build/app-check] [--port 0]

What it does, offline, in about a minute:

1. starts a private MongoDB (:mod:`tests.isolated_db`; an existing ``FIFTYONE_DATABASE_URI`` is used as is),
   builds a generated video dataset (:func:`sampd_plugin.synthetic.make_dataset`), tracks it with the synthetic
   segmenter (the ``point`` preset, so that some frames fail) and evaluates it (eval key ``jf``);
2. launches the App server of the installed FiftyOne on a free local port, with this checkout as the plugin;
3. drives Debian's ``chromium`` + ``chromium-driver`` with Selenium (fresh profile, no network services) and
   ASSERTS, saving a screenshot of each step under ``--out``:

   - ``dataset``: the dataset page loads and shows one thumbnail per video;
   - ``masks``: a video thumbnail shows the predicted masks (only ``frames.sampd`` shown; the screenshot differs
     from the raw frame inside the predicted masks and matches it outside the boxes);
   - ``operators``: the operator browser lists every operator of the plugin (by label);
   - ``form``: the ``track_objects`` form renders with its defaults (prompt ``ground_truth``, a free output field,
     ``vit_h``, ``full``, device ``auto``);
   - ``<eval>_failures`` / ``<eval>_first_failures``: each saved failure view opens, and its first thumbnails show
     the frames whose masks they list (outside the boxes of that frame's labels, the screenshot matches that frame
     of the video and not the video's first frame, with the frame's predicted masks drawn); each opens in the
     sample modal;
   - ``http``: no HTTP 5xx response in the browser's network log during the whole session.

Exit status 0 when every check passed, 1 otherwise (each failure printed), 2 when Chromium / chromedriver /
Selenium are missing (the reason is printed; ``tests/test_app_browser.py`` skips with it).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.request
import uuid
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
PLUGIN = "@sampd/sampd"
#: Chromium flags: headless, no sandbox (root in CI), nothing that reaches the network by itself
CHROMIUM_FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage", "--window-size=1400,900", "--force-device-scale-factor=1")
EVAL_KEY = "jf"


# --- environment ------------------------------------------------------------------------------------------------
def browser_paths():
    """``(chromium, chromedriver, reason)``: the binaries (``$SAMPD_CHROMIUM`` / ``$SAMPD_CHROMEDRIVER`` or on
    ``PATH``), or ``None``s and the reason the check cannot run."""
    chrome = os.environ.get("SAMPD_CHROMIUM") or next(
        (p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)
    driver = os.environ.get("SAMPD_CHROMEDRIVER") or shutil.which("chromedriver")
    missing = [n for n, p in (("chromium", chrome), ("chromedriver (chromium-driver)", driver)) if not p]
    if importlib.util.find_spec("selenium") is None:
        missing.append("the selenium Python package (requirements.txt)")
    if missing:
        return None, None, (f"{' and '.join(missing)} not found: install them (Debian/Ubuntu: apt-get install -y "
                            "chromium chromium-driver; pip install -r requirements.txt) to run the App browser check")
    return chrome, driver, None


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def prepare_environment(tmp):
    """FiftyOne settings, this checkout as the plugin, a frames cache folder, a private database (unless given)."""
    os.environ.setdefault("FIFTYONE_DATABASE_VALIDATION", "false")
    os.environ.setdefault("FIFTYONE_DO_NOT_TRACK", "true")
    os.environ.setdefault("FIFTYONE_SHOW_PROGRESS_BARS", "false")
    os.environ["FIFTYONE_ALLOW_LEGACY_ORCHESTRATORS"] = "true"
    plugins = tmp / "plugins"
    plugins.mkdir()
    (plugins / "sampd").symlink_to(ROOT, target_is_directory=True)
    os.environ["FIFTYONE_PLUGINS_DIR"] = str(plugins)
    os.environ["SAMPD_FRAMES_DIR"] = str(tmp / "frames")
    if not os.environ.get("FIFTYONE_DATABASE_URI"):
        from tests import isolated_db

        isolated_db.start()


def build_dataset(tmp):
    """A tracked and evaluated generated dataset: 2 videos x 12 frames, 3 objects, 240x320."""
    import sampd_plugin as sp
    from sampd_plugin.synthetic import make_dataset

    ds = make_dataset(name=f"sampd-app-check-{uuid.uuid4().hex[:8]}", num_videos=2, num_frames=12, num_objects=3,
                      height=240, width=320, seed=3, output_dir=str(tmp / "videos"), persistent=True)
    sp.track(ds, model="synthetic", config="point", progress=False)
    sp.evaluate_jf(ds, "sampd", eval_key=EVAL_KEY)
    return ds


class AppServer:
    """``python -m fiftyone.server.main`` on a local port (its output goes to ``log``)."""

    def __init__(self, port, log):
        self.port, self.log_path = port, log
        self.url = f"http://127.0.0.1:{port}"
        self.log = open(log, "w")
        self.proc = subprocess.Popen([sys.executable, "-m", "fiftyone.server.main", "--port", str(port),
                                      "--address", "127.0.0.1"], stdout=self.log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, env=dict(os.environ), start_new_session=True)

    def wait(self, timeout=120):
        t0 = time.time()
        while time.time() - t0 < timeout:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the App server exited ({self.proc.returncode}): {Path(self.log_path).read_text()}")
            try:
                with urllib.request.urlopen(self.url, timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.5)
        raise RuntimeError(f"the App server did not answer on {self.url} within {timeout} s")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


# --- images -----------------------------------------------------------------------------------------------------
def decode_png(data):
    import cv2

    return cv2.cvtColor(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def fitted_rect(hw, box_hw):
    """``(y0, x0, h, w)`` of an ``hw`` image drawn centred with its aspect ratio in a ``box_hw`` element."""
    s = min(box_hw[0] / hw[0], box_hw[1] / hw[1])
    h, w = int(round(hw[0] * s)), int(round(hw[1] * s))
    return (box_hw[0] - h) // 2, (box_hw[1] - w) // 2, h, w


def to_screen(img, rect, interpolation=None):
    """``img`` resized to the drawn rect ``(y0, x0, h, w)``."""
    import cv2

    y0, x0, h, w = rect
    interp = cv2.INTER_AREA if interpolation is None else interpolation
    return cv2.resize(np.ascontiguousarray(img), (w, h), interpolation=interp)


def box_mask(detections, hw, pad):
    """Bool ``hw`` mask of the relative ``[x, y, w, h]`` boxes of ``detections``, grown by ``pad`` pixels."""
    out = np.zeros(hw, bool)
    for d in detections:
        x, y, bw, bh = d.bounding_box
        x0, y0 = int(x * hw[1]) - pad, int(y * hw[0]) - pad
        x1, y1 = int(np.ceil((x + bw) * hw[1])) + pad, int(np.ceil((y + bh) * hw[0])) + pad
        out[max(y0, 0):max(y1, 0), max(x0, 0):max(x1, 0)] = True
    return out


def overlay_contrast(shown, raw, dets, hw, rect):
    """``(inside, outside, n_inside)``: mean difference of a screenshot to the raw frame inside the masks of ``dets``
    (eroded) and outside their boxes (grown): an overlay of those masks makes the first much larger."""
    import cv2

    from sampd_plugin.fo.labels import paste_mask

    masks = np.any([paste_mask(d, hw) for d in dets], axis=0) if dets else np.zeros(hw, bool)
    inside = cv2.erode(to_screen(masks.astype(np.uint8), rect, cv2.INTER_NEAREST), np.ones((5, 5))) > 0
    outside = ~to_screen(box_mask(dets, hw, pad=4).astype(np.uint8), rect, cv2.INTER_NEAREST).astype(bool)
    d_in = mean_diff(shown, raw, inside) if inside.any() else 0.0
    return d_in, mean_diff(shown, raw, outside), int(inside.sum())


def mean_diff(a, b, where):
    """Mean absolute RGB difference of two images over the pixels ``where``."""
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean(axis=2)[where].mean())


# --- the browser session ----------------------------------------------------------------------------------------
class Check:
    def __init__(self, dataset, server, chrome, driver, out):
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        self.ds, self.server, self.out = dataset, server, Path(out)
        self.results, self.responses, self.console = [], [], []
        opts = webdriver.ChromeOptions()
        opts.binary_location = chrome
        for flag in CHROMIUM_FLAGS:
            opts.add_argument(flag)
        self.profile = tempfile.mkdtemp(prefix="sampd-chromium-")
        opts.add_argument(f"--user-data-dir={self.profile}")
        opts.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
        self.d = webdriver.Chrome(service=Service(driver), options=opts)
        self.d.set_page_load_timeout(90)

    def close(self):
        self.collect_logs()
        self.d.quit()
        shutil.rmtree(self.profile, ignore_errors=True)

    # helpers
    def wait(self, condition, timeout=90, what="element"):
        from selenium.webdriver.support.ui import WebDriverWait

        try:
            return WebDriverWait(self.d, timeout, poll_frequency=0.25).until(lambda _: condition())
        except Exception as e:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}") from e

    def css(self, selector):
        from selenium.webdriver.common.by import By

        return self.d.find_elements(By.CSS_SELECTOR, selector)

    def xpath(self, path):
        from selenium.webdriver.common.by import By

        return self.d.find_elements(By.XPATH, path)

    def click(self, element):
        self.d.execute_script("arguments[0].click()", element)

    def key(self, key):
        from selenium.webdriver.common.action_chains import ActionChains

        ActionChains(self.d).send_keys(key).perform()

    def body_text(self):
        return self.css("body")[0].text

    def shot(self, name, element=None):
        path = self.out / f"{name}.png"
        if element is None:
            self.d.save_screenshot(str(path))
        else:
            path.write_bytes(element.screenshot_as_png)
        return path

    def dismiss_popups(self):
        for b in self.xpath("//button[normalize-space(text())='Dismiss']"):
            self.click(b)

    def close_modal(self):
        """Closes the sample modal by clicking outside it (the headless App ignores Escape there)."""
        for kind in ("mousePressed", "mouseReleased"):
            self.d.execute_cdp_cmd("Input.dispatchMouseEvent", {"type": kind, "x": 12, "y": 400, "button": "left",
                                                                "clickCount": 1})
        self.wait(lambda: "id=" not in self.d.current_url, timeout=20, what="the sample modal to close")

    def park_mouse(self):
        """Moves the pointer to the top left corner (no hover overlays on thumbnails)."""
        self.d.execute_cdp_cmd("Input.dispatchMouseEvent", {"type": "mouseMoved", "x": 1, "y": 1})

    def collect_logs(self):
        for entry in self.d.get_log("performance"):
            msg = json.loads(entry["message"])["message"]
            if msg["method"] == "Network.responseReceived":
                r = msg["params"]["response"]
                self.responses.append((int(r["status"]), r["url"]))
        self.console += self.d.get_log("browser")

    def thumbnails(self, count=1):
        return self.wait(lambda: (lambda t: t if len(t) >= count else None)(self.css("[data-cy=looker]")),
                         what=f"{count} thumbnail(s)")

    def open(self, path, thumbnails=1):
        self.d.get(self.server.url + path)
        self.thumbnails(thumbnails)
        self.wait(lambda: self.css("[data-cy=saved-views-selection]"), what="the view selector")
        self.dismiss_popups()

    def set_field_shown(self, path, shown):
        box = self.wait(lambda: self.css(f"[data-cy='checkbox-{path}']"), what=f"the sidebar checkbox of {path}")[0]
        if ("Mui-checked" in (box.get_attribute("class") or "")) != shown:
            self.click(box.find_element("css selector", "input"))
            self.wait(lambda: ("Mui-checked" in (box.get_attribute("class") or "")) == shown,
                      what=f"{path} {'shown' if shown else 'hidden'}")

    def settle(self, element, seconds=20):
        """Waits until two screenshots of ``element`` 0.5 s apart are identical (media and overlays drawn)."""
        last, t0 = None, time.time()
        while time.time() - t0 < seconds:
            png = element.screenshot_as_png
            img = decode_png(png)
            if last is not None and np.array_equal(img, last) and img.std() > 5:
                return img
            last = img
            time.sleep(0.5)
        return last

    def run(self, name, fn):
        t0 = time.time()
        try:
            detail = fn()
            self.results.append(dict(check=name, ok=True, detail=detail or "", seconds=round(time.time() - t0, 1)))
        except Exception as e:  # every check runs; failures are reported together
            self.shot(f"FAILED-{name}")
            self.results.append(dict(check=name, ok=False, detail=f"{type(e).__name__}: {e}",
                                     trace=traceback.format_exc(), seconds=round(time.time() - t0, 1)))

    # --- the checks -------------------------------------------------------------------------------------------
    def check_dataset(self):
        n = len(self.ds)
        self.open(f"/datasets/{self.ds.name}", thumbnails=n)
        self.wait(lambda: f"{n} samples" in self.body_text(), what=f"'{n} samples'")
        self.park_mouse()
        self.shot("dataset")
        return f"{n} video thumbnails"

    def check_masks(self):
        """The first video's thumbnail (its frame 1) shows frames.sampd's masks: with only that field shown, the
        screenshot differs from the raw frame inside the predicted masks, and matches it outside the boxes."""
        from sampd_plugin.core.frames import iter_frames

        self.set_field_shown("frames.ground_truth", False)
        self.set_field_shown("frames.sampd", True)
        self.park_mouse()
        thumb = self.thumbnails(len(self.ds))[0]
        img = self.settle(thumb)
        self.shot("masks", thumb)
        sample = self.ds.first()
        hw = (sample.metadata.frame_height, sample.metadata.frame_width)
        frame = next(iter_frames(sample.filepath))[1]
        dets = sample.frames[1]["sampd"].detections
        rect = fitted_rect(hw, img.shape[:2])
        y0, x0, h, w = rect
        d_in, d_out, _ = overlay_contrast(img[y0:y0 + h, x0:x0 + w], to_screen(frame, rect), dets, hw, rect)
        assert d_in > 20 and d_in > 3 * d_out, (f"no mask overlay: mean difference to the raw frame {d_in:.1f} "
                                                f"inside the masks vs {d_out:.1f} outside the boxes")
        return f"{len(dets)} masks: difference to the raw frame {d_in:.1f} inside vs {d_out:.1f} outside"

    def check_colours(self):
        """Each tracked object has its own colour, the same on every video (colour by ``index``): the overlay colour
        of each object, solved per channel from screenshot = a * colour + (1 - a) * frame over its mask's pixels,
        differs between the objects of a video and matches across videos for the same index."""
        from sampd_plugin.core.frames import iter_frames
        from sampd_plugin.fo.labels import paste_mask

        import cv2

        colours = {}
        for sample, thumb in zip(self.ds.select_fields(["frames.sampd", "metadata"]), self.thumbnails(len(self.ds))):
            img = self.settle(thumb)
            hw = (sample.metadata.frame_height, sample.metadata.frame_width)
            rect = fitted_rect(hw, img.shape[:2])
            y0, x0, h, w = rect
            shown = img[y0:y0 + h, x0:x0 + w].astype(np.float64)
            raw = to_screen(next(iter_frames(sample.filepath))[1], rect).astype(np.float64)
            masks = {d.index: to_screen(paste_mask(d, hw).astype(np.uint8), rect, cv2.INTER_NEAREST) > 0
                     for d in sample.frames[1]["sampd"].detections}
            for i, m in masks.items():
                own = cv2.erode(m.astype(np.uint8), np.ones((5, 5))) > 0
                own &= ~np.any([o for j, o in masks.items() if j != i] or [np.zeros_like(m)], axis=0)
                if own.sum() < 30:
                    continue
                colour = []
                for c in range(3):  # shown = (1 - a) * raw + a * colour: a line fit over the mask's pixels
                    slope, icpt = np.polyfit(raw[..., c][own], shown[..., c][own], 1)
                    colour.append(icpt / max(1 - slope, 0.05))
                colours.setdefault(i, []).append(np.clip(colour, 0, 255))
        assert len(colours) >= 2, f"too few objects to compare: {sorted(colours)}"
        first = {i: c[0] for i, c in colours.items()}
        dist = min(np.linalg.norm(first[a] - first[b]) for a in first for b in first if a < b)
        same = [np.linalg.norm(c[0] - c[1]) for c in colours.values() if len(c) == 2]
        assert dist > 40, f"objects share a colour: {first}"
        assert same and max(same) < dist / 2, f"one index, different colours across videos: {colours}"
        return (f"{len(first)} object colours, closest pair {dist:.0f} apart; same index across videos within "
                f"{max(same):.0f}")

    def check_operators(self):
        from fiftyone.operators.registry import OperatorRegistry

        ours = sorted(op.config.label for op in OperatorRegistry().list_operators()
                      if op.plugin_name == PLUGIN)
        self.click(self.wait(lambda: self.css("[data-cy=action-browse-operations]"), what="the operator button")[0])
        box = self.wait(lambda: self.css("input[placeholder^='Search operations']"), what="the operator browser")[0]
        box.send_keys("SAM-PD")
        listed = self.wait(lambda: (lambda x: x if len(x) >= len(ours) else None)(
            sorted(e.text for e in self.xpath("//*[starts-with(normalize-space(text()),'SAM-PD:')]"))),
            what=f"{len(ours)} SAM-PD operators")
        self.shot("operators")
        assert len(ours) >= 5 and listed == ours, f"listed {listed}, registered {ours}"
        return f"{len(listed)} operators: {', '.join(listed)}"

    def check_form(self):
        item = self.xpath("//*[normalize-space(text())='SAM-PD: track objects']")
        assert item, "'SAM-PD: track objects' is not in the operator browser"
        self.click(item[0])
        self.wait(lambda: "Prompt field" in self.body_text() and "sequence(s) to track" in self.body_text(),
                  what="the track_objects form")
        values = {e.get_attribute("value") for e in self.css("input") if e.get_attribute("type") != "checkbox"}
        checked = {e.get_attribute("value") for e in self.css("input[type=radio]") if e.is_selected()}
        self.shot("form")
        expected = {"ground_truth", "sampd_2", "vit_h", "overlap"}
        assert expected <= values and "auto" in checked, (f"defaults {sorted(expected)} + device auto expected, "
                                                          f"form has {sorted(v for v in values if v)} / {checked}")
        text = self.body_text()
        assert "2 sequence(s) to track" in text, "the form's plan notice is missing"
        assert "If scheduled: 1 operation that, when a worker runs it, queues 2 operations" in text, \
            "the form does not say what scheduling queues"
        from sampd_plugin.fo import ui

        if ui.model_warning("vit_h"):  # no GPU and no checkpoint here: the form must say so before scheduling
            assert "needs a GPU worker" in text and "no GPU" in text, "no vit_h warning in the form"
            note = self.xpath("//*[contains(text(), 'needs a GPU worker')]")
            self.d.execute_script("arguments[0].scrollIntoView({block: 'center'})", note[0])
            time.sleep(0.5)
            self.shot("form-warning")
        self.key("\ue00c")  # Escape closes the form
        return "defaults: prompt ground_truth, output sampd_2, model vit_h, preset overlap, device auto"

    def check_failure_view(self, suffix, max_thumbnails=6):
        """Opens a saved failure view; its first thumbnails must show the frames whose labels they list: each one
        matches its own frame outside the label overlays and shows the frame's predicted masks, and where its frame
        differs from the video's first frame it is the frame (the App's "dynamic" frames showed frame 1 under frame
        N's labels). Thumbnails are taken in grid order until one whose frame can be told apart from frame 1 (at most
        ``max_thumbnails``)."""
        from sampd_plugin.fo.views import view_name

        name = view_name(EVAL_KEY, suffix)
        view = self.ds.load_saved_view(name)
        slug = self.ds._doc.saved_views[[v.name for v in self.ds._doc.saved_views].index(name)].slug
        self.open(f"/datasets/{self.ds.name}?view={slug}")
        self.wait(lambda: f"{len(view)} frames" in self.body_text(), what=f"'{len(view)} frames'")
        self.set_field_shown("ground_truth", False)
        self.set_field_shown("sampd", True)
        self.park_mouse()
        self.shot(f"{name}-grid")
        notes = []
        for i in range(min(max_thumbnails, len(view))):
            thumb = self.thumbnails(i + 1)[i]
            img = self.settle(thumb)
            if i == 0:
                self.shot(name, thumb)
            self.click(thumb)  # the sample modal: which frame sample the thumbnail is
            sid = self.wait(lambda: (lambda u: u.split("id=")[1].split("&")[0] if "id=" in u else None)(
                self.d.current_url), what="the sample modal")
            time.sleep(1.5)
            if i == 0:
                self.shot(f"{name}-modal")
            self.close_modal()
            self.park_mouse()
            told_apart, note = self.compare_thumbnail(name, i, img, view[sid])
            notes.append(note)
            if told_apart:
                return f"{len(view)} frames; " + "; ".join(notes)
        raise AssertionError(f"{name}: none of the first {len(notes)} thumbnails shows a frame that differs enough "
                             "from its video's frame 1 to tell them apart: " + "; ".join(notes))

    def compare_thumbnail(self, name, i, img, frame):
        """Asserts that thumbnail ``i`` (screenshot ``img``) shows ``frame`` (a frame sample of a failure view) with
        its predicted masks; returns ``(whether its frame could be told apart from frame 1, a note)``."""
        from sampd_plugin.core.frames import iter_frames

        import cv2

        video = self.ds[frame.sample_id]
        hw = (video.metadata.frame_height, video.metadata.frame_width)
        images = {fn: im for fn, im in iter_frames(video.filepath, stop=frame.frame_number)}
        rect = fitted_rect(hw, img.shape[:2])
        y0, x0, h, w = rect
        shown = img[y0:y0 + h, x0:x0 + w]
        dets = [d for d in frame["sampd"].detections if d.has_mask and not d.get_field("lost")]
        where = f"{name}: thumbnail {i + 1} (frame {frame.frame_number} of {os.path.basename(video.filepath)})"
        own, first = to_screen(images[frame.frame_number], rect), to_screen(images[1], rect)
        d_in, d_all, n_in = overlay_contrast(shown, own, dets, hw, rect)
        assert d_all < 10, f"{where} differs from its frame by {d_all:.1f} outside the labels"
        assert n_in == 0 or d_in > 3 * d_all, f"{where}: the frame's predicted masks are not drawn ({d_in:.1f})"
        outside = ~to_screen(box_mask(dets, hw, pad=4).astype(np.uint8), rect, cv2.INTER_NEAREST).astype(bool)
        differ = outside & (np.abs(own.astype(np.int16) - first).max(axis=2) > 40)
        if differ.sum() < 50:
            return False, f"{where} matches it ({d_all:.1f}) but looks like frame 1"
        d_own, d_first = mean_diff(shown, own, differ), mean_diff(shown, first, differ)
        assert d_own < d_first / 2, (f"{where} differs from its frame by {d_own:.1f} and from the video's frame 1 by "
                                     f"{d_first:.1f} where they differ: it does not show its own frame")
        return True, (f"{where}: on the {int(differ.sum())} pixels where it differs from frame 1, difference to it "
                      f"{d_own:.1f}, to frame 1 {d_first:.1f}; its {len(dets)} predicted masks drawn "
                      f"(difference inside {d_in:.1f})")

    def run_operator(self, label):
        """Opens the operator browser, picks ``label``, executes its form with the defaults."""
        self.key("\ue00c")
        self.click(self.wait(lambda: self.css("[data-cy=action-browse-operations]"), what="the operator button")[0])
        box = self.wait(lambda: self.css("input[placeholder^='Search operations']"), what="the operator browser")[0]
        box.send_keys("SAM-PD")
        self.click_again(lambda: self.xpath(f"//*[normalize-space(text())='{label}']"), label)
        self.wait(lambda: self.xpath("//button[normalize-space(.)='Execute']"), what="the Execute button")
        time.sleep(1)
        self.click_again(lambda: self.xpath("//button[normalize-space(.)='Execute']"), "the Execute button")

    def click_again(self, find, what, tries=5):
        """Clicks the first element ``find()`` returns, finding it again if the App re-rendered it meanwhile."""
        from selenium.common.exceptions import StaleElementReferenceException

        for attempt in range(tries):
            try:
                return self.click(self.wait(lambda: find(), what=what)[0])
            except StaleElementReferenceException:
                if attempt == tries - 1:
                    raise
                time.sleep(0.5)

    def check_plots(self):
        """``plot_tracking`` run from the operator browser shows the plotly figures (offline: the App's own
        plotly) and the per-object table with 3-decimal values."""
        self.run_operator("SAM-PD: plot tracking results (J&F)")
        plots = self.wait(lambda: (lambda p: p if len(p) >= 2 else None)(self.css(".js-plotly-plot .main-svg")),
                          what="two plotly figures")
        worst = min(self.ds.load_evaluation_results(EVAL_KEY).per_object(), key=lambda r: r["JF"])
        from sampd_plugin.core.metrics import object_name

        text = self.body_text()
        assert object_name(worst) in text and str(round(worst["JF"], 3)) in text, "the per-object table is missing"
        traces = self.d.execute_script("return Array.from(document.querySelectorAll('.js-plotly-plot'))"
                                       ".map(p => (p.data || []).length)")
        self.d.execute_script("arguments[0].scrollIntoView()", plots[0])
        time.sleep(1)
        self.shot("plots")
        n = len(self.ds.load_evaluation_results(EVAL_KEY).per_object())
        assert len(traces) >= 2 and sorted(traces)[-2:] == [3, n], f"figures with {traces} traces, want [3, {n}]"
        drawn = self.css(".js-plotly-plot .bars path, .js-plotly-plot .scatterlayer .trace path")
        assert len(drawn) >= 3, "the figures draw nothing"
        self.key("\ue00c")
        return f"{len(traces)} figures ({traces} traces); worst object {object_name(worst)} J&F {worst['JF']:.3f}"

    def check_doubtful(self):
        """While a video plays, a frame the tracker doubts shows the red "doubtful" flag in its top left corner and
        a frame it does not doubt does not."""
        from sampd_plugin.fo.app import DOUBTFUL_COLOR

        sample = self.ds.first()
        doubtful = [fn for fn, fr in sample.frames.items() if fr["sampd_doubtful"] is not None]
        assert doubtful and not sample.frames[1]["sampd_doubtful"], f"doubtful frames {doubtful}"
        fn = doubtful[0]
        self.d.get(f"{self.server.url}/datasets/{self.ds.name}?id={sample.id}")
        self.wait(lambda: "0:00.00" in self.body_text(), what="the video in the sample modal")
        self.dismiss_popups()
        target = np.array([int(DOUBTFUL_COLOR[i:i + 2], 16) for i in (1, 3, 5)])
        fps = sample.metadata.frame_rate

        def red_pixels():
            looker = max(self.css("[data-cy=looker]"), key=lambda e: e.rect["width"] * e.rect["height"])
            img = self.settle(looker, seconds=6)
            corner = img[: img.shape[0] // 5, : img.shape[1] // 3].astype(np.int16)
            return int((np.abs(corner - target).max(axis=2) < 40).sum()), looker

        before, _ = red_pixels()
        for _ in range(fn - 1):
            self.key(".")  # one frame forward
            time.sleep(0.3)
        stamp = f"0:00.{int(round(100 * (fn - 1) / fps)):02d}"
        self.wait(lambda: stamp in self.body_text(), timeout=20, what=f"frame {fn} ({stamp})")
        after, looker = red_pixels()
        self.shot("doubtful", looker)
        self.shot("video-modal")
        assert after > 100 and before < after / 10, (f"frame {fn}: {after} flag-coloured pixels in the corner, "
                                                     f"frame 1: {before}")
        self.close_modal()
        return f"frame {fn} flagged ({after} px of the flag colour), frame 1 not ({before} px)"

    def check_http(self):
        self.collect_logs()
        bad = sorted({(s, u) for s, u in self.responses if s >= 500})
        errors = [e["message"] for e in self.console if e["level"] == "SEVERE" and " 50" in e["message"]]
        assert not bad and not errors, f"server errors: {bad[:5]} {errors[:5]}"
        return f"{len(self.responses)} responses, none 5xx"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=str(ROOT / "build" / "app-check"), help="screenshots and report folder")
    p.add_argument("--port", type=int, default=0, help="App port (0: a free one)")
    args = p.parse_args(argv)

    chrome, driver, reason = browser_paths()
    if reason:
        print(f"SKIPPED: {reason}", flush=True)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*.png"):
        old.unlink()
    tmp = Path(tempfile.mkdtemp(prefix="sampd-app-check-"))
    t0 = time.time()
    ds = server = check = None
    try:
        prepare_environment(tmp)
        ds = build_dataset(tmp)
        print(f"dataset {ds.name} tracked and evaluated in {time.time() - t0:.1f} s", flush=True)
        server = AppServer(args.port or free_port(), out / "server.log")
        server.wait()
        check = Check(ds, server, chrome, driver, out)
        check.run("dataset", check.check_dataset)
        check.run("masks", check.check_masks)
        check.run("colours", check.check_colours)
        check.run("doubtful", check.check_doubtful)
        check.run("operators", check.check_operators)
        check.run("form", check.check_form)
        check.run("plots", check.check_plots)
        for suffix in ("failures", "first_failures"):
            check.run(f"{EVAL_KEY}_{suffix}", lambda s=suffix: check.check_failure_view(s))
        check.run("http", check.check_http)
    finally:
        if check is not None:
            check.close()
        if server is not None:
            server.stop()
        if ds is not None:
            ds.delete()
        shutil.rmtree(tmp, ignore_errors=True)
    results = check.results
    (out / "report.json").write_text(json.dumps(results, indent=1))
    for r in results:
        print(f"{'PASS' if r['ok'] else 'FAIL'} {r['check']:<22} {r['seconds']:5.1f} s  {r['detail']}")
        if not r["ok"]:
            print(r["trace"])
    failed = [r["check"] for r in results if not r["ok"]]
    print(f"{len(results) - len(failed)}/{len(results)} checks passed in {time.time() - t0:.0f} s; screenshots in "
          f"{out}" + (f"; FAILED: {', '.join(failed)}" if failed else ""), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
