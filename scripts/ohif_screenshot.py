"""Open a study in the OHIF viewer that our MONAI Label server serves, show one series, read what the viewer
shows (the study browser's series, the viewport's series description and orientation markers, whether the
viewport canvas holds an image) and save a screenshot. Headless Chromium (Debian ``chromium`` +
``chromium-driver``) driven by selenium; WebGL comes from SwiftShader (OHIF draws nothing without WebGL).

    python scripts/ohif_screenshot.py --server http://127.0.0.1:8000 --study UID --series UID \\
        --out docs/ohif_generated_ct.png

The tests (tests/test_label_dicomweb.py) call :func:`view_series` after the app stored a generated CT.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

CHROMEDRIVER = "/usr/bin/chromedriver"  # Debian chromium-driver; selenium's own manager would go online
WINDOW = (1400, 900)
INSTALL_HINT = "install the Debian packages chromium and chromium-driver (scripts/install_serving_deps.sh does, as root)"


class ViewerError(RuntimeError):
    """The viewer did not show the series (one line naming what was missing)."""


@dataclass
class ViewerReport:
    """What the viewer showed: the series descriptions its study browser lists, the active viewport's
    series description, its orientation markers by position (top / left / ...), the pixel standard
    deviation inside the viewport canvas on the screenshot (0 for a blank canvas), and the PNG."""

    listed: str
    viewport_text: str
    markers: dict[str, str]
    canvas_std: float
    screenshot: Path


def chrome_driver():
    """Headless Chromium with SwiftShader WebGL, as root (--no-sandbox)."""
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


def _wait_for(driver, script: str, what: str, timeout_s: float):
    """Poll ``script`` (JavaScript returning a value) until it is truthy; ViewerError naming ``what``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = driver.execute_script(script)
        if value:
            return value
        time.sleep(0.5)
    raise ViewerError(f"OHIF showed no {what} within {timeout_s:g} s")


_MARKERS_JS = """
const found = {};
document.querySelectorAll('.orientation-marker').forEach(e => {
  const place = [...e.classList].find(c => /^(top|bottom|left|right)-(mid|left|right)$/.test(c));
  if (place && e.innerText.trim()) found[place] = e.innerText.trim();
});
return Object.keys(found).length ? JSON.stringify(found) : null;
"""

#: The text drawn over the viewport: every leaf element inside the canvas's rectangle.
_VIEWPORT_TEXT_JS = """
const box = arguments[0].getBoundingClientRect(), texts = [];
document.querySelectorAll('body *').forEach(e => {
  if (e.children.length || !e.innerText || !e.innerText.trim()) return;
  const r = e.getBoundingClientRect();
  if (r.width && r.left >= box.left && r.right <= box.right && r.top >= box.top && r.bottom <= box.bottom)
    texts.push(e.innerText.trim());
});
return texts.join('\\n');
"""


def view_series(server: str, study_uid: str, series_uid: str, out: Path, slices_forward: int = 0,
                timeout_s: float = 90.0) -> ViewerReport:
    """Open ``study_uid`` with ``series_uid`` in the viewport at ``server``/ohif/, step ``slices_forward``
    images on (arrow down), wait for the image and save the screenshot as ``out``."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    driver = chrome_driver()
    try:
        driver.get(f"{server.rstrip('/')}/ohif/viewer?StudyInstanceUIDs={study_uid}"
                   f"&initialSeriesInstanceUID={series_uid}")
        _wait_for(driver, "return document.querySelector('canvas.cornerstone-canvas')", "viewport canvas", timeout_s)
        markers = json.loads(_wait_for(driver, _MARKERS_JS, "orientation markers", timeout_s))
        for button in driver.find_elements(By.XPATH, "//button[contains(., 'Confirm and Hide')]"):
            button.click()  # the "investigational use only" banner covers the bottom of the viewport
        canvas = driver.find_element(By.CSS_SELECTOR, "canvas.cornerstone-canvas")
        if slices_forward:
            ActionChains(driver).move_to_element(canvas).click().perform()  # the viewport takes the keys
            for _ in range(slices_forward):
                ActionChains(driver).send_keys(Keys.ARROW_DOWN).perform()
                time.sleep(0.1)
        time.sleep(3.0)  # the last image drawn
        listed = driver.execute_script("return document.body.innerText")
        viewport_text = driver.execute_script(_VIEWPORT_TEXT_JS, canvas)
        rect = driver.execute_script("return JSON.stringify(arguments[0].getBoundingClientRect())", canvas)
        png = driver.get_screenshot_as_png()
    finally:
        driver.quit()
    box = json.loads(rect)
    picture = np.asarray(Image.open(io.BytesIO(png)).convert("L"), dtype=np.float64)
    inside = picture[int(box["top"]) + 2:int(box["bottom"]) - 2, int(box["left"]) + 2:int(box["right"]) - 2]
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.name}.partial")
    partial.write_bytes(png)
    os.replace(partial, out)
    return ViewerReport(listed=listed, viewport_text=viewport_text, markers=markers, canvas_std=float(inside.std()),
                        screenshot=out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--server", default="http://127.0.0.1:8000", help="the MONAI Label server (OHIF at /ohif/)")
    parser.add_argument("--study", required=True, help="StudyInstanceUID")
    parser.add_argument("--series", required=True, help="SeriesInstanceUID shown in the viewport")
    parser.add_argument("--slices-forward", type=int, default=0, help="images to step on from the first")
    parser.add_argument("--out", type=Path, required=True, help="the screenshot (PNG)")
    args = parser.parse_args(argv)
    try:
        report = view_series(args.server, args.study, args.series, args.out, args.slices_forward)
    except ViewerError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"wrote {report.screenshot}: orientation markers {report.markers}, canvas pixel std {report.canvas_std:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
