"""Short clips decoded once per process and kept in memory: for small datasets (the embedded one)
where the same few hundred clips are read again and again.

Seeking and decoding a frame and an audio window costs about 10 ms per example, more than the
network's step on a small model. With `data.decode_cache_mb > 0`, the first read of a clip of
at most `data.decode_cache_max_seconds` decodes all of it: every frame, already resized to the
resize_size square the pipeline crops from, and its whole soundtrack at the sample rate. Later
reads slice memory. The cache is per process (each Grain worker has its own), bounded in MB and
least-recently-used; an evicted clip is decoded the same way again, so results never depend on
what was cached. Longer clips and image files are read the usual way, by seeking.
"""

from __future__ import annotations

import collections
import time
from typing import Optional

import numpy as np

from data_pipeline import decode, features

# Audio decoded beyond each end of a clip, so windows centred near the ends see the same
# zero padding as seeking reads do.
_AUDIO_PAD_S = 1.0


class ClipCache:
  """LRU cache of decoded clips: frames [N, R, R, 3] uint8 with times, and mono audio."""

  def __init__(self, max_mb: float, max_seconds: float, resize_size: int, sample_rate: int,
               timeout_s: float = 20.0):
    self.max_bytes = int(max_mb * 2**20)
    self.max_seconds = max_seconds
    self.resize_size = resize_size
    self.sample_rate = sample_rate
    self.timeout_s = timeout_s
    self._frames: collections.OrderedDict = collections.OrderedDict()
    self._audio: collections.OrderedDict = collections.OrderedDict()
    self._bytes = 0

  def covers(self, path: str, duration: float) -> bool:
    """Whether reads of this clip go through the cache."""
    return 0 < duration <= self.max_seconds and not decode.is_image(path)

  def frame(self, path: str, t: float) -> np.ndarray:
    """The resized frame shown at t (the last frame with time <= t; the first before it)."""
    frames, times = self._get(self._frames, path, self._decode_frames)
    i = max(0, int(np.searchsorted(times, t + 1e-6, side="right")) - 1)
    if times[i] < min(t, times[-1]) - 0.5:  # frames missing here: as decode.read_frame
      raise decode.DecodeError(f"no video frame at {t:.2f} s: the frames jump from "
                               f"{times[i]:.2f} s to {times[min(i + 1, len(times) - 1)]:.2f} s")
    return frames[i]

  def audio(self, path: str, clip_duration: float, center_t: float,
            duration: float) -> np.ndarray:
    """`duration` seconds of mono audio centred on center_t (zeros outside the file)."""
    wave, = self._get(self._audio, path, lambda p: self._decode_audio(p, clip_duration))
    n = int(round(duration * self.sample_rate))
    start = int(round((center_t - duration / 2 + _AUDIO_PAD_S) * self.sample_rate))
    out = np.zeros(n, np.float32)
    lo, hi = max(start, 0), min(start + n, len(wave))
    if hi > lo:
      out[lo - start:hi - start] = wave[lo:hi]
    return out

  def _get(self, table, path, make):
    if path in table:
      table.move_to_end(path)
      return table[path]
    value = make(path)
    table[path] = value
    self._bytes += sum(v.nbytes for v in value)
    self._evict()
    return value

  def _evict(self) -> None:
    while self._bytes > self.max_bytes and (len(self._frames) + len(self._audio)) > 1:
      # Drop the least recently used entry of the larger table.
      table = self._frames if len(self._frames) >= len(self._audio) else self._audio
      if not table:
        table = self._audio if table is self._frames else self._frames
      _, value = table.popitem(last=False)
      self._bytes -= sum(v.nbytes for v in value)

  def _decode_frames(self, path: str):
    deadline = time.monotonic() + self.timeout_s
    frames, times = [], []
    with decode.open_video(path, self.timeout_s) as (container, stream):
      for frame in container.decode(stream):
        if time.monotonic() > deadline:
          raise decode.DecodeTimeout("video decoding timed out")
        t = decode.stream_time(stream, frame.pts)
        times.append(t if t is not None else (times[-1] + 1e-3 if times else 0.0))
        frames.append(features.resize(frame.to_ndarray(format="rgb24"), self.resize_size))
    if not frames:
      raise decode.DecodeError("no decodable video frame")
    return np.stack(frames), np.asarray(times, np.float64)

  def _decode_audio(self, path: str, duration: float):
    # One read_audio call over the whole clip: sample k is at time k / rate - _AUDIO_PAD_S.
    wave = decode.read_audio(path, duration / 2, duration + 2 * _AUDIO_PAD_S, self.sample_rate,
                             timeout_s=self.timeout_s)
    return (wave,)


_CACHES: dict = {}


def for_config(data_cfg) -> Optional[ClipCache]:
  """This process's cache for a data config, or None when data.decode_cache_mb is 0."""
  if data_cfg.get("decode_cache_mb", 0) <= 0:
    return None
  key = (data_cfg.decode_cache_mb, data_cfg.decode_cache_max_seconds, data_cfg.resize_size,
         data_cfg.sample_rate)
  if key not in _CACHES:
    _CACHES[key] = ClipCache(data_cfg.decode_cache_mb, data_cfg.decode_cache_max_seconds,
                             data_cfg.resize_size, data_cfg.sample_rate,
                             data_cfg.per_file_timeout_s)
  return _CACHES[key]
