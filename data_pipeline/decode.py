"""Reads one frame at a time t and a window of audio around t from media files, by seeking.

Videos (mp4, webm, mkv, avi, mov, ... with H.264, VP9, AAC, Opus, MP3, PCM, ...) are read with
PyAV; still images (jpg, png, ...) with OpenCV; audio files (wav, flac, ogg, mp3, m4a) also
with PyAV. Times are seconds on the file's own timeline (the stream timestamps). Nothing
decodes a whole file: frames and audio are found by seeking to the nearest key frame before t.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import os
import stat
import time

import av
import cv2
import numpy as np
from scipy import signal as sp_signal

from data_pipeline import media

# Seek this far before the wanted time so that decoders settle (AAC priming, MP3 reservoir).
_AUDIO_PREROLL_S = 0.25
# Samples kept each side of an audio window so resampling filters see real context.
_RESAMPLE_MARGIN_S = 0.05
# Samples inside an audio stream that may go undecoded (rounding at packet edges).
_MAX_MISSING_S = 0.03
# Frames are never wider/taller than this (a guard against absurd or corrupt headers).
_MAX_SIDE = 8192


class DecodeError(Exception):
  """A media file could not be read; the message says why."""


class DecodeTimeout(DecodeError):
  """Reading ran past its time limit: a verdict on the machine's load as much as on the file."""


def is_image(path: str) -> bool:
  return path.lower().endswith(media.IMAGE_EXTENSIONS)


def _check_file(path: str) -> None:
  """Fails fast on paths that would make the demuxer block or guess (FIFOs, empty files)."""
  try:
    st = os.stat(path)
  except OSError as e:
    raise DecodeError(f"cannot open: {e.strerror or e}") from None
  if not stat.S_ISREG(st.st_mode):
    raise DecodeError("not a regular file")
  if st.st_size == 0:
    raise DecodeError("empty file")
  if not os.access(path, os.R_OK):
    raise DecodeError("cannot open: permission denied")


def _past(deadline: float) -> bool:
  """Whether FFmpeg's interrupt callback may have fired: an interrupted read does not always
  surface as ExitError (an interrupted stream probe reads as "Invalid data found"), so any
  error after the deadline counts as a timeout, never as a verdict on the file."""
  return time.monotonic() >= deadline


def _open(path: str, timeout_s: float):
  _check_file(path)
  deadline = time.monotonic() + timeout_s
  try:
    return av.open(path, timeout=timeout_s)
  except av.ExitError:  # FFmpeg's interrupt callback fired: the open ran past timeout_s
    raise DecodeTimeout(f"opening timed out after {timeout_s:g} s") from None
  except (av.FFmpegError, UnicodeDecodeError, ValueError, OSError) as e:
    if _past(deadline):
      raise DecodeTimeout(f"opening timed out after {timeout_s:g} s") from None
    raise DecodeError(f"not a media file ({media.failure_reason(e)})") from None


@contextlib.contextmanager
def open_video(path: str, timeout_s: float):
  """(container, first video stream) of a media file, with the same checks as read_frame."""
  with _open(path, timeout_s) as container:
    if not container.streams.video:
      raise DecodeError("no video stream")
    stream = container.streams.video[0]
    if max(stream.codec_context.width, stream.codec_context.height) > _MAX_SIDE:
      raise DecodeError(f"frame size {stream.codec_context.width}x{stream.codec_context.height}"
                        " too large")
    yield container, stream


def stream_time(stream, pts) -> float | None:
  """A packet or frame timestamp in seconds (None when unknown)."""
  return None if pts is None else float(pts * stream.time_base)


def read_image(path: str) -> np.ndarray:
  """An image file as HxWx3 uint8 RGB."""
  _check_file(path)
  image = cv2.imread(path, cv2.IMREAD_COLOR)
  if image is None:
    raise DecodeError("not a readable image")
  return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def read_frame(path: str, t: float, *, timeout_s: float = 20.0) -> np.ndarray:
  """The video frame shown at time t: the last frame with timestamp <= t, HxWx3 uint8 RGB.

  Times before the first frame give the first frame, times after the last give the last.
  Image files return the image whatever t is.

  Raises:
    DecodeError: the file has no decodable video stream, or decoding ran past timeout_s.
  """
  return read_frame_with_time(path, t, timeout_s=timeout_s)[0]


def read_frame_with_time(path: str, t: float, *, timeout_s: float = 20.0,
                         strict: bool = True) -> tuple[np.ndarray, float]:
  """Like `read_frame`, also giving the returned frame's timestamp (0 for images).

  strict=False returns the last frame that decodes even when it is far older than t (the
  probe uses it to say where a cut-off file ends).
  """
  if is_image(path):
    return read_image(path), 0.0
  deadline = time.monotonic() + timeout_s
  with open_video(path, timeout_s) as (container, stream):
    frame = _frame_at(container, stream, t, deadline, seek=True)
    if frame is None:
      # Some containers (e.g. unindexed avi/webm) seek past t: decode from the start instead.
      container.seek(0)
      frame = _frame_at(container, stream, t, deadline, seek=False)
    if frame is None:
      raise DecodeError("no decodable video frame")
    frame_t = stream_time(stream, frame.pts) or 0.0
    # The frame shown at t is at most a few frame intervals older (than t, or than the
    # stream's end for a t past it); an older one means the frames between are missing.
    end = _stream_end(container, stream)
    tolerance = max(0.5, 3.0 / float(stream.average_rate or 8))
    if strict and end is not None and frame_t < min(t, end) - tolerance:
      raise DecodeError(f"no video frame at {t:.2f} s: decoding stops at {frame_t:.2f} s of "
                        f"{end:.2f} s (damaged file?)")
    return frame.to_ndarray(format="rgb24"), frame_t


def iter_frames(path: str, start: float, end: float, *, timeout_s: float = 20.0):
  """Yields (timestamp, HxWx3 uint8 RGB) for the video frames shown during [start, end): the
  frame shown at start (the last one at or before it, else the first), then every later frame
  with a timestamp before end, in order; that is, the frames `read_frame` gives for times in
  [start, end). Decodes sequentially after one seek, so a whole clip costs one pass.

  Raises:
    DecodeError: no video stream or no decodable frame, or decoding ran past timeout_s.
  """
  deadline = time.monotonic() + timeout_s
  with open_video(path, timeout_s) as (container, stream):
    previous, yielded = None, False
    try:
      for ft, frame in _frames_from(container, stream, start, deadline):
        if ft <= start + 1e-6:
          previous = (ft, frame)  # a later one may still be the frame shown at start
          continue
        if previous is not None:
          yield previous[0], previous[1].to_ndarray(format="rgb24")
          previous, yielded = None, True
        if ft >= end and yielded:
          break
        yield ft, frame.to_ndarray(format="rgb24")
        yielded = True
    except av.ExitError:
      raise DecodeTimeout("video decoding timed out") from None
    except av.FFmpegError as e:
      if _past(deadline):
        raise DecodeTimeout("video decoding timed out") from None
      raise DecodeError(f"video decoding failed ({media.failure_reason(e)})") from None
    if previous is not None:
      yield previous[0], previous[1].to_ndarray(format="rgb24")
      yielded = True
    if not yielded:
      raise DecodeError("no decodable video frame")


def _frames_from(container, stream, start, deadline):
  """(timestamp, frame) decoded from the key frame at or before start; from the beginning when
  the seek lands after start (unindexed containers)."""
  frames = container.decode(stream)
  if start > 0:
    try:
      container.seek(max(0, int(start / stream.time_base)), stream=stream, backward=True,
                     any_frame=False)
    except av.FFmpegError:
      container.seek(0)
    frames = container.decode(stream)
    first = next(frames, None)
    if first is None:
      return
    t = stream_time(stream, first.pts)
    if t is not None and t > start + 1e-6:  # landed after start
      container.seek(0)
      frames = container.decode(stream)
    else:
      frames = itertools.chain([first], frames)
  last = 0.0
  for frame in frames:
    if _past(deadline):
      raise DecodeTimeout("video decoding timed out")
    t = stream_time(stream, frame.pts)
    last = t if t is not None else last + 1e-3
    yield last, frame


def _stream_end(container, stream) -> float | None:
  """Seconds at which a stream ends by its headers (None when they do not say)."""
  if stream.duration:
    return float((stream.start_time or 0) * stream.time_base + stream.duration * stream.time_base)
  if container.duration:
    return container.duration / av.time_base
  return None


def _frame_at(container, stream, t, deadline, seek):
  """Decodes forward to the frame at t; None when the seek landed after t or nothing decoded."""
  if seek and t > 0:
    try:
      container.seek(max(0, int(t / stream.time_base)), stream=stream, backward=True,
                     any_frame=False)
    except av.FFmpegError:
      container.seek(0)
  previous = None
  first = True
  try:
    for frame in container.decode(stream):
      if _past(deadline):
        raise DecodeTimeout("video decoding timed out")
      ft = stream_time(stream, frame.pts)
      if ft is not None and ft > t + 1e-6:
        if previous is not None:
          return previous
        if first and seek and t > 0:
          return None  # landed after t
        return frame  # t before the first frame
      previous, first = frame, False
  except av.ExitError:
    raise DecodeTimeout("video decoding timed out") from None
  except av.FFmpegError as e:
    if _past(deadline):
      raise DecodeTimeout("video decoding timed out") from None
    # Frames before t decoded, then an error: what t shows is unknown, not the last good
    # frame, unless t lies past the stream's end (read_frame_with_time checks).
    if previous is None or _stream_end(container, stream) is None:
      raise DecodeError(f"video decoding failed ({media.failure_reason(e)})") from None
  return previous


def read_audio(path: str, center_t: float, duration: float, sample_rate: int, *,
               timeout_s: float = 20.0) -> np.ndarray:
  """`duration` seconds of mono audio centred on center_t, resampled to sample_rate.

  Returns float32 [round(duration * sample_rate)]; channels are averaged; samples outside the
  file are zeros.

  Raises:
    DecodeError: the file has no decodable audio stream, or decoding ran past timeout_s.
  """
  n_out = int(round(duration * sample_rate))
  margin = resample_margin(sample_rate)
  # Output sample m sits at time start + m / sample_rate; margin samples kept each side.
  start = center_t - duration / 2 - margin / sample_rate
  stop = start + (n_out + 2 * margin) / sample_rate
  deadline = time.monotonic() + timeout_s
  with _open(path, timeout_s) as container:
    if not container.streams.audio:
      raise DecodeError("no audio stream")
    stream = container.streams.audio[0]
    src_rate = stream.codec_context.sample_rate or stream.rate
    if not src_rate:
      raise DecodeError("audio stream has no sample rate")
    n_src = int(math.ceil((stop - start) * src_rate)) + 1
    buffer = np.zeros(n_src, np.float32)
    _fill(container, stream, buffer, start, stop, src_rate, deadline)
  return resampled_window(buffer, int(src_rate), sample_rate, margin, n_out)


def resample_margin(sample_rate: int) -> int:
  """Output samples decoded beyond each end of a window, as context for the resampler."""
  return int(math.ceil(_RESAMPLE_MARGIN_S * sample_rate))


def resampled_window(buffer: np.ndarray, src_rate: int, sample_rate: int, margin: int,
                     n_out: int) -> np.ndarray:
  """float32 [n_out]: buffer (at src_rate, covering the window and `margin` output samples
  each side) resampled to sample_rate, its margins cut off, zero-padded at the end."""
  out = buffer
  if src_rate != sample_rate:
    g = math.gcd(int(src_rate), int(sample_rate))
    out = sp_signal.resample_poly(buffer, sample_rate // g, int(src_rate) // g).astype(np.float32)
  out = out[margin:margin + n_out]
  if out.shape[0] < n_out:
    out = np.pad(out, (0, n_out - out.shape[0]))
  return np.ascontiguousarray(out, dtype=np.float32)


def _fill(container, stream, buffer, start, stop, src_rate, deadline) -> None:
  """Decodes the audio covering [start, stop) into buffer (sample k at start + k / src_rate)."""
  if start - _AUDIO_PREROLL_S > 0:
    try:
      container.seek(int((start - _AUDIO_PREROLL_S) / stream.time_base), stream=stream,
                     backward=True)
    except av.FFmpegError:
      container.seek(0)
  decoded_any = False
  next_time = None
  filled = np.zeros(buffer.shape[0], bool)
  failure = None
  try:
    for frame in container.decode(stream):
      if _past(deadline):
        raise DecodeTimeout("audio decoding timed out")
      ft = stream_time(stream, frame.pts)
      if ft is None:
        ft = next_time if next_time is not None else 0.0
      next_time = ft + frame.samples / src_rate
      decoded_any = True
      if next_time <= start:
        continue
      if ft >= stop:
        break
      mono = media.mono_samples(frame)
      offset = int(round((ft - start) * src_rate))
      lo, hi = max(0, offset), min(buffer.shape[0], offset + mono.shape[0])
      if hi > lo:
        buffer[lo:hi] = mono[lo - offset:hi - offset]
        filled[lo:hi] = True
  except av.ExitError:
    raise DecodeTimeout("audio decoding timed out") from None
  except av.FFmpegError as e:
    if _past(deadline):
      raise DecodeTimeout("audio decoding timed out") from None
    if not decoded_any:
      raise DecodeError(f"audio decoding failed ({media.failure_reason(e)})") from None
    failure = media.failure_reason(e)  # judged below by what is missing
  if not decoded_any and start < 0 < stop:
    raise DecodeError("no decodable audio")
  # Inside the stream, every sample must have been decoded: zeros there would be silence the
  # file does not hold (lost packets of a damaged file), not the padding outside it.
  begin = float((stream.start_time or 0) * stream.time_base)
  end = _stream_end(container, stream)
  if decoded_any and end is not None:
    k = np.arange(buffer.shape[0])
    times = start + k / src_rate
    missing = int(np.sum(~filled & (times >= max(0.0, begin)) & (times < end)))
    if missing > _MAX_MISSING_S * src_rate:
      cause = f" ({failure})" if failure else ""
      raise DecodeError(f"audio missing: {missing / src_rate:.2f} s of the window at "
                        f"{start:.2f}-{stop:.2f} s could not be decoded{cause}")


def media_info(path: str, *, timeout_s: float = 20.0) -> dict:
  """Stream facts from the headers (no decoding): duration, fps, size, audio rate/channels."""
  with _open(path, timeout_s) as container:
    info = dict(duration=None, fps=None, width=0, height=0, audio_rate=0, audio_channels=0,
                has_video=bool(container.streams.video), has_audio=bool(container.streams.audio))
    durations = []
    if container.streams.video:
      v = container.streams.video[0]
      rate = v.average_rate or v.guessed_rate or v.base_rate
      info["fps"] = float(rate) if rate else None
      info["width"], info["height"] = v.codec_context.width, v.codec_context.height
      if v.duration:
        durations.append(float(v.duration * v.time_base))
    if container.streams.audio:
      a = container.streams.audio[0]
      info["audio_rate"] = int(a.codec_context.sample_rate or a.rate or 0)
      info["audio_channels"] = int(a.codec_context.channels or 0)
      if a.duration:
        durations.append(float(a.duration * a.time_base))
    if durations:
      info["duration"] = min(durations)
    elif container.duration:
      info["duration"] = container.duration / av.time_base
    return info
