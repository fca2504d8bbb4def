"""Reads a whole media file front to back into network inputs, in bounded memory.

Where decode.py seeks to one time, this decodes every packet once, in demux order (PyAV): audio
is down-mixed, placed by its timestamps and resampled block by block, so a long file never sits
in memory whole; a window of audio every `hop` seconds and the frame shown every `frame_hop`
seconds are turned into network inputs by functions the caller passes in (an export's
`spectrogram` and `preprocess_image`), each frame with the spectrogram of the audio around it.
"""

from __future__ import annotations

import collections
import math
import os
from typing import Callable, Iterator

import av
import numpy as np
from scipy import signal as sp_signal

from data_pipeline import decode
from data_pipeline import media

# Audio samples kept each side of a resampled block, so the filter sees real context.
_RESAMPLE_MARGIN_S = 0.05
_RESAMPLE_BLOCK_S = 0.5
_EPS = 1e-6
# Audio kept for frames that lag behind the audio in the container (badly interleaved files).
_MAX_FRAME_LAG_S = 30.0


class StreamResampler:
  """Resamples a mono stream block by block with scipy's resample_poly (as decode.read_audio).

  Each block is resampled with _RESAMPLE_MARGIN_S of real context each side, so the output
  equals resampling the whole signal; the stream starts after zeros, as outside a file.
  """

  def __init__(self, src_rate: int, dst_rate: int):
    g = math.gcd(int(src_rate), int(dst_rate))
    self.up, self.down = int(dst_rate) // g, int(src_rate) // g
    self.margin = math.ceil(_RESAMPLE_MARGIN_S * src_rate / self.down) * self.down
    self.block = max(1, round(_RESAMPLE_BLOCK_S * src_rate / self.down)) * self.down
    self.buffer = np.zeros(self.margin, np.float32)  # buffer[margin] is the next input sample

  def _resample(self, x):
    if self.up == self.down:
      return x
    return sp_signal.resample_poly(x, self.up, self.down).astype(np.float32)

  def push(self, x: np.ndarray) -> np.ndarray:
    if self.up == self.down:
      return x
    self.buffer = np.concatenate([self.buffer, x])
    out = []
    while len(self.buffer) >= 2 * self.margin + self.block:
      y = self._resample(self.buffer[:2 * self.margin + self.block])
      out.append(y[self.margin * self.up // self.down:
                   (self.margin + self.block) * self.up // self.down])
      self.buffer = self.buffer[self.block:]
    return np.concatenate(out) if out else np.zeros(0, np.float32)

  def flush(self) -> np.ndarray:
    rest = len(self.buffer) - self.margin
    if self.up == self.down or rest <= 0:
      return np.zeros(0, np.float32)
    span = math.ceil(rest / self.down) * self.down
    y = self._resample(np.pad(self.buffer, (0, span - rest + self.margin)))
    lo = self.margin * self.up // self.down
    return y[lo:lo + int(round(rest * self.up / self.down))]


class Samples:
  """The recent part of a mono stream at one rate; sample i (absolute) is at time i / rate."""

  def __init__(self):
    self.data = np.zeros(0, np.float32)
    self.start = 0   # absolute index of data[0]
    self.total = 0   # samples received

  def extend(self, x: np.ndarray) -> None:
    if len(x):
      self.data = np.concatenate([self.data, x])
      self.total += len(x)

  def window(self, first: int, n: int) -> np.ndarray:
    """Samples [first, first + n), zeros outside what was received."""
    out = np.zeros(n, np.float32)
    lo, hi = max(first, self.start), min(first + n, self.total)
    if hi > lo:
      out[lo - first:hi - first] = self.data[lo - self.start:hi - self.start]
    return out

  def drop_before(self, index: int) -> None:
    cut = min(max(0, index - self.start), len(self.data))
    if cut:
      self.data = self.data[cut:]
      self.start += cut


class MediaReader:
  """Streams one file's network inputs: ("audio", t, spec), ("frame", t, image, spec|None)
  and ("image", 0, image, None); `position` is the media time read so far (seconds).

  Audio windows are window_seconds long, centred at window_seconds / 2 + k * hop and inside the
  file (a file shorter than a window gets one, zero-padded); frames are the frame shown at 0,
  frame_hop, 2 frame_hop, ... up to the last frame, each with the window centred on it (None
  when the file has no audio).

  Args:
    path: the media file.
    kind: "audio", "image" or "video" (media.media_kind); an audio file's video is ignored.
    sample_rate: the rate of the waves given to `spectrogram`.
    window_seconds: the length of each audio window.
    hop: seconds between audio windows.
    frame_hop: seconds between video frames.
    spectrogram: float32 wave [round(window_seconds * sample_rate)] -> the net's audio input.
    preprocess_image: uint8 RGB frame [H, W, 3] -> the net's image input.
  """

  def __init__(self, path: str, kind: str, *, sample_rate: int, window_seconds: float,
               hop: float, frame_hop: float, spectrogram: Callable[[np.ndarray], np.ndarray],
               preprocess_image: Callable[[np.ndarray], np.ndarray]):
    self.path, self.kind = path, kind
    self.rate = int(sample_rate)
    self.window_n = int(round(window_seconds * self.rate))
    self.half = window_seconds / 2
    self.hop, self.frame_hop = hop, frame_hop
    self.spectrogram, self.preprocess_image = spectrogram, preprocess_image
    self.has_audio = False
    self._pass = None

  @property
  def position(self) -> float:
    return self._pass.position if self._pass is not None else 0.0

  def items(self) -> Iterator[tuple]:
    if self.kind == "image":
      yield ("image", 0.0, self.preprocess_image(decode.read_image(self.path)), None)
      return
    if not os.path.isfile(self.path) or os.path.getsize(self.path) == 0:
      raise decode.DecodeError("empty file" if os.path.isfile(self.path) else "not a file")
    try:
      container = av.open(self.path)
    except (av.FFmpegError, UnicodeDecodeError, ValueError, OSError) as err:
      raise decode.DecodeError(f"not a media file ({media.failure_reason(err)})") from None
    with container:
      self._pass = _ContainerPass(self, container)
      self.has_audio = self._pass.audio is not None
      yield from self._pass.items()


class _ContainerPass:
  """One pass over an open container: audio into `samples`, frames into `frames` at each frame
  time, and out, in time order, every window and frame whose audio is complete."""

  def __init__(self, reader: MediaReader, container):
    self.reader, self.container = reader, container
    self.audio = container.streams.audio[0] if container.streams.audio else None
    self.video = None
    if reader.kind == "video" and container.streams.video:
      self.video = container.streams.video[0]
      self.video.thread_type = "AUTO"
    if self.audio is None and (reader.kind == "audio" or self.video is None):
      raise decode.DecodeError("no audio stream" if reader.kind == "audio"
                               else "no audio or video")
    self.samples, self.resampler = Samples(), None
    self.src_next, self.src_rate = 0, None  # next source sample index (pts placement) and rate
    self.next_window = 0                    # index k of the next audio window
    self.next_frame = 0                     # index j of the next frame time, j * frame_hop
    self.shown = None                       # (time, frame) of the last video frame decoded
    self.video_time = 0.0                   # time of the last video frame decoded
    self.frames = collections.deque()       # (time, image) waiting for their audio
    self.decoded, self.errors = 0, 0
    self.position = 0.0

  def items(self) -> Iterator[tuple]:
    streams = [s for s in (self.audio, self.video) if s is not None]
    for packet in self.container.demux(*streams):
      try:
        decoded_frames = packet.decode()
      except av.FFmpegError:
        self.errors += 1  # a damaged packet: skip it, as players do
        continue
      for frame in decoded_frames:
        self.decoded += 1
        t = decode.stream_time(packet.stream, frame.pts)
        if packet.stream is self.video:
          self._add_video_frame(frame, t)
        else:
          self._add_audio_frame(frame, t)
      yield from self._emit_ready(final=False)
    if self.errors and not self.decoded:
      raise decode.DecodeError("no decodable audio or video")
    if self.resampler is not None:
      self.samples.extend(self.resampler.flush())
    if self.reader.kind == "audio" and self.samples.total == 0:
      raise decode.DecodeError("no decodable audio")
    if self.shown is not None:
      self._take_frames(self.shown[0] + 2 * _EPS)
    yield from self._emit_ready(final=True)

  def _add_video_frame(self, frame, t) -> None:
    if t is None:
      t = (self.shown[0] + 1 / float(self.video.average_rate or 25)) if self.shown else 0.0
    if self.shown is None:
      self.shown = (t, frame)  # frame times before the first frame show the first frame
    self._take_frames(t + _EPS)
    self.shown, self.video_time = (t, frame), t
    self.position = max(self.position, t)

  def _add_audio_frame(self, frame, t) -> None:
    if self.src_rate is None:
      self.src_rate = int(frame.sample_rate or self.audio.codec_context.sample_rate)
      self.resampler = StreamResampler(self.src_rate, self.reader.rate)
    mono = media.mono_samples(frame)
    # Place samples by their timestamps: leading silence and gaps become zeros, overlaps are
    # dropped; timestamp jitter under 5 ms (e.g. 1 ms time bases) is ignored.
    at = int(round(t * self.src_rate)) if t is not None else self.src_next
    tolerance = self.src_rate // 200 if self.src_next else 0
    if at > self.src_next + tolerance:
      mono = np.concatenate([np.zeros(at - self.src_next, np.float32), mono])
    elif at < self.src_next - tolerance:
      mono = mono[self.src_next - at:]
    self.src_next += len(mono)
    self.samples.extend(self.resampler.push(mono))
    self.position = max(self.position, self.src_next / self.src_rate)

  def _take_frames(self, until: float) -> None:
    """Queues the shown frame for every frame time before `until` (the next frame's time)."""
    hop = self.reader.frame_hop
    while self.shown is not None and self.next_frame * hop < until - _EPS:
      image = self.reader.preprocess_image(self.shown[1].to_ndarray(format="rgb24"))
      self.frames.append((round(self.next_frame * hop, 9), image))
      self.next_frame += 1

  def _emit_ready(self, final: bool) -> Iterator[tuple]:
    """The windows, then the frames, whose audio is complete (all of them when final); then
    drops the audio that no later window or frame needs."""
    yield from self._ready_windows(final)
    yield from self._ready_frames(final)
    self._drop_unneeded_audio()

  def _ready_windows(self, final: bool) -> Iterator[tuple]:
    if self.audio is None:
      return
    r = self.reader
    while True:
      first = int(round(self.next_window * r.hop * r.rate))
      if not (first + r.window_n <= self.samples.total or (final and self.next_window == 0)):
        return
      centre = round(r.half + self.next_window * r.hop, 9)
      yield ("audio", centre, self._spectrogram_at(centre))
      self.next_window += 1

  def _ready_frames(self, final: bool) -> Iterator[tuple]:
    # A frame waits for its audio, unless the audio stopped long before the video.
    r = self.reader
    while self.frames and (
        final or self.audio is None or
        self.samples.total >= int(round((self.frames[0][0] + r.half) * r.rate)) or
        self.frames[0][0] < self.video_time - _MAX_FRAME_LAG_S):
      t, image = self.frames.popleft()
      yield ("frame", t, image, self._spectrogram_at(t) if self.audio is not None else None)

  def _drop_unneeded_audio(self) -> None:
    r = self.reader
    keep = self.next_window * r.hop
    if self.video is not None:
      next_frame = self.frames[0][0] if self.frames else self.next_frame * r.frame_hop
      head = self.samples.total / r.rate
      keep = min(keep, max(next_frame - r.half, head - _MAX_FRAME_LAG_S))
    self.samples.drop_before(int(math.floor(keep * r.rate)) - 1)

  def _spectrogram_at(self, centre: float) -> np.ndarray:
    r = self.reader
    first = int(round((centre - r.half) * r.rate))
    return r.spectrogram(self.samples.window(first, r.window_n))
