"""Checks that media files are usable clips, in parallel worker processes, with a result cache.

`probe_file` opens one file (or an image + audio pair), reads the stream facts, decodes a
frame and audio windows, and says why the file cannot be used when it cannot. `probe_many`
runs it over many files in a pool of worker processes: a file that takes longer than the
per-file time limit has its worker killed (one hostile file never stalls indexing), workers
run under an address-space limit, and results are cached in a JSON file keyed by path, size
and modification time so a second run probes nothing that has not changed.

Only verdicts on the file itself are cached. A transient failure (a time limit, the memory
limit, a crashed worker) says as much about the machine's load at that moment as about the
file: it is marked `transient`, never cached, and a timed-out file is tried once more, alone,
after the others, so a busy first run keeps the same files as an idle one.
"""

from __future__ import annotations

import json
import multiprocessing
import multiprocessing.connection
import os
import time
import traceback
from typing import Callable, Optional, Sequence

import numpy as np
import tqdm

from data_pipeline import decode
from data_pipeline import media

MIN_SECONDS = 1.0
# An audio-only clip may be shorter (UrbanSound8K has slices of a tenth of a second): a probe
# zero-pads it to its window.
MIN_AUDIO_ONLY_SECONDS = 0.05
# Peak absolute sample below which a track counts as silent (16-bit quantisation step: 3e-5).
SILENCE_PEAK = 1e-4
# Audio windows (1 s each) checked for silence, spread over the file.
SILENCE_WINDOWS = 5
DEFAULT_MEMORY_LIMIT_MB = 6144
_PROBE_RATE = 16000
_CACHE_VERSION = 4  # 1 cached transient failures as verdicts; 2 refused sound-only files;
# 3 could cache an open cut short by its time limit as "not a media file"
SAVE_EVERY_S = 30.0

Item = tuple[str, str]  # (path, audio_path)


def probe_file(path: str, audio_path: Optional[str] = None, timeout_s: float = 20.0) -> dict:
  """Facts about one clip and whether it is usable.

  Returns:
    dict with ok (bool), reason (why not usable, else ""), duration, fps (None for images),
    width, height, audio_rate, audio_channels.
  """
  audio_path = audio_path or path
  try:
    return _probe(path, audio_path, timeout_s)
  except decode.DecodeTimeout as e:
    return _fail(f"{TIMED_OUT} ({e})", transient=True)
  except decode.DecodeError as e:
    return _fail(str(e))
  except MemoryError:
    return _fail(OUT_OF_MEMORY, transient=True)


CRASHED = "decoder crashed"
TIMED_OUT = "timed out"
OUT_OF_MEMORY = "out of memory"


def _fail(reason: str, transient: bool = False) -> dict:
  return dict(ok=False, reason=reason, transient=transient, duration=None, fps=None, width=0,
              height=0, audio_rate=0, audio_channels=0)


def _probe(path: str, audio_path: str, timeout_s: float) -> dict:
  for p in {path, audio_path}:
    if not os.path.lexists(p):
      return _fail("missing file")
  if decode.is_image(path):
    image = decode.read_image(path)
    info = decode.media_info(audio_path, timeout_s=timeout_s)
    info.update(fps=None, height=image.shape[0], width=image.shape[1], has_video=True)
  else:
    info = decode.media_info(path, timeout_s=timeout_s)
    if audio_path != path:
      audio = decode.media_info(audio_path, timeout_s=timeout_s)
      info.update(audio_rate=audio["audio_rate"], audio_channels=audio["audio_channels"],
                  has_audio=audio["has_audio"])
  # A sound file on its own is an audio-only clip (probes, embedding); any other file needs
  # a picture.
  audio_only = media.media_kind(path) == "audio" and audio_path == path
  if audio_only:
    info["fps"] = None
  elif not info["has_video"]:
    return _fail("no video stream")
  if not info["has_audio"]:
    return _fail("no audio stream")
  duration = info["duration"]
  if duration is None or not np.isfinite(duration):
    return _fail("unknown duration")
  shortest = MIN_AUDIO_ONLY_SECONDS if audio_only else MIN_SECONDS
  if duration < shortest:
    return _fail(f"shorter than {shortest:g} s")
  if not (audio_only or decode.is_image(path)):
    # The last frame must be where the headers say: a cut-off file has a shorter video.
    step = 1.0 / info["fps"] if info["fps"] else 0.1
    try:
      frame, frame_time = decode.read_frame_with_time(path, duration - step / 2,
                                                      timeout_s=timeout_s, strict=False)
    except decode.DecodeTimeout:
      raise
    except decode.DecodeError as e:
      return _fail(f"undecodable video: {e}")
    if frame_time < duration - max(0.5, 3 * step):
      return _fail(f"truncated (video ends at {frame_time:.1f} s of {duration:.1f} s)")
    info["height"], info["width"] = frame.shape[:2]
  peak = 0.0
  centres = np.linspace(0.5, max(0.5, duration - 0.5), SILENCE_WINDOWS)
  try:
    for centre in centres:
      window = decode.read_audio(audio_path, float(centre), 1.0, _PROBE_RATE, timeout_s=timeout_s)
      peak = max(peak, float(np.abs(window).max()))
      if peak >= SILENCE_PEAK:
        break
  except decode.DecodeTimeout:
    raise
  except decode.DecodeError as e:
    return _fail(f"undecodable audio: {e}")
  if peak < SILENCE_PEAK:
    return _fail("silent audio")
  return dict(ok=True, reason="", duration=float(duration), fps=info["fps"],
              width=int(info["width"]), height=int(info["height"]),
              audio_rate=int(info["audio_rate"]), audio_channels=int(info["audio_channels"]))


def file_key(path: str, audio_path: str) -> Optional[str]:
  """Cache key: paths plus size and mtime of each file; None when a file is missing."""
  parts = []
  for p in (path, audio_path) if audio_path != path else (path,):
    try:
      st = os.stat(p)
    except OSError:
      return None
    parts.append(f"{os.path.abspath(p)}:{st.st_size}:{st.st_mtime_ns}")
  return "|".join(parts)


def _worker(conn, probe_fn, timeout_s: float, memory_limit_mb: int) -> None:
  """Worker process: probes the items it receives until it gets None."""
  if memory_limit_mb:
    try:
      import resource  # pylint: disable=g-import-not-at-top
      limit = memory_limit_mb * 2**20
      _, hard = resource.getrlimit(resource.RLIMIT_AS)
      if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
      resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    except (ImportError, ValueError, OSError):
      pass  # No address-space limit on this platform: the time limit still applies.
  while True:
    try:
      task = conn.recv()
    except EOFError:
      return
    if task is None:
      return
    index, path, audio_path = task
    try:
      result = probe_fn(path, audio_path, timeout_s)
    except MemoryError:
      result = _fail(OUT_OF_MEMORY, transient=True)
    except Exception as e:  # pylint: disable=broad-except
      result = _fail(f"probe failed: {type(e).__name__}: {e}".splitlines()[0][:200])
      result["traceback"] = traceback.format_exc(limit=3)
    conn.send((index, result))


class _Slot:
  """One worker process and the item it is working on."""

  def __init__(self, ctx, probe_fn, timeout_s, memory_limit_mb):
    self.conn, child = ctx.Pipe()
    self.proc = ctx.Process(target=_worker, args=(child, probe_fn, timeout_s, memory_limit_mb),
                            daemon=True)
    self.proc.start()
    child.close()
    self.task = None
    self.started = 0.0

  def submit(self, task):
    self.task, self.started = task, time.monotonic()
    self.conn.send(task)

  def kill(self):
    self.proc.kill()
    self.proc.join(5)
    self.conn.close()

  def stop(self):
    try:
      self.conn.send(None)
    except (OSError, BrokenPipeError):
      pass
    self.proc.join(2)
    if self.proc.is_alive():
      self.kill()


def _context():
  methods = multiprocessing.get_all_start_methods()
  # forkserver: no fork of a parent that may hold JAX/XLA threads; workers start fast.
  if "forkserver" not in methods:
    return multiprocessing.get_context("spawn")
  ctx = multiprocessing.get_context("forkserver")
  # Workers start with av/cv2 imported.
  ctx.set_forkserver_preload(["data_pipeline.media_check"])
  return ctx


def load_cache(cache_path: str) -> dict:
  try:
    with open(cache_path) as f:
      data = json.load(f)
    if data.get("version") == _CACHE_VERSION:
      return data["entries"]
  except (OSError, ValueError, KeyError, AttributeError):
    pass
  return {}


def save_cache(cache_path: str, entries: dict) -> None:
  """Writes atomically (temp file + rename) so an interrupted run never leaves half a cache."""
  os.makedirs(os.path.dirname(os.path.abspath(cache_path)), exist_ok=True)
  tmp = f"{cache_path}.{os.getpid()}.tmp"
  with open(tmp, "w") as f:
    json.dump(dict(version=_CACHE_VERSION, entries=entries), f)
  os.replace(tmp, cache_path)


def probe_many(items: Sequence[Item], *, cache_path: Optional[str] = None,
               timeout_s: float = 20.0, num_workers: int = 0,
               memory_limit_mb: int = DEFAULT_MEMORY_LIMIT_MB,
               probe_fn: Callable[[str, str, float], dict] = probe_file,
               progress: bool = True) -> tuple[list[dict], int]:
  """Probes (path, audio_path) items in worker processes, reusing cached results.

  Args:
    items: (path, audio_path) pairs.
    cache_path: JSON cache file ("" or None: no cache).
    timeout_s: per-file time limit; a worker past it is killed and the file skipped.
    num_workers: worker processes (0: one per core).
    memory_limit_mb: address-space limit of each worker (0: none).
    probe_fn: the probe (a module-level function, so workers can import it).
    progress: show a tqdm progress bar.

  Returns:
    (one result dict per item as from `probe_file`, number of items actually probed).
  """
  cache = load_cache(cache_path) if cache_path else {}
  results: list[Optional[dict]] = [None] * len(items)
  keys = []
  todo = []
  for i, (path, audio_path) in enumerate(items):
    key = file_key(path, audio_path)
    keys.append(key)
    if key is None:
      results[i] = _fail("missing file")
    elif key in cache:
      results[i] = cache[key]
    else:
      todo.append(i)
  if not todo:
    return results, 0
  last_save = [time.monotonic()]

  def save():
    fresh = load_cache(cache_path)  # another process may have added entries meanwhile
    fresh.update(cache)
    fresh.update((keys[i], results[i]) for i in todo
                 if results[i] is not None and not results[i].get("transient"))
    save_cache(cache_path, fresh)
    last_save[0] = time.monotonic()

  def on_result():
    # Long runs keep their progress: an interrupted indexing resumes where it stopped.
    if cache_path and time.monotonic() - last_save[0] > SAVE_EVERY_S:
      save()

  try:
    _run_pool(items, todo, results, timeout_s, num_workers, memory_limit_mb, probe_fn, progress,
              on_result)
    # Timed out beside other probes: once more alone, where it has the cores to itself.
    again = [i for i in todo if results[i]["reason"].startswith(TIMED_OUT)]
    if again and len(again) < len(todo):
      _run_pool(items, again, results, timeout_s, 1, memory_limit_mb, probe_fn, progress,
                on_result)
  finally:
    if cache_path:
      save()
  return results, len(todo)


def _run_pool(items, todo, results, timeout_s, num_workers, memory_limit_mb, probe_fn,
              progress, on_result) -> None:
  ctx = _context()
  n = max(1, min(num_workers or os.cpu_count() or 1, len(todo)))
  pending = list(reversed(todo))
  slots = [_Slot(ctx, probe_fn, timeout_s, memory_limit_mb) for _ in range(n)]
  bar = tqdm.tqdm(total=len(todo), desc="probing media", unit="file", disable=not progress,
                  dynamic_ncols=True)
  # The worker gets the whole limit for the probe itself, plus slack for process start-up.
  limit = timeout_s + 2.0
  try:
    for slot in slots:
      if pending:
        i = pending.pop()
        slot.submit((i, *items[i]))
    while any(s.task is not None for s in slots):
      busy = [s for s in slots if s.task is not None]
      now = time.monotonic()
      wait_s = max(0.0, min(s.started + limit for s in busy) - now)
      ready = multiprocessing.connection.wait([s.conn for s in busy], timeout=wait_s + 0.05)
      for slot in list(busy):
        index = slot.task[0]
        if slot.conn in ready:
          try:
            _, result = slot.conn.recv()
          except (EOFError, OSError):
            code = slot.proc.exitcode
            result = _fail(CRASHED + (f" (exit {code})" if code else ""), transient=True)
            slot.kill()
            slots[slots.index(slot)] = slot = _Slot(ctx, probe_fn, timeout_s, memory_limit_mb)
        elif time.monotonic() - slot.started > limit:
          result = _fail(f"{TIMED_OUT} after {timeout_s:g} s", transient=True)
          slot.kill()
          slots[slots.index(slot)] = slot = _Slot(ctx, probe_fn, timeout_s, memory_limit_mb)
        else:
          continue
        results[index] = result
        slot.task = None
        bar.update(1)
        on_result()
        if pending:
          i = pending.pop()
          slot.submit((i, *items[i]))
  finally:
    bar.close()
    for slot in slots:
      if slot.task is None:
        slot.stop()
      else:
        slot.kill()
