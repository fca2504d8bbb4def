"""Headless Chromium for the tests: the DOM a page renders to, and a screenshot of it."""

import os
import shutil
import subprocess

import cv2
import numpy as np
import limits

_NAMES = ("chromium", "chromium-browser", "google-chrome")


def chromium() -> str:
  for name in _NAMES:
    path = shutil.which(name)
    if path:
      return path
  raise AssertionError("headless Chromium is needed to check the HTML report: install "
                       "Debian's `chromium` package (./run.sh test installs it when run as "
                       "root)")


def _run(args, timeout=limits.QUICK_HANG_S) -> subprocess.CompletedProcess:
  # --no-sandbox: the tests may run as root, where Chromium's sandbox refuses to start.
  cmd = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
         *args]
  return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)


def rendered_dom(html_path: str) -> str:
  """The page's DOM after Chromium loaded and laid it out."""
  proc = _run(["--dump-dom", "file://" + os.path.abspath(html_path)])
  assert proc.returncode == 0, proc.stderr[-2000:]
  return proc.stdout


def screenshot(html_path: str, out_png: str, width: int = 1200, height: int = 2000) -> np.ndarray:
  """RGB uint8 [height, width, 3] of the top of the rendered page."""
  proc = _run([f"--window-size={width},{height}", f"--screenshot={out_png}",
               "file://" + os.path.abspath(html_path)])
  assert proc.returncode == 0 and os.path.exists(out_png), proc.stderr[-2000:]
  return cv2.cvtColor(cv2.imread(out_png), cv2.COLOR_BGR2RGB)
