"""Turns a dataset on disk into a clip table: read the metadata, probe every file, keep what works.

`load_dataset(data_cfg)` picks the format reader (data_cfg.format, or detected from the files
under data_cfg.root; root "" is the embedded dataset, which must be built), probes every media
file in parallel worker processes (results cached, so a second run probes nothing unchanged),
skips what cannot be used with a reason per file (a count per reason on the console, the full
list in a log file next to the cache), assigns splits and applies data_cfg.max_clips.
"""

from __future__ import annotations

import collections
import csv
import dataclasses
import hashlib
import os
import sys
from typing import Callable, Optional

from data_pipeline import media
from data_pipeline import media_check
from data_pipeline import packed
from data_pipeline.clips import Clip
from data_pipeline.clips import DataError
from data_pipeline.clips import class_names
from data_pipeline import formats
from data_pipeline.formats import common
from data_pipeline.formats import embedded

MIN_SECONDS = media_check.MIN_SECONDS
MIN_AUDIO_ONLY_SECONDS = media_check.MIN_AUDIO_ONLY_SECONDS
VAL_FRACTION = 0.1


@dataclasses.dataclass
class Dataset:
  """A clip table with what was skipped and why.

  Attributes:
    clips: the usable clips (all splits).
    skipped: (path or clip id, reason) for each file or row that could not be used.
    classes: sorted class names over all clips.
    root: the dataset folder.
    format: the reader used ("folder", "vggsound", "audioset", ...).
    ontology: the AudioSet ontology by id, when given.
    log_path: file listing every skipped item with its reason ("" when nothing was skipped).
    probed: how many files were probed in this call (0 when all came from the cache).
  """
  clips: list[Clip]
  skipped: list[tuple[str, str]]
  classes: list[str]
  root: str
  format: str
  ontology: Optional[dict] = None
  log_path: str = ""
  probed: int = 0

  def split(self, name: str) -> list[Clip]:
    """The clips of one split ("train", "val" or "test"), in table order."""
    return [clip for clip in self.clips if clip.split == name]


def require_pictures(dataset: Dataset) -> None:
  """Refuses a dataset of sounds without pictures for AVC training and evaluation.

  Raises:
    DataError: some clip is audio-only (ESC-50, UrbanSound8K, DCASE 2013, a sound folder).
  """
  sounds = sum(1 for clip in dataset.clips if clip.audio_only)
  if sounds:
    raise DataError(f"{sounds} of the {len(dataset.clips)} clips in {dataset.root} "
                    f"({dataset.format}) are sounds without pictures: AVC training and "
                    "evaluation need a frame with each sound; audio-only datasets serve "
                    "--mode=probe (L3's linear probe)")


def cache_dir(data_cfg) -> str:
  """Where probe results and skip logs go: data_cfg.cache_dir, $AVJAX_DATA or ~/.cache/avjax."""
  path = data_cfg.get("cache_dir", "") or os.environ.get("AVJAX_DATA", "") or "~/.cache/avjax"
  return os.path.abspath(os.path.expanduser(path))


def _hash01(text: str) -> float:
  return int(hashlib.sha1(text.encode("utf-8")).hexdigest()[:8], 16) / 2**32


def _embedded_root(data_cfg) -> str:
  """The embedded dataset's folder, for root "": in data_cfg.cache_dir when set, else in
  $AVJAX_DATA or ~/.cache/avjax. It is built by its builder beforehand, never here."""
  cache = data_cfg.get("cache_dir", "")
  out_dir = os.path.join(cache, embedded.dir_name()) if cache else embedded.default_dir()
  out_dir = os.path.abspath(os.path.expanduser(out_dir))
  if not embedded.is_built(out_dir):
    default = out_dir == os.path.abspath(embedded.default_dir())
    how = ("`./run.sh demo` or `python -m embedded_dataset`" if default
           else f"`python -m embedded_dataset --out {out_dir}`")
    raise DataError(f"the embedded dataset (data.root \"\") is not built in {out_dir}; "
                    f"build it with {how} from the repository root")
  return out_dir


def _resolve_root(data_cfg) -> str:
  root = data_cfg.get("root", "") or _embedded_root(data_cfg)
  root = os.path.abspath(os.path.expanduser(root))
  if not os.path.exists(root):
    parent = os.path.dirname(root)
    hint = (f"; {parent} holds: {', '.join(sorted(os.listdir(parent))[:10]) or 'nothing'}"
            if os.path.isdir(parent) else "")
    raise DataError(f"data root {root} does not exist{hint}")
  if not os.path.isdir(root):
    raise DataError(f"data root {root} is a file; give the folder that holds the dataset")
  return root


def _choose_format(root: str, requested: str) -> str:
  known = ", ".join(formats.READERS)
  fmt = formats.canonical(requested or "")
  if fmt:
    if fmt not in formats.READERS:
      raise DataError(f"unknown data format {requested!r}; known formats: {known}")
    if not formats.READERS[fmt].detect(root):
      raise DataError(f"{root} does not look like {fmt} data (it holds: {_contents(root)})")
    return fmt
  fmt = formats.detect(root)
  if not fmt:
    raise DataError(f"no dataset found in {root} (it holds: {_contents(root)}); expected videos "
                    f"or the metadata of one of: {known}")
  return fmt


def _contents(root: str) -> str:
  names = sorted(os.listdir(root))
  shown = ", ".join(names[:10]) + (f", ... ({len(names)} entries)" if len(names) > 10 else "")
  return shown or "nothing"


def reason_kind(reason: str) -> str:
  """The reason without file-specific detail, for counting ("truncated (at 1 s)" -> "truncated")."""
  return reason.split(" (")[0].split(":")[0].strip()


def _build_clips(entries, results, skipped) -> list[Clip]:
  clips, seen = [], collections.Counter()
  for entry, info in zip(entries, results):
    if not info["ok"]:
      skipped.append((entry.path, info["reason"]))
      continue
    end = info["duration"] if entry.end is None else min(entry.end, info["duration"])
    duration = end - entry.start
    # A probe pads a short sound to its 1 s window; a picture needs a second of sound around it.
    shortest = (MIN_AUDIO_ONLY_SECONDS if media.media_kind(entry.path) == "audio"
                else MIN_SECONDS)
    if duration < shortest:
      skipped.append((entry.path, f"segment shorter than {shortest:g} s"))
      continue
    clip_id = entry.clip_id
    seen[clip_id] += 1
    if seen[clip_id] > 1:
      clip_id = f"{clip_id}#{seen[clip_id]}"
    clips.append(Clip(
        path=entry.path, audio_path=entry.audio_path, duration=float(duration),
        fps=info["fps"], audio_rate=int(info["audio_rate"]),
        audio_channels=int(info["audio_channels"]), labels=tuple(entry.labels),
        split=entry.split or common.hash_split(clip_id), start=float(entry.start),
        target_boxes=tuple(entry.target_boxes), distractor_boxes=tuple(entry.distractor_boxes),
        clip_id=clip_id, gt_boxes=tuple(entry.gt_boxes), gt_consensus=int(entry.gt_consensus),
        fold=int(entry.fold)))
  return clips


def _carve_val(clips: list[Clip]) -> list[Clip]:
  """Datasets with train/test but no val split: a hashed tenth of train becomes val."""
  if any(c.split == "val" for c in clips) or not any(c.split == "train" for c in clips):
    return clips
  return [dataclasses.replace(c, split="val")
          if c.split == "train" and _hash01("val:" + c.clip_id) < VAL_FRACTION else c
          for c in clips]


def cap_clips(clips: list[Clip], max_clips: int) -> list[Clip]:
  """At most max_clips clips per split, chosen by hashing clip ids (deterministic)."""
  if max_clips <= 0:
    return clips
  keep = set()
  for split in ("train", "val", "test"):
    ids = sorted((_hash01(c.clip_id), c.clip_id) for c in clips if c.split == split)
    keep.update(clip_id for _, clip_id in ids[:max_clips])
  return [c for c in clips if c.clip_id in keep]


def _write_log(directory: str, fmt: str, root: str, skipped) -> str:
  if not skipped:
    return ""
  tag = hashlib.sha1(root.encode("utf-8")).hexdigest()[:8]
  path = os.path.join(directory, f"skipped_{fmt}_{os.path.basename(root) or 'root'}_{tag}.log")
  os.makedirs(directory, exist_ok=True)
  with open(path, "w") as f:
    f.write(f"# files of {root} ({fmt}) that could not be used: reason<TAB>path\n")
    for item, reason in skipped:
      f.write(f"{reason}\t{item}\n")
  return path


def _summary(skipped) -> str:
  counts = collections.Counter(reason_kind(reason) for _, reason in skipped)
  return ", ".join(f"{reason}: {n}" for reason, n in counts.most_common())


def _transient_note(count: int, data_cfg) -> str:
  return (f"{count} of them failed for the machine's sake (time or memory limit, crashed worker): "
          "not remembered, they are probed again on the next run; on a busy machine raise "
          f"data.per_file_timeout_s (now {float(data_cfg.get('per_file_timeout_s', 20.0)):g} s)")


def _print_counts(clips, root: str, fmt: str) -> None:
  counts = collections.Counter(c.split for c in clips)
  print(f"indexed {len(clips)} clips from {root} ({fmt}): "
        + ", ".join(f"{s} {counts[s]}" for s in ("train", "val", "test")), file=sys.stderr)


def _load_packed(root: str, data_cfg, progress: bool) -> Dataset:
  """A packed folder's clip table: probed and split when it was packed, so only capped here."""
  clips, skipped = packed.read_table(root)
  clips = cap_clips(clips, int(data_cfg.get("max_clips", 0) or 0))
  if not clips:
    raise DataError(f"the packed dataset in {root} holds no clip")
  if progress:
    _print_counts(clips, root, "packed")
  return Dataset(clips=clips, skipped=skipped, classes=class_names(clips), root=root,
                 format="packed")


def load_dataset(data_cfg, *, progress: bool = True,
                 probe_fn: Callable[[str, str, float], dict] = media_check.probe_file,
                 memory_limit_mb: int = media_check.DEFAULT_MEMORY_LIMIT_MB) -> Dataset:
  """Reads, probes and filters the dataset that data_cfg names.

  Args:
    data_cfg: the data ConfigDict (root, format, cache_dir, max_clips, per_file_timeout_s).
    progress: show a progress bar while probing and print the summary.
    probe_fn: the per-file probe (module-level, run in worker processes).
    memory_limit_mb: address-space limit of each probe worker (0: none).

  Raises:
    DataError: missing root, unknown format, unreadable metadata or no usable clip.
  """
  root = _resolve_root(data_cfg)
  fmt = _choose_format(root, data_cfg.get("format", ""))
  if fmt == "packed":
    return _load_packed(root, data_cfg, progress)
  try:
    listing = formats.READERS[fmt].read(root)
  except (OSError, ValueError, KeyError, IndexError, TypeError, csv.Error) as e:
    raise DataError(f"cannot read the {fmt} metadata in {root}: {type(e).__name__}: {e}") from None
  directory = cache_dir(data_cfg)
  entries = listing.entries
  results, probed = media_check.probe_many(
      [(e.path, e.audio_path) for e in entries],
      cache_path=os.path.join(directory, "probe_cache.json"),
      timeout_s=float(data_cfg.get("per_file_timeout_s", 20.0)),
      num_workers=int(data_cfg.get("probe_workers", 0) or 0), memory_limit_mb=memory_limit_mb, probe_fn=probe_fn, progress=progress)
  skipped = list(listing.skipped)
  transient = sum(1 for r in results if r.get("transient"))
  clips = _build_clips(entries, results, skipped)
  clips = cap_clips(_carve_val(clips), int(data_cfg.get("max_clips", 0) or 0))
  log_path = _write_log(directory, fmt, root, skipped)
  if not clips:
    detail = f" ({_summary(skipped)}; list in {log_path})" if skipped else ""
    if skipped and all(reason.startswith(media_check.CRASHED) for _, reason in skipped):
      detail += ("; every probe worker died, which usually means the workers could not start "
                 "(a script that indexes data needs an `if __name__ == \"__main__\":` guard)")
    if transient:
      detail += f"; {_transient_note(transient, data_cfg)}"
    raise DataError(f"no usable clip in {root} ({fmt} format): {len(skipped)} skipped{detail}")
  if progress:
    _print_counts(clips, root, fmt)
    if skipped:
      print(f"skipped {len(skipped)} ({_summary(skipped)}); list in {log_path}", file=sys.stderr)
    if transient:
      print(f"  {_transient_note(transient, data_cfg)}", file=sys.stderr)
  return Dataset(clips=clips, skipped=skipped, classes=class_names(clips), root=root,
                 format=fmt, ontology=listing.ontology, log_path=log_path, probed=probed)
