"""What every format reader returns, and helpers to find metadata and media files under a root."""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import os
import re
from typing import Callable, Iterable, Optional

from data_pipeline import media
from data_pipeline.clips import Box

SPLIT_NAMES = {"train": "train", "training": "train", "val": "val", "valid": "val",
               "validate": "val", "validation": "val", "test": "test", "testing": "test",
               "eval": "test", "evaluation": "test"}


@dataclasses.dataclass
class Entry:
  """A candidate clip from the metadata, before probing."""
  path: str
  audio_path: str = ""
  labels: tuple[str, ...] = ()
  split: Optional[str] = None  # None: assigned by hashing clip_id
  start: float = 0.0
  end: Optional[float] = None  # segment end inside the file, when the metadata gives one
  target_boxes: tuple[Box, ...] = ()
  distractor_boxes: tuple[tuple[Box, ...], ...] = ()
  clip_id: str = ""
  gt_boxes: tuple[Box, ...] = ()  # see clips.Clip
  gt_consensus: int = 1
  fold: int = 0  # official cross-validation fold; 0 = none

  def __post_init__(self):
    self.audio_path = self.audio_path or self.path
    self.clip_id = self.clip_id or os.path.splitext(os.path.basename(self.path))[0]


@dataclasses.dataclass
class Listing:
  """A reader's result: candidate clips, rows whose media is missing, extra metadata."""
  entries: list[Entry]
  skipped: list[tuple[str, str]] = dataclasses.field(default_factory=list)
  ontology: Optional[dict] = None


def hash_split(clip_id: str, fractions=(0.8, 0.1, 0.1)) -> str:
  """A deterministic train/val/test split from the clip id (stable across runs and machines)."""
  u = int(hashlib.sha1(clip_id.encode("utf-8")).hexdigest()[:8], 16) / 2**32
  if u < fractions[0]:
    return "train"
  return "val" if u < fractions[0] + fractions[1] else "test"


def normalise_split(name: str) -> Optional[str]:
  return SPLIT_NAMES.get(name.strip().lower())


_FOLD = re.compile(r"^fold[_-]?(\d+)$", re.IGNORECASE)


def folder_fields(root: str, path: str) -> tuple[Optional[str], int, tuple[str, ...]]:
  """(split, fold, labels) from a file's folders in a plain folder dataset:
  `root/<class>/...`, `root/<split>/<class>/...` or `root/fold<K>/<class>/...` (fold 0: none)."""
  parts = os.path.relpath(path, root).split(os.sep)[:-1]
  split = normalise_split(parts[0]) if parts else None
  match = _FOLD.match(parts[0]) if parts and not split else None
  if split or match:
    parts = parts[1:]
  return split, int(match.group(1)) if match else 0, (parts[0],) if parts else ()


def walk_files(root: str, extensions: Iterable[str]) -> list[str]:
  """Files under root (recursive, sorted, hidden folders skipped) with one of the extensions.

  Symlinked folders are followed, each real folder once (a link back up the tree is no loop)
  and each real file once: one file reached by two paths would become two clips, possibly one
  in train and one in test.
  """
  extensions = tuple(e.lower() for e in extensions)
  found, seen_dirs, seen_files = [], set(), set()
  for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
    st = os.stat(dirpath)
    if (st.st_dev, st.st_ino) in seen_dirs:
      dirnames[:] = []
      continue
    seen_dirs.add((st.st_dev, st.st_ino))
    dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
    for name in sorted(filenames):
      if name.lower().endswith(extensions) and not name.startswith("."):
        path = os.path.join(dirpath, name)
        real = os.path.realpath(path)
        if real not in seen_files:
          seen_files.add(real)
          found.append(path)
  return found


def media_by_stem(root: str) -> dict[str, str]:
  """Video files under root by file name without extension (first one found wins)."""
  index = {}
  for path in walk_files(root, media.VIDEO_EXTENSIONS):
    index.setdefault(os.path.splitext(os.path.basename(path))[0], path)
  return index


def find_segment(index: dict[str, str], youtube_id: str, start: float,
                 end: Optional[float] = None) -> Optional[tuple[str, float, bool]]:
  """The file holding a YouTube segment: (path, offset of the segment in it, is a full video).

  Trimmed clips are named `<id>_<start:06d>[_<end:06d>]` (offset 0); a full video `<id>` holds
  the segment at `start`.
  """
  s = int(round(start))
  names = [f"{youtube_id}_{s:06d}", f"{youtube_id}_{s}"]
  if end is not None:
    e = int(round(end))
    names = [f"{youtube_id}_{s:06d}_{e:06d}", f"{youtube_id}_{s}_{e}"] + names
  for name in names:
    if name in index:
      return index[name], 0.0, False
  if youtube_id in index:
    return index[youtube_id], float(start), True
  return None


class Segments:
  """The entries of YouTube segments (AudioSet, Kinetics, VGGSound rows) found among the videos
  under a root; segments no file holds are listed as skipped ("missing file")."""

  def __init__(self, root: str):
    self.index = media_by_stem(root)
    self.entries: list[Entry] = []
    self.skipped: list[tuple[str, str]] = []

  def add(self, youtube_id: str, start: float, end: Optional[float], *, seconds: float,
          clip_id: str, **fields) -> None:
    """The segment that starts at `start` and lasts `seconds` (see find_segment; `end`, when
    given, is in trimmed names). A trimmed clip is read whole (from 0); a full video from the
    segment's start to its end."""
    found = find_segment(self.index, youtube_id, start, end)
    if found is None:
      self.skipped.append((clip_id, "missing file"))
      return
    path, offset, full = found
    self.entries.append(Entry(path=path, start=offset, end=offset + seconds if full else None,
                              clip_id=clip_id, **fields))

  def listing(self, ontology: Optional[dict] = None) -> Listing:
    return Listing(self.entries, self.skipped, ontology)


def metadata_files(root: str, extensions: str | tuple[str, ...],
                   matches: Optional[Callable[[str], bool]] = None, *, named: str = "",
                   skip: Iterable[str] = ()) -> list[str]:
  """The metadata files directly in root, sorted by name: files whose name ends in one of the
  extensions (in any case) and whose content `matches` accepts (every such file without it).

  A file that `matches` cannot read (OSError, or ValueError: not UTF-8, not JSON, ...) does not
  match, so a stray binary file never stops detection.

  Args:
    root: the dataset folder.
    extensions: ".csv", or a tuple of them.
    matches: path -> whether the file's content is this format's metadata.
    named: a file name that, when root has it, is the one metadata file (taken unchecked).
    skip: file names that are never this format's metadata.
  """
  if named and os.path.isfile(os.path.join(root, named)):
    return [os.path.join(root, named)]
  skip = set(skip)
  found = []
  for name in sorted(os.listdir(root)):
    path = os.path.join(root, name)
    if not (name.lower().endswith(extensions) and name not in skip and os.path.isfile(path)):
      continue
    try:
      if matches is None or matches(path):
        found.append(path)
    except (OSError, ValueError):
      continue
  return found


def first_lines(path: str, n: int) -> list[str]:
  """The first n lines of a UTF-8 text file (a byte-order mark dropped; "" past its end)."""
  with open(path, encoding="utf-8-sig") as f:
    return [f.readline() for _ in range(n)]


def header_columns(header: list[str], wanted: tuple[str, ...], name: str) -> dict[str, int]:
  """Index of each wanted column in a CSV header (names compared in lower case).

  Raises:
    ValueError: a wanted column is missing (the message names the file and the columns).
  """
  where = {cell.lower(): i for i, cell in enumerate(header)}
  missing = [c for c in wanted if c not in where]
  if missing:
    raise ValueError(f"{name} has no column {', '.join(missing)} (its header: "
                     f"{', '.join(header) or 'empty'})")
  return {c: where[c] for c in wanted}


def folder_listing(root: str, extensions: Iterable[str]) -> Listing:
  """Every file with one of the extensions under root, its split, fold and class from its
  folders (`folder_fields`), its clip id its path under root without the extension."""
  entries = []
  for path in walk_files(root, extensions):
    split, fold, labels = folder_fields(root, path)
    clip_id = os.path.splitext(os.path.relpath(path, root))[0].replace(os.sep, "/")
    entries.append(Entry(path=path, labels=labels, split=split, fold=fold, clip_id=clip_id))
  return Listing(entries)


def sound_table(root: str, meta: str, columns: tuple[str, str, str],
                path_of: Callable[[str, str], str]) -> Listing:
  """The audio-only entries of a metadata CSV with a header (ESC-50, UrbanSound8K).

  Args:
    root: the dataset folder; meta: the CSV's path under it.
    columns: the header names of the file name, the fold and the class.
    path_of: (file name, fold) -> the sound's path under root.
  """
  rows = read_csv_rows(os.path.join(root, meta))
  column = header_columns(rows[0] if rows else [], columns, meta)
  entries, skipped = [], []
  for row in rows[1:]:
    name, fold, label = (row[column[c]] for c in columns)
    path = os.path.join(root, path_of(name, fold))
    if not os.path.isfile(path):
      skipped.append((path, "missing file"))
      continue
    entries.append(Entry(path=path, labels=(label,), fold=int(fold),
                         clip_id=os.path.splitext(name)[0]))
  return Listing(entries, skipped)


def read_csv_rows(path: str, skip_comments: bool = False) -> list[list[str]]:
  """CSV rows with cells stripped; blank lines (and `#` lines when asked) dropped."""
  with open(path, newline="", encoding="utf-8-sig") as f:
    lines = [ln for ln in f if ln.strip() and not (skip_comments and ln.lstrip().startswith("#"))]
  return [[c.strip() for c in row] for row in csv.reader(lines, skipinitialspace=True)]
