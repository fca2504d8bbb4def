"""Writing an mp4 (H.264 video, AAC sound) from RGB frames and a mono wave, with PyAV."""

from __future__ import annotations

import fractions
import os
from typing import Optional, Sequence

import av
import numpy as np


def write_video(path: str, frames: Sequence[np.ndarray], fps: float,
                audio: Optional[np.ndarray] = None, sample_rate: int = 16000) -> str:
  """Encodes uint8 RGB frames [H, W, 3] (H and W even) at fps, with the audio under them.

  Written to a temporary name and renamed, so an interrupted run leaves no broken file.
  """
  if not len(frames):
    raise ValueError("no frames to write")
  h, w = frames[0].shape[:2]
  if h % 2 or w % 2:
    raise ValueError(f"H.264 needs even frame sides, got {w}x{h}")
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  tmp = path + ".tmp.mp4"
  rate = fractions.Fraction(fps).limit_denominator(1001)
  with av.open(tmp, "w") as container:
    video = container.add_stream("libx264", rate=rate)
    video.width, video.height, video.pix_fmt = w, h, "yuv420p"
    video.options = {"crf": "23", "preset": "veryfast"}
    sound = None
    if audio is not None and len(audio):
      sound = container.add_stream("aac", rate=sample_rate)
      sound.layout = "mono"
    for frame in frames:
      picture = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame, np.uint8), format="rgb24")
      container.mux(video.encode(picture))
    container.mux(video.encode())
    if sound is not None:
      wave = np.clip(np.asarray(audio, np.float32), -1, 1)[None]
      chunk = sample_rate // 10
      for start in range(0, wave.shape[1], chunk):
        piece = av.AudioFrame.from_ndarray(np.ascontiguousarray(wave[:, start:start + chunk]),
                                           format="fltp", layout="mono")
        piece.sample_rate = sample_rate
        piece.pts = start
        container.mux(sound.encode(piece))
      container.mux(sound.encode())
  os.replace(tmp, path)
  return path
