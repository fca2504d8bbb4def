"""Packs any dataset avjax reads into ArrayRecord shards with an Apache Beam pipeline.

  python -m data_pipeline.pack --config.data.root=DIR [--config.data.format=vggsound] --out=OUT
      [--workers=N] [--runner=DirectRunner] [--beam_args="--project=... --region=..."]
      [--config.data.sample_rate=16000 --config.pack.short_side=256 ...]

The dataset is indexed as for training (formats, probing, splits, data.max_clips), then a Beam
pipeline decodes each clip once and writes its records (data_pipeline.packed: a header, the
sound in pieces, one JPEG per frame) into shards of about pack.clips_per_shard clips. Clips go to shards by a hash of their id, and each
shard carries a key over its clips' settings, file sizes and modification times: a second run
rewrites only the shards whose clips changed, and nothing at all when none did. The folder's
`manifest.json` is written last; a run killed midway leaves no manifest, and the next run
keeps the shards already finished. On one machine the DirectRunner runs the pipeline in
--workers processes; `--runner=DataflowRunner|FlinkRunner|SparkRunner` with --beam_args runs
the same pipeline on a cluster, OUT then being a folder every worker sees (e.g. an NFS or
gcsfuse mount).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import importlib.util
import json
import math
import os
import re
import shlex
import sys
import threading
import time


from data_pipeline import decode, media, media_check, packed
from data_pipeline.clips import Clip, DataError

PARTS = "parts"            # per shard: its key, clips, their record counts, hashes, failures
LOG = "pack.log"           # Beam's own log
_PROGRESS = ".progress"    # one byte per clip done, appended by the workers


_COMPRESSION = re.compile(r"^(uncompressed|snappy|(brotli|zstd)(:-?\d+)?)$")


def settings(data_cfg, pack_cfg) -> dict:
  """Everything a record's bytes depend on besides the clip's own files.

  Raises:
    DataError: a pack setting is out of range.
  """
  if not _COMPRESSION.match(str(pack_cfg.compression)):
    raise DataError(f"pack.compression={pack_cfg.compression!r}; it must be uncompressed, "
                    "snappy, brotli[:LEVEL] or zstd[:LEVEL]")
  if not 1 <= int(pack_cfg.jpeg_quality) <= 100:
    raise DataError(f"pack.jpeg_quality={pack_cfg.jpeg_quality}; it must be in 1-100")
  if int(pack_cfg.short_side) < 0 or float(pack_cfg.frames_per_second) < 0:
    raise DataError("pack.short_side and pack.frames_per_second must be >= 0 (0: keep all)")
  if int(pack_cfg.clips_per_shard) < 1:
    raise DataError(f"pack.clips_per_shard={pack_cfg.clips_per_shard}; it must be at least 1")
  return dict(version=packed.VERSION, sample_rate=int(data_cfg.sample_rate),
              short_side=int(pack_cfg.short_side), jpeg_quality=int(pack_cfg.jpeg_quality),
              frames_per_second=float(pack_cfg.frames_per_second),
              compression=str(pack_cfg.compression),
              per_file_timeout_s=float(data_cfg.per_file_timeout_s))


def packed_fps(clip: Clip, config: dict):
  """The frame rate of a clip's packed frames: its own, or pack.frames_per_second if lower."""
  fps_out = config["frames_per_second"]
  if clip.fps and 0 < fps_out < clip.fps:
    return fps_out
  return clip.fps


def clip_key(clip: Clip, config: dict) -> str:
  """Changes when the clip's row, its files (size, modification time) or the settings do."""
  text = json.dumps([clip.to_json(), media_check.file_key(clip.path, clip.audio_path),
                     config], sort_keys=True)
  return hashlib.sha1(text.encode("utf-8")).hexdigest()


def _frames(clip: Clip, config: dict, timeout_s: float):
  """(times, RGB frames) to pack: every frame shown in the clip, or those shown at multiples
  of 1/pack.frames_per_second."""
  if decode.is_image(clip.path):
    return [0.0], [decode.read_image(clip.path)]
  end = clip.start + clip.duration
  fps = packed_fps(clip, config)
  times, frames = [], []
  if fps == clip.fps:  # every frame, at its own timestamp
    for t, frame in decode.iter_frames(clip.path, clip.start, end, timeout_s=timeout_s):
      times.append(t)
      frames.append(frame)
    return times, frames
  grid = [k / fps for k in range(math.ceil(clip.start * fps - 1e-9),
                                 math.ceil(end * fps - 1e-9))]
  shown = None  # the frame shown at the next grid time: the last one at or before it
  g = 0
  for t, frame in decode.iter_frames(clip.path, clip.start, end, timeout_s=timeout_s):
    while g < len(grid) and t > grid[g] + 1e-6:
      times.append(grid[g])
      frames.append(shown if shown is not None else frame)
      g += 1
    shown = frame
  for t in grid[g:]:
    times.append(t)
    frames.append(shown)
  return times, frames


def pack_clip(clip: Clip, config: dict) -> list[bytes]:
  """A clip decoded into its records (data_pipeline.packed): frames as JPEG, the sound as PCM
  with the pad each side.

  Raises:
    decode.DecodeError (or another error of the media): the clip cannot be packed.
  """
  # Decoding a whole clip takes longer than one seek: the limit grows with its length.
  timeout_s = config["per_file_timeout_s"] * (1.0 + clip.duration / 10.0)
  times, jpegs = [], []
  if not clip.audio_only:
    times, frames = _frames(clip, config, timeout_s)
    jpegs = [packed.encode_jpeg(f, config["short_side"], config["jpeg_quality"])
             for f in frames]
  pad = packed.AUDIO_PAD_S
  wave = decode.read_audio(clip.audio_path, clip.start + clip.duration / 2,
                           clip.duration + 2 * pad, config["sample_rate"], timeout_s=timeout_s)
  row = dataclasses.replace(clip, fps=packed_fps(clip, config), packed_in="", record=-1)
  return packed.encode_clip(row, times, jpegs, wave, config["sample_rate"], clip.start - pad)


def _write_text(path: str, text: str) -> None:
  tmp = f"{path}.{os.getpid()}.tmp"
  with open(tmp, "w", encoding="utf-8") as f:
    f.write(text)
  os.replace(tmp, path)


def _tick(path: str) -> None:
  fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
  try:
    os.write(fd, b".")
  finally:
    os.close(fd)


def write_shard(task: dict) -> dict:
  """Packs one shard's clips into its ArrayRecord file (written under a temporary name and
  renamed), then its part file. Runs in a Beam worker; returns the part."""
  from array_record.python.array_record_module import ArrayRecordWriter  # pylint: disable=g-import-not-at-top
  out, name = task["out"], task["file"]
  tmp = os.path.join(out, f".{name}.{os.getpid()}.tmp")
  # One record per group: a random read decodes only its own record.
  writer = ArrayRecordWriter(tmp, f"group_size:1,{task['settings']['compression']}")
  ids, sizes, hashes, failed, transient = [], [], [], [], False
  try:
    for line in task["clips"]:
      clip = Clip.from_json(line)
      try:
        records = pack_clip(clip, task["settings"])
      except Exception as e:  # pylint: disable=broad-except  # any broken file: skip, say why
        failed.append((clip.path, media.failure_reason(e)))
        transient |= isinstance(e, decode.DecodeTimeout)
      else:
        digest = hashlib.sha1()
        for data in records:
          writer.write(data)
          digest.update(data)
        ids.append(clip.clip_id)
        sizes.append(len(records))
        hashes.append(digest.hexdigest())
      _tick(os.path.join(out, _PROGRESS))
  finally:
    writer.close()
  if ids:
    os.replace(tmp, os.path.join(out, name))
  else:
    os.remove(tmp)
  # A shard with a time-out gets no key: the next run packs it again.
  part = dict(file=name if ids else "", key="" if transient else task["key"], clips=ids,
              records=sizes, clip_hashes=hashes, failed=failed,
              bytes=os.path.getsize(os.path.join(out, name)) if ids else 0)
  _write_text(os.path.join(out, PARTS, name + ".json"), json.dumps(part))
  return part


def _shard_of(clip_id: str, count: int) -> int:
  return int(hashlib.sha1(clip_id.encode("utf-8")).hexdigest()[:8], 16) % count


def plan(clips, config: dict, clips_per_shard: int, out: str) -> list[dict]:
  """One task per shard: its file name, clips (sorted by id) and key."""
  count = max(1, math.ceil(len(clips) / max(1, clips_per_shard)))
  members = [[] for _ in range(count)]
  for clip in clips:
    members[_shard_of(clip.clip_id, count)].append(clip)
  tasks = []
  for i, group in enumerate(members):
    group.sort(key=lambda c: c.clip_id)
    key = hashlib.sha1("".join(clip_key(c, config) for c in group).encode()).hexdigest()
    tasks.append(dict(file=f"shard-{i:05d}-of-{count:05d}.array_record", key=key,
                      clips=[c.to_json() for c in group], settings=config, out=out))
  return tasks


def _load_part(out: str, task: dict):
  """The part file of a task's shard as written, or None when there is none."""
  try:
    with open(os.path.join(out, PARTS, task["file"] + ".json"), encoding="utf-8") as f:
      return json.load(f)
  except (OSError, ValueError):
    return None


def _read_part(out: str, task: dict):
  """The finished part of a task's shard, or None when it must be (re)packed."""
  part = _load_part(out, task)
  if part is None or not part.get("key") or part["key"] != task["key"]:
    return None
  shard = os.path.join(out, task["file"])
  if part["clips"] and (not os.path.isfile(shard) or os.path.getsize(shard) != part["bytes"]):
    return None
  return part


def _check_out(out: str) -> None:
  """Refuses a file, or a folder holding anything but an earlier pack (whose stale shards
  are removed at the end)."""
  if os.path.isfile(out):
    raise DataError(f"--out {out} is a file; give a folder")
  if os.path.isdir(out):
    names = [n for n in os.listdir(out) if not n.startswith(".")]
    ours = {packed.MANIFEST, packed.CLIPS, PARTS, LOG}
    foreign = [n for n in names if n not in ours and not n.startswith("shard-")]
    if foreign:
      raise DataError(f"--out {out} holds other files ({', '.join(sorted(foreign)[:3])}); "
                      "give an empty folder or one that a pack wrote")


@contextlib.contextmanager
def _log_to(path: str):
  """Sends this process's stderr (and its children's: Beam's workers) to a log file; yields a
  stream on the real stderr for the progress bar."""
  sys.stderr.flush()
  saved = os.dup(2)
  fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
  os.dup2(fd, 2)
  os.close(fd)
  real = os.fdopen(os.dup(saved), "w")
  try:
    yield real
  finally:
    sys.stderr.flush()
    os.dup2(saved, 2)
    os.close(saved)
    real.close()


def _beam_options(runner: str, workers: int, beam_args: str) -> list[str]:
  args = [f"--runner={runner}"] + shlex.split(beam_args or "")
  if runner == "DirectRunner":
    workers = workers or os.cpu_count() or 1
    args += [f"--direct_num_workers={workers}",
             "--direct_running_mode=" + ("multi_processing" if workers > 1 else "in_memory")]
  return args


def _run_beam(tasks: list[dict], options: list[str], out: str, total: int,
              progress: bool) -> None:
  """Runs write_shard over the tasks in a Beam pipeline, with a progress bar over clips."""
  import tqdm  # pylint: disable=g-import-not-at-top
  ticks = os.path.join(out, _PROGRESS)
  with open(ticks, "wb"):
    pass
  failure = []

  def run():
    try:
      import apache_beam as beam  # pylint: disable=g-import-not-at-top
      from apache_beam.options.pipeline_options import PipelineOptions  # pylint: disable=g-import-not-at-top
      with beam.Pipeline(options=PipelineOptions(options)) as p:
        _ = (p | "shards" >> beam.Create(tasks) | "spread" >> beam.Reshuffle()
             | "pack" >> beam.Map(write_shard))
    except BaseException as e:  # pylint: disable=broad-except  # reported by the caller
      failure.append(e)

  with _log_to(os.path.join(out, LOG)) as real_stderr:
    worker = threading.Thread(target=run, name="beam", daemon=True)  # Ctrl-C ends the run
    worker.start()
    with tqdm.tqdm(total=total, desc="packing", unit="clip", file=real_stderr,
                   disable=not progress) as bar:
      while worker.is_alive():
        worker.join(0.5)
        bar.update(os.path.getsize(ticks) - bar.n)
      bar.update(os.path.getsize(ticks) - bar.n)
  os.remove(ticks)
  if failure:
    err = failure[0]
    if isinstance(err, KeyboardInterrupt):
      raise err
    raise DataError(f"the Beam pipeline failed ({media.failure_reason(err)}); its log: "
                    f"{os.path.join(out, LOG)}")


def run(data_cfg, pack_cfg, out: str, *, runner: str = "DirectRunner", workers: int = 0,
        beam_args: str = "", progress: bool = True) -> dict:
  """Indexes the dataset data_cfg names, packs what changed into out; returns the manifest.

  Raises:
    DataError: the dataset, the output folder or the pipeline failed (one line).
  """
  from data_pipeline import index  # pylint: disable=g-import-not-at-top
  if importlib.util.find_spec("apache_beam") is None:
    raise DataError("packing needs Apache Beam: pip install 'apache-beam>=2.70' "
                    "(the avjax[pack] extra)")
  out = os.path.abspath(os.path.expanduser(out))
  _check_out(out)
  config = settings(data_cfg, pack_cfg)
  dataset = index.load_dataset(data_cfg, progress=progress)
  if dataset.format == "packed":
    raise DataError(f"{dataset.root} is already packed")
  if os.path.commonpath([out, dataset.root]) == dataset.root:
    raise DataError(f"--out {out} is inside the dataset's folder {dataset.root}; give a "
                    "folder outside it")
  os.makedirs(os.path.join(out, PARTS), exist_ok=True)
  tasks = plan(dataset.clips, config, int(pack_cfg.clips_per_shard), out)
  parts = {t["file"]: _read_part(out, t) for t in tasks}
  todo = [t for t in tasks if parts[t["file"]] is None]
  manifest_path = os.path.join(out, packed.MANIFEST)
  if not todo and packed.is_packed(out):
    manifest = packed.read_manifest(out)
    if progress:
      print(f"{out} is up to date: {manifest['clips']} clips in {len(manifest['shards'])} "
            "shard(s); nothing rewritten", file=sys.stderr)
    return manifest
  if os.path.exists(manifest_path):
    os.remove(manifest_path)  # the folder is unfinished until the new manifest is written
  started = time.monotonic()
  if todo:
    _run_beam(todo, _beam_options(runner, workers, beam_args), out,
              sum(len(t["clips"]) for t in todo), progress)
    for t in todo:
      # A keyless part (a time-out) is used now and packed again next time.
      parts[t["file"]] = _load_part(out, t)
      if parts[t["file"]] is None:
        raise DataError(f"shard {t['file']} was not written; Beam's log: "
                        f"{os.path.join(out, LOG)}")
  return _finish(dataset, tasks, parts, config, out, time.monotonic() - started, len(todo),
                 progress)


def _finish(dataset, tasks, parts, config, out, seconds, packed_now, progress) -> dict:
  """Writes clips.jsonl and, last, manifest.json; removes shards of an older layout."""
  records, shards, skipped, hashes, first = {}, [], list(dataset.skipped), [], 0
  for task in tasks:
    part = parts[task["file"]]
    skipped += [tuple(item) for item in part["failed"]]
    if not part["clips"]:
      continue
    for clip_id, count in zip(part["clips"], part["records"]):
      records[clip_id] = first  # the index of the clip's header record
      first += count
    hashes += part["clip_hashes"]
    shards.append(dict(file=task["file"], clips=len(part["clips"]), key=part["key"],
                       bytes=part["bytes"]))
  # The table keeps the index's order, so that a seed draws the same clips as from the videos.
  rows = [dataclasses.replace(c, fps=packed_fps(c, config), record=records[c.clip_id]).to_json()
          for c in dataset.clips if c.clip_id in records]
  if not rows:
    raise DataError(f"no clip could be packed ({len(skipped)} skipped; e.g. {skipped[0][0]}: "
                    f"{skipped[0][1]})" if skipped else "no clip to pack")
  keep = {s["file"] for s in shards}
  for name in os.listdir(out):
    # Shards of an older layout, and shards a killed run left half-written.
    stale = name.startswith("shard-") and name not in keep
    if stale or (name.startswith(".shard-") and name.endswith(".tmp")):
      os.remove(os.path.join(out, name))
  for name in os.listdir(os.path.join(out, PARTS)):
    if name[:-len(".json")] not in {t["file"] for t in tasks}:
      os.remove(os.path.join(out, PARTS, name))
  _write_text(os.path.join(out, packed.CLIPS), "".join(r + "\n" for r in rows))
  counts = {s: sum(1 for r in rows if json.loads(r)["split"] == s) for s in ("train", "val", "test")}
  manifest = dict(
      kind=packed.KIND, version=packed.VERSION, clips=len(rows), counts=counts,
      source=dict(root=dataset.root, format=dataset.format),
      settings=config, shards=shards, bytes=sum(s["bytes"] for s in shards),
      skipped=[list(item) for item in skipped],
      content_hash=hashlib.sha256("".join(hashes).encode()).hexdigest(),
      packed_shards_this_run=packed_now, seconds_this_run=round(seconds, 1))
  _write_text(os.path.join(out, packed.MANIFEST), json.dumps(manifest, indent=1))
  if progress:
    print(f"packed {len(rows)} clips into {len(shards)} shard(s) in {out} "
          f"({manifest['bytes'] / 2**20:.1f} MB; {packed_now} shard(s) written in "
          f"{seconds:.0f} s): " + ", ".join(f"{s} {n}" for s, n in counts.items())
          + (f"; {len(skipped)} skipped, listed in the manifest" if skipped else ""),
          file=sys.stderr)
  return manifest


def main(argv) -> None:
  del argv
  try:
    run(_CONFIG.value.data, _CONFIG.value.pack, _OUT.value, runner=_RUNNER.value,
        workers=_WORKERS.value, beam_args=_BEAM_ARGS.value)
  except DataError as e:
    sys.exit(f"avjax pack: {e}")


if __name__ == "__main__":
  from absl import app, flags  # pylint: disable=g-import-not-at-top
  from ml_collections import config_dict, config_flags  # pylint: disable=g-import-not-at-top
  from data_pipeline import config as config_lib  # pylint: disable=g-import-not-at-top

  _OUT = flags.DEFINE_string("out", None, "The folder the shards and manifest go to.",
                             required=True)
  _RUNNER = flags.DEFINE_string("runner", "DirectRunner", "The Beam runner.")
  _WORKERS = flags.DEFINE_integer("workers", 0, "DirectRunner worker processes (0: one per "
                                  "core; 1: in this process).")
  _BEAM_ARGS = flags.DEFINE_string("beam_args", "", "More Beam pipeline options, e.g. "
                                   "\"--project=P --region=R --temp_location=gs://B/tmp\".")
  _CONFIG = config_flags.DEFINE_config_dict("config", config_dict.ConfigDict(dict(
      data=config_lib.default_data_config(), pack=config_lib.default_pack_config())))
  app.run(main)
