"""Generation in the OHIF viewer, driven by clicks as a person would, in headless Chromium: study list ->
OrthoGen mode -> CT from AP + lateral (progress seen) -> the CT in MPR beside the radiographs; a DICOM SEG
-> a generated radiograph beside its input; a one-view study -> the server's one-line error in the viewer.
A screenshot of each step. Nothing here calls the label app: every request is the viewer's own.

    python scripts/ohif_walkthrough.py --server http://127.0.0.1:8000 --patient "Phantom Knee" --steps 50 \\
        --seed 1 --segmentation --one-view-patient "One View Knee" --out docs/ohif

``make serve`` + ``make demo-study`` give the two-view study with a DICOM SEG of its AP view; the one-view
study is any study holding one radiograph (the test, tests/test_ohif_generation.py, uploads one and calls the
steps below one by one).
"""
from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

CHROMEDRIVER = "/usr/bin/chromedriver"  # Debian chromium-driver; selenium's own manager would go online
WINDOW = (1400, 900)
INSTALL_HINT = "install the Debian packages chromium and chromium-driver (`make serve-deps` does, as root)"
CT_MODEL = "knee_xray2ct_diffusion"
RADIOGRAPH_MODEL = "knee_radiograph_diffusion_unet_contour_bone"
DRAWN_SEGMENTATION = "Knee segmentation drawn in OHIF"


class ViewerError(RuntimeError):
    """The viewer did not show what a step waits for (one line naming it)."""


def chrome_driver():
    """Headless Chromium with SwiftShader WebGL (OHIF draws nothing without WebGL), as root (--no-sandbox)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    if not shutil.which("chromium") or not Path(CHROMEDRIVER).is_file():
        raise ViewerError(f"chromium or {CHROMEDRIVER} not found; {INSTALL_HINT}")
    options = Options()
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", f"--window-size={WINDOW[0]},{WINDOW[1]}",
                     "--use-angle=swiftshader", "--enable-unsafe-swiftshader", "--ignore-gpu-blocklist"):
        options.add_argument(argument)
    return webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))


@dataclass
class Walkthrough:
    """What the viewer showed along the way, for the test to check."""

    statuses: list[str] = field(default_factory=list)
    markers: dict[str, dict[str, str]] = field(default_factory=dict)
    canvas_std: dict[str, float] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)  # click -> stored ("ct", ...), -> shown ("ct_displayed")
    ended: dict[str, float] = field(default_factory=dict)
    urls: dict[str, str] = field(default_factory=dict)
    error: str = ""
    fine_tune: str = ""
    foreign_requests: list[str] = field(default_factory=list)
    screenshots: list[Path] = field(default_factory=list)


def _wait(driver, condition, what: str, timeout_s: float):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.25)
    raise ViewerError(f"OHIF showed no {what} within {timeout_s:g} s")


def _by(driver, css: str):
    from selenium.webdriver.common.by import By

    return driver.find_elements(By.CSS_SELECTOR, css)


def _click_text(driver, xpath: str, what: str, timeout_s: float = 30.0):
    """Click the first element at ``xpath`` once there (again if React replaced it meanwhile)."""
    from selenium.common.exceptions import ElementClickInterceptedException, StaleElementReferenceException
    from selenium.webdriver.common.by import By

    def clicked():
        try:
            element = next(iter(driver.find_elements(By.XPATH, xpath)), None)
            if element is not None:
                element.click()
            return element
        except (StaleElementReferenceException, ElementClickInterceptedException):
            return None

    return _wait(driver, clicked, what, timeout_s)


def screenshot(driver, out: Path | None, name: str, walk: Walkthrough) -> None:
    """Save the window as ``out/<name>.png`` (temporary file, then rename); note what the page fetched from
    another origin."""
    origin = "/".join(driver.current_url.split("/")[:3])
    for url in driver.execute_script("return performance.getEntriesByType('resource').map(e => e.name)"):
        if not url.startswith((origin, "data:", "blob:")) and url not in walk.foreign_requests:
            walk.foreign_requests.append(url)  # the viewer must need nothing from elsewhere (offline)
    if out is None:
        return
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.png"
    partial = out / f".{name}.png.partial"
    partial.write_bytes(driver.get_screenshot_as_png())
    os.replace(partial, path)
    walk.screenshots.append(path)


def open_study_in_mode(driver, server: str, patient: str, timeout_s: float = 60.0) -> None:
    """Study list -> click the patient's row -> click the "OrthoGen" mode button -> the panel is there."""
    if not driver.current_url.startswith(f"{server.rstrip('/')}/ohif/"):
        driver.get(f"{server.rstrip('/')}/ohif/")
    _click_text(driver, f"//*[contains(text(), {json.dumps(patient)})]", f"study of {patient!r} in the list", timeout_s)
    _click_text(driver, "//button[normalize-space()='OrthoGen']", "OrthoGen mode button", timeout_s)
    _wait(driver, lambda: _by(driver, "#orthogen-panel select#orthogen-model option"), "OrthoGen panel with models",
          timeout_s)


def back_to_study_list(driver, timeout_s: float = 30.0) -> None:
    """The viewer's top-left back arrow -> the study list."""
    from selenium.webdriver.common.by import By

    _wait(driver, lambda: driver.find_elements(By.CSS_SELECTOR, "[data-cy=return-to-work-list]"), "back button",
          timeout_s)[0].click()
    _wait(driver, lambda: "Study List" in driver.execute_script("return document.body.innerText"), "study list",
          timeout_s)


def _expand_panel(driver) -> None:
    panel = _by(driver, "#orthogen-panel")[0]
    if "collapsed" in (panel.get_attribute("class") or ""):
        _by(driver, "#orthogen-panel header")[0].click()


def _collapse_panel(driver) -> None:
    panel = _by(driver, "#orthogen-panel")[0]
    if "collapsed" not in (panel.get_attribute("class") or ""):
        _by(driver, "#orthogen-panel header")[0].click()


def _choose(driver, select_id: str, value: str) -> None:
    from selenium.webdriver.support.ui import Select

    Select(_by(driver, f"#{select_id}")[0]).select_by_value(value)


def _type(driver, field_id: str, text: str) -> None:
    element = _by(driver, f"#{field_id}")[0]
    element.clear()
    element.send_keys(text)


def generate(driver, walk: Walkthrough, name: str, model: str, steps: int | None, timeout_s: float,
             seed: int | None = None) -> None:
    """Choose ``model``, set its steps, click Generate, and follow the panel until the page opens on the result
    (a new URL naming it) or the panel shows an error; the statuses seen are kept."""
    _expand_panel(driver)
    _choose(driver, "orthogen-model", model)
    if steps is not None and _by(driver, "#orthogen-steps"):
        _type(driver, "orthogen-steps", str(steps))
    if seed is not None and _by(driver, "#orthogen-seed"):
        _type(driver, "orthogen-seed", str(seed))
    start, page = time.monotonic(), driver.current_url
    _by(driver, "[data-cy=orthogen-generate]")[0].click()
    while time.monotonic() - start < timeout_s:
        if driver.current_url != page and "orthogenShow=" in driver.current_url:
            walk.seconds[name] = time.monotonic() - start
            walk.ended[name] = time.monotonic()
            walk.urls[name] = driver.current_url
            return
        status = (_by(driver, "[data-cy=orthogen-status]") or [None])[0]
        error = (_by(driver, "[data-cy=orthogen-error]") or [None])[0]
        try:
            text, error_text = (status.text if status else ""), (error.text if error else "")
        except Exception:  # the page is being replaced by the result's
            text, error_text = "", ""
        if text and (not walk.statuses or walk.statuses[-1] != text):
            walk.statuses.append(text)
        if error_text:
            walk.error = error_text
            walk.seconds[name] = time.monotonic() - start
            return
        time.sleep(0.25)
    raise ViewerError(f"{model}: no result and no error within {timeout_s:g} s (last status {walk.statuses[-1:]})")


_MARKERS_IN_JS = """
const box = arguments[0].getBoundingClientRect(), found = {};
document.querySelectorAll('.orientation-marker').forEach(e => {
  const r = e.getBoundingClientRect(), place = [...e.classList].find(c => /^(top|bottom|left|right)-mid$/.test(c));
  if (place && e.innerText.trim() && r.left >= box.left - 2 && r.right <= box.right + 2 && r.top >= box.top - 2
      && r.bottom <= box.bottom + 2) found[place] = e.innerText.trim();
});
return JSON.stringify(found);
"""


def viewport(driver, viewport_id: str, timeout_s: float = 60.0):
    return _wait(driver, lambda: next(iter(_by(driver, f"[data-viewportid='{viewport_id}'] canvas")), None),
                 f"viewport {viewport_id}", timeout_s)


def look_at(driver, walk: Walkthrough, viewport_id: str, slices: int = 2) -> None:
    """Click into a viewport and scroll ``slices`` images (as a reader does; OHIF draws the orientation
    markers once the camera moved), then read its markers and the pixel std of its canvas on screen."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    canvas = viewport(driver, viewport_id)
    ActionChains(driver).move_to_element(canvas).click().perform()
    for _ in range(slices):
        ActionChains(driver).send_keys(Keys.ARROW_DOWN).perform()
        time.sleep(0.2)
    for _ in range(slices):
        ActionChains(driver).send_keys(Keys.ARROW_UP).perform()
        time.sleep(0.2)
    time.sleep(1.5)
    walk.markers[viewport_id] = json.loads(driver.execute_script(_MARKERS_IN_JS, canvas))
    box = json.loads(driver.execute_script("return JSON.stringify(arguments[0].getBoundingClientRect())", canvas))
    picture = np.asarray(Image.open(io.BytesIO(driver.get_screenshot_as_png())).convert("L"), dtype=np.float64)
    inside = picture[int(box["top"]) + 2:int(box["bottom"]) - 2, int(box["left"]) + 2:int(box["right"]) - 2]
    walk.canvas_std[viewport_id] = float(inside.std()) if inside.size else 0.0


def ct_from_two_views(driver, server: str, patient: str, steps: int, walk: Walkthrough, out: Path | None,
                      timeout_s: float = 600.0, seed: int | None = None) -> None:
    open_study_in_mode(driver, server, patient)
    screenshot(driver, out, "1_orthogen_mode", walk)
    generate(driver, walk, "ct", CT_MODEL, steps, timeout_s, seed)
    if walk.error:
        raise ViewerError(f"{CT_MODEL}: the viewer showed the error {walk.error!r}")
    for viewport_id in ("orthogen-ap", "orthogen-lateral", "orthogen-axial", "orthogen-coronal", "orthogen-sagittal"):
        viewport(driver, viewport_id)
    walk.seconds["ct_displayed"] = walk.seconds["ct"] + (time.monotonic() - walk.ended["ct"])
    for viewport_id in ("orthogen-axial", "orthogen-coronal", "orthogen-sagittal"):
        look_at(driver, walk, viewport_id)
    screenshot(driver, out, "2_generated_ct_mpr", walk)


def _segment_named(driver, name: str) -> None:
    """Rename the newest segment of the segmentation panel to ``name`` (its menu -> Rename -> Save)."""
    from selenium.webdriver.common.keys import Keys

    from selenium.common.exceptions import WebDriverException

    def menu_open():  # the segment's "..." (a hover card over the row may swallow a click: try again)
        try:
            if not _by(driver, "[role=menuitem]"):
                _by(driver, "[data-cy=actionsMenuTrigger]")[-1].click()
                time.sleep(0.5)
        except WebDriverException:
            return False
        return bool(_by(driver, "[role=menuitem]"))

    _wait(driver, menu_open, "segment menu", 15.0)
    _click_text(driver, "//*[@role='menuitem'][normalize-space()='Rename']", "segment menu's Rename", 10.0)
    field = _wait(driver, lambda: _by(driver, "[role=dialog] input"), "rename dialog", 10.0)[0]
    field.send_keys(Keys.CONTROL, "a")
    field.send_keys(name)
    _click_text(driver, "//*[@role='dialog']//button[normalize-space()='Save']", "rename dialog's Save", 10.0)
    time.sleep(0.5)


def _brush(driver, canvas, offset: tuple[int, int], size: tuple[int, int]) -> None:
    """One stroke of the brush over a ``size`` rectangle from ``offset`` (pixels from the canvas centre)."""
    from selenium.webdriver.common.action_chains import ActionChains

    (x, y), (width, height) = offset, size
    ActionChains(driver).move_to_element_with_offset(canvas, x, y).click_and_hold().move_by_offset(width, 0) \
        .move_by_offset(0, height).move_by_offset(-width, 0).release().perform()
    time.sleep(0.5)


def draw_segmentation(driver, walk: Walkthrough, out: Path | None, name: str, timeout_s: float = 60.0) -> None:
    """With OHIF's own tools, on the AP view (after :func:`ct_from_two_views`): Add segmentation, a segment "contour" brushed
    over the knee, a segment "bone" brushed inside it, then Export -> DICOM SEG -> ``name`` -> Save (OHIF
    stores it in the study through the app's DICOMweb proxy)."""
    from selenium.webdriver.common.action_chains import ActionChains

    canvas = viewport(driver, "orthogen-ap")  # the result layout of ct_from_two_views
    _collapse_panel(driver)
    for _ in range(2):  # the AP viewport active (the last one looked at was an MPR one), then settled
        ActionChains(driver).move_to_element(canvas).click().perform()
        time.sleep(1.0)
    _click_text(driver, "//*[normalize-space()='Add segmentation']", "Add segmentation", timeout_s)
    _wait(driver, lambda: _by(driver, "[data-cy=actionsMenuTrigger]"), "the new segment", timeout_s)
    _segment_named(driver, "contour")
    _click_text(driver, "//*[@data-cy='Brush-btn']", "brush tool", timeout_s)
    _brush(driver, canvas, (-70, -60), (140, 120))
    _click_text(driver, "//*[normalize-space()='Add Segment']//button", "Add Segment", timeout_s)
    _wait(driver, lambda: len(_by(driver, "[data-cy=actionsMenuTrigger]")) == 2, "the second segment", timeout_s)
    _segment_named(driver, "bone")
    _brush(driver, canvas, (-30, -40), (60, 40))
    screenshot(driver, out, "3_segmentation_drawn", walk)
    _by(driver, "[data-cy=segmentation-collapsed-more-btn-Labelmap]")[0].click()
    export = _wait(driver, lambda: [e for e in _by(driver, "[role=menuitem]") if e.text.strip() == "Export"],
                   "segmentation menu's Export", timeout_s)[0]
    ActionChains(driver).move_to_element(export).perform()
    _click_text(driver, "//*[@role='menuitem'][normalize-space()='DICOM SEG']", "Export -> DICOM SEG", timeout_s)
    field = _wait(driver, lambda: _by(driver, "[role=dialog] input"), "Store Segmentation dialog", timeout_s)[0]
    field.send_keys(name)
    _click_text(driver, "//*[@role='dialog']//button[normalize-space()='Save']", "Store Segmentation's Save", timeout_s)
    _wait(driver, lambda: not _by(driver, "[role=dialog]"), "the stored segmentation", timeout_s)


def radiograph_from_segmentation(driver, steps: int | None, walk: Walkthrough, out: Path | None,
                                 model: str = RADIOGRAPH_MODEL, timeout_s: float = 300.0,
                                 segmentation: str | None = None) -> None:
    """In the open study: a DICOM SEG (the one whose description holds ``segmentation``, else the newest,
    pre-selected) -> generate -> the result beside its input."""
    _expand_panel(driver)
    _choose(driver, "orthogen-model", model)

    def choices():
        return [o for o in _by(driver, "#orthogen-segmentation option") if o.get_attribute("value")
                and (segmentation is None or segmentation in o.text)]

    choice = _wait(driver, choices, f"DICOM SEG {segmentation or ''} to choose", 60.0)[-1]
    _choose(driver, "orthogen-segmentation", choice.get_attribute("value"))
    screenshot(driver, out, "4_segmentation_chosen", walk)
    walk.error = ""
    generate(driver, walk, "radiograph", model, steps, timeout_s)
    if walk.error:
        raise ViewerError(f"{model}: the viewer showed the error {walk.error!r}")
    look_at(driver, walk, "orthogen-result", slices=0)
    look_at(driver, walk, "orthogen-input", slices=0)
    screenshot(driver, out, "5_generated_radiograph", walk)


def fine_tune(driver, walk: Walkthrough, model: str = CT_MODEL, timeout_s: float = 30.0) -> str:
    """Click "Fine-tune this model" for ``model``; the status or error line the panel then shows."""
    _expand_panel(driver)
    _choose(driver, "orthogen-model", model)
    _by(driver, "[data-cy=orthogen-finetune]")[0].click()

    def answer() -> str:
        error = _by(driver, "[data-cy=orthogen-error]")[0].text
        status = _by(driver, "[data-cy=orthogen-status]")[0].text
        return error or (status if "started" in status else "")

    walk.fine_tune = _wait(driver, answer, "answer to the fine-tuning click", timeout_s)
    return walk.fine_tune


def one_view_error(driver, server: str, patient: str, walk: Walkthrough, out: Path | None) -> None:
    """A study with one radiograph: CT from AP + lateral -> the server's one-line error in the panel."""
    back_to_study_list(driver)
    open_study_in_mode(driver, server, patient)
    walk.error = ""
    generate(driver, walk, "one_view", CT_MODEL, 2, 120.0)
    screenshot(driver, out, "6_one_view_error", walk)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--server", default="http://127.0.0.1:8000")
    parser.add_argument("--patient", default="Phantom Knee", help="text of the two-view study's row in the list")
    parser.add_argument("--one-view-patient", help="text of a one-view study's row (the error step)")
    parser.add_argument("--steps", type=int, default=5, help="DDIM steps of the CT model")
    parser.add_argument("--seed", type=int, help="the CT's seed (default: the bundle's; the same request again "
                                                 "shows the stored series)")
    parser.add_argument("--segmentation", action="store_true",
                        help="also draw a segmentation with OHIF's tools, store it, and generate a radiograph from it")
    parser.add_argument("--out", type=Path, required=True, help="folder of the screenshots")
    args = parser.parse_args(argv)
    walk = Walkthrough()
    driver = chrome_driver()
    try:
        ct_from_two_views(driver, args.server, args.patient, args.steps, walk, args.out, seed=args.seed)
        if args.segmentation:
            draw_segmentation(driver, walk, args.out, DRAWN_SEGMENTATION)
            radiograph_from_segmentation(driver, None, walk, args.out, segmentation=DRAWN_SEGMENTATION)
        if args.one_view_patient:
            one_view_error(driver, args.server, args.one_view_patient, walk, args.out)
    except ViewerError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    finally:
        driver.quit()
    print(json.dumps({"seconds": walk.seconds, "markers": walk.markers, "canvas_std": walk.canvas_std,
                      "statuses": walk.statuses[-3:], "error": walk.error,
                      "screenshots": [str(p) for p in walk.screenshots]}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
