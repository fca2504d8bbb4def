"""Writes small real media files for tests, with content that says where it was read.

Video frames carry their own index as 8 black/white bars across the top half (bit 7 on the
left), above a square that moves with the frame index, so `frame_index_of(image)` tells which
frame a decoder returned. The audio track is a sine whose amplitude rises linearly over the
file, `amplitude_at(t, seconds)`, so the RMS of a decoded window tells where the window was
centred. Every channel carries the same signal, so any down-mix keeps the amplitude.
"""

from __future__ import annotations

import fractions
import json
import os
import wave
from typing import Optional

import av
import cv2
import numpy as np

_CONTAINERS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska",
               ".webm": "webm", ".avi": "avi", ".m4a": "mp4", ".ogg": "ogg",
               ".mp3": "mp3", ".wav": "wav"}
_LAYOUTS = {1: "mono", 2: "stereo", 6: "5.1"}
_AMP_LOW, _AMP_HIGH = 0.05, 0.85


def amplitude_at(t: float, seconds: float) -> float:
  """The peak amplitude of the factory tone at time t of a file `seconds` long."""
  t = min(max(t, 0.0), seconds)
  return _AMP_LOW + (_AMP_HIGH - _AMP_LOW) * t / seconds


def pattern_frame(index: int, size: tuple[int, int]) -> np.ndarray:
  """The RGB frame the factory writes for frame `index`; size is (width, height)."""
  width, height = size
  image = np.full((height, width, 3), 96, np.uint8)
  half = height // 2
  for bit in range(8):
    x0, x1 = bit * width // 8, (bit + 1) * width // 8
    image[:half, x0:x1] = 255 if (index >> (7 - bit)) & 1 else 0
  side = max(2, height // 4)
  x = (index * max(1, width // 16)) % max(1, width - side)
  image[half + (height - half - side) // 2:][:side, x:x + side] = (255, 64, 0)
  return image


def frame_index_of(image: np.ndarray) -> int:
  """Reads back the frame index drawn by `pattern_frame` (robust to lossy coding)."""
  height, width = image.shape[:2]
  band = image[height // 8:height * 3 // 8].astype(np.float32).mean(axis=(0, 2))
  index = 0
  for bit in range(8):
    x0, x1 = bit * width // 8, (bit + 1) * width // 8
    pad = (x1 - x0) // 4
    index = index * 2 + int(band[x0 + pad:x1 - pad].mean() > 128)
  return index


def tone(seconds: float, sample_rate: int, tone_hz: float = 440.0,
         silent: bool = False) -> np.ndarray:
  """The factory's mono test signal, float32 [n]."""
  t = np.arange(int(round(seconds * sample_rate))) / sample_rate
  if silent:
    return np.zeros_like(t, dtype=np.float32)
  amp = _AMP_LOW + (_AMP_HIGH - _AMP_LOW) * t / seconds
  return (amp * np.sin(2 * np.pi * tone_hz * t)).astype(np.float32)


def _to_frame_array(signal: np.ndarray, fmt: av.AudioFormat) -> np.ndarray:
  """[channels, n] float -> the array layout `AudioFrame.from_ndarray` wants for fmt."""
  name = fmt.name.rstrip("p")
  if name == "s16":
    data = np.clip(signal * 32767, -32768, 32767).astype(np.int16)
  elif name == "s32":
    data = np.clip(signal * 2147483647.0, -2147483648, 2147483647).astype(np.int32)
  elif name == "dbl":
    data = signal.astype(np.float64)
  else:
    data = signal.astype(np.float32)
  if fmt.is_planar:
    return np.ascontiguousarray(data)
  return np.ascontiguousarray(data.T.reshape(1, -1))


def write_wav(path: str, *, seconds: float = 3.0, sample_rate: int = 16000, channels: int = 1,
              tone_hz: float = 440.0, silent: bool = False) -> str:
  """Writes the factory tone as 16-bit PCM wav (the Flickr-SoundNet audio layout)."""
  signal = tone(seconds, sample_rate, tone_hz, silent)
  data = np.clip(signal * 32767, -32768, 32767).astype(np.int16)
  data = np.repeat(data[:, None], channels, axis=1)
  with wave.open(path, "wb") as f:
    f.setnchannels(channels)
    f.setsampwidth(2)
    f.setframerate(sample_rate)
    f.writeframes(data.tobytes())
  return path


def write_image(path: str, *, index: int = 5, size: tuple[int, int] = (64, 64)) -> str:
  """Writes one pattern frame as an image file (jpg/png by extension)."""
  image = cv2.cvtColor(pattern_frame(index, size), cv2.COLOR_RGB2BGR)
  if not cv2.imwrite(path, image, [cv2.IMWRITE_JPEG_QUALITY, 95]):
    raise OSError(f"cannot write {path}")
  return path


def write_video(path: str, *, seconds: float = 3.0, fps: float = 8,
                size: tuple[int, int] = (64, 64), sample_rate: int = 16000, channels: int = 1,
                video: bool = True, audio: bool = True, vcodec: str = "h264",
                acodec: str = "aac", tone_hz: float = 440.0, silent: bool = False,
                container: Optional[str] = None) -> str:
  """Writes a real media file with PyAV and returns its path.

  Args:
    path: output file; its extension picks the container unless `container` is given.
    seconds: length of both streams.
    fps: video frame rate (non-integer rates such as 29.97 are kept as a fraction).
    size: (width, height) of the frames.
    sample_rate: audio sample rate.
    channels: audio channel count (1, 2 or 6 = 5.1).
    video: whether to write a video stream.
    audio: whether to write an audio stream.
    vcodec: "h264", "vp9", "mpeg4", "mjpeg", ...
    acodec: "aac", "opus", "mp3", "pcm_s16le", "flac", ...
    tone_hz: frequency of the tone.
    silent: write an all-zero audio track.
    container: FFmpeg format name, e.g. "mp4", "matroska", "webm", "avi", "mov".
  """
  fmt = container or _CONTAINERS.get(os.path.splitext(path)[1].lower(), None)
  aliases = {"h264": "libx264", "vp9": "libvpx-vp9", "opus": "libopus", "mp3": "libmp3lame"}
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  out = av.open(path, mode="w", format=fmt)
  try:
    vstream = astream = None
    if video:
      rate = fractions.Fraction(fps).limit_denominator(1001)
      vstream = out.add_stream(aliases.get(vcodec, vcodec), rate=rate)
      vstream.width, vstream.height = size
      vstream.pix_fmt = "yuvj420p" if vcodec == "mjpeg" else "yuv420p"
      if vcodec in ("h264", "libx264"):
        vstream.options = {"preset": "ultrafast", "crf": "18"}
    if audio:
      astream = out.add_stream(aliases.get(acodec, acodec), rate=sample_rate)
      astream.layout = _LAYOUTS.get(channels, f"{channels}c")
    if vstream is not None:
      count = int(round(seconds * float(rate)))
      for i in range(count):
        frame = av.VideoFrame.from_ndarray(pattern_frame(i, size), format="rgb24")
        frame.pts = i
        frame.time_base = 1 / rate
        for packet in vstream.encode(frame):
          out.mux(packet)
      for packet in vstream.encode():
        out.mux(packet)
    if astream is not None:
      _write_audio(out, astream, tone(seconds, sample_rate, tone_hz, silent), channels)
  finally:
    out.close()
  return path


def _write_audio(out, astream, signal: np.ndarray, channels: int) -> None:
  ctx = astream.codec_context
  step = ctx.frame_size or 1024
  layout = astream.layout.name
  multi = np.repeat(signal[None], channels, axis=0)
  for pos in range(0, multi.shape[1], step):
    chunk = multi[:, pos:pos + step]
    if chunk.shape[1] < step and ctx.frame_size:
      chunk = np.pad(chunk, ((0, 0), (0, step - chunk.shape[1])))
    frame = av.AudioFrame.from_ndarray(_to_frame_array(chunk, ctx.format),
                                       format=ctx.format.name, layout=layout)
    frame.sample_rate = ctx.sample_rate
    frame.pts = pos
    frame.time_base = fractions.Fraction(1, ctx.sample_rate)
    for packet in astream.encode(frame):
      out.mux(packet)
  for packet in astream.encode():
    out.mux(packet)


# Small datasets in each metadata format (metadata files + factory clips), for reader tests.


def _clip(path: str, **kwargs) -> str:
  os.makedirs(os.path.dirname(path), exist_ok=True)
  kwargs.setdefault("seconds", 2.0)
  return write_video(path, **kwargs)


def make_folder_dataset(root: str) -> str:
  """root/dog/*.mp4, root/cat/*.webm and one unlabelled clip at the top."""
  for i in range(3):
    _clip(f"{root}/dog/d{i}.mp4")
  _clip(f"{root}/cat/c0.webm", vcodec="vp9", acodec="opus", sample_rate=48000)
  _clip(f"{root}/top.mkv")
  with open(f"{root}/README.txt", "w") as f:
    f.write("not media\n")
  return root


def make_vggsound_dataset(root: str) -> str:
  """vggsound.csv (no header) with a trimmed clip, a full video and a missing one."""
  os.makedirs(root, exist_ok=True)
  with open(f"{root}/vggsound.csv", "w") as f:
    f.write('abc,30,dog barking,train\n'
            'def,1,"cat purring, loud",test\n'
            'zzz,10,lion roaring,train\n')
  _clip(f"{root}/video/abc_000030.mp4")
  _clip(f"{root}/video/def.mp4", seconds=3.0)
  return root


def make_audioset_dataset(root: str) -> str:
  """Segment CSVs (train + eval), class_labels_indices.csv and ontology.json."""
  os.makedirs(root, exist_ok=True)
  header = ("# Segments csv created Sun Mar  5 10:54:31 2017\n"
            "# num_ytids=2, num_segs=2, num_unique_labels=2, num_positive_labels=3\n"
            "# YTID, start_seconds, end_seconds, positive_labels\n")
  with open(f"{root}/balanced_train_segments.csv", "w") as f:
    f.write(header + '--aaa, 30.000, 40.000, "/m/09x0r,/m/05zppz"\n'
            '--bbb, 0.000, 10.000, "/m/05zppz"\n')
  with open(f"{root}/eval_segments.csv", "w") as f:
    f.write(header + '--ccc, 10.000, 20.000, "/m/09x0r"\n')
  with open(f"{root}/class_labels_indices.csv", "w") as f:
    f.write('index,mid,display_name\n0,/m/09x0r,"Speech"\n'
            '1,/m/05zppz,"Male speech, man speaking"\n')
  with open(f"{root}/ontology.json", "w") as f:
    json.dump([{"id": "/m/09x0r", "name": "Speech", "child_ids": ["/m/05zppz"]},
               {"id": "/m/05zppz", "name": "Male speech, man speaking", "child_ids": []}], f)
  _clip(f"{root}/clips/--aaa_000030.mp4")
  _clip(f"{root}/clips/--ccc_000010.mp4")
  return root


def make_kinetics_dataset(root: str) -> str:
  """train.csv and validate.csv with header; clips named <id>_<start:06d>_<end:06d>.mp4."""
  os.makedirs(root, exist_ok=True)
  with open(f"{root}/train.csv", "w") as f:
    f.write("label,youtube_id,time_start,time_end,split,is_cc\n"
            "playing violin,kkk,10,20,train,0\n"
            "\"tying tie\",lll,0,10,train,1\n")
  with open(f"{root}/validate.csv", "w") as f:
    f.write("label,youtube_id,time_start,time_end,split\nplaying violin,mmm,5,15,val\n")
  _clip(f"{root}/train/playing violin/kkk_000010_000020.mp4")
  _clip(f"{root}/val/playing violin/mmm_000005_000015.mp4")
  return root


FLICKR_BOXES = [(32, 64, 128, 192), (40, 60, 136, 200), (30, 70, 120, 190)]  # 1001's annotators


def _write_flickr_annotation(path: str, clip_id: str, boxes) -> None:
  """An annotation file with one <bndbox> per annotator (256 x 256 scale)."""
  with open(path, "w") as f:
    f.write(f"<annotation><filename>{clip_id}.jpg</filename>")
    for x0, y0, x1, y1 in boxes:
      f.write(f"<object><name>1</name><bndbox><xmin>{x0}</xmin><ymin>{y0}</ymin>"
              f"<xmax>{x1}</xmax><ymax>{y1}</ymax></bndbox></object>")
    f.write("</annotation>\n")


def make_flickr_dataset(root: str, extra_test: int = 0) -> str:
  """frames/<id>.jpg + audio/<id>.wav + Annotations/<id>.xml and a test id list.

  Test image 1001 has three annotators' boxes (FLICKR_BOXES); 1002 is train, 1003 has no audio.
  extra_test adds test images 2000, 2001, ... with two annotators' overlapping boxes each.
  """
  for d in ("frames", "audio", "Annotations"):
    os.makedirs(f"{root}/{d}", exist_ok=True)
  extra = [str(2000 + i) for i in range(extra_test)]
  for clip_id in ["1001", "1002", "1003"] + extra:
    write_image(f"{root}/frames/{clip_id}.jpg", index=int(clip_id) % 256)
  for clip_id in ["1001", "1002"] + extra:
    write_wav(f"{root}/audio/{clip_id}.wav", seconds=2.0)
  _write_flickr_annotation(f"{root}/Annotations/1001.xml", "1001", FLICKR_BOXES)
  for i, clip_id in enumerate(extra):
    shift = 16 * (i % 8)
    _write_flickr_annotation(f"{root}/Annotations/{clip_id}.xml", clip_id,
                             [(shift, 32, shift + 128, 160), (shift + 64, 64, shift + 128, 224)])
  with open(f"{root}/flickr_test.csv", "w") as f:
    f.write("".join(f"{clip_id}\n" for clip_id in ["1001"] + extra))
  with open(f"{root}/train_ids.txt", "w") as f:
    f.write("1002\n1003\n")
  return root


def make_vggss_dataset(root: str) -> str:
  """vggss.json with a video entry, a frame+wav entry and a missing one."""
  os.makedirs(f"{root}/frames", exist_ok=True)
  os.makedirs(f"{root}/audio", exist_ok=True)
  _clip(f"{root}/video/vid_000030.mp4")
  write_image(f"{root}/frames/img_000010.jpg")
  write_wav(f"{root}/audio/img_000010.wav", seconds=2.0)
  with open(f"{root}/vggss.json", "w") as f:
    json.dump([{"file": "vid_000030", "class": "dog barking",
                "bbox": [[0.1, 0.2, 0.5, 0.6], [0.6, 0.1, 0.9, 0.4]]},
               {"file": "img_000010", "class": "playing violin", "bbox": [[0.0, 0.0, 1.2, 0.5]]},
               {"file": "gone_000000", "class": "cat", "bbox": []}], f)
  return root


def make_embedded_dataset(root: str, n: int = 4) -> str:
  """DIR/labels.jsonl with per-frame target and distractor boxes (2 s clips at 8 fps)."""
  rows = []
  for i in range(n):
    split = ("train", "train", "val", "test")[i % 4]
    rel = f"{split}/{'dog' if i % 2 else 'violin'}_{i:03d}.mp4"
    _clip(f"{root}/{rel}", size=(64, 64))
    frames = 16
    rows.append(dict(
        file=rel, split=split, label="dog" if i % 2 else "violin", fps=8, duration=2.0,
        target_boxes=[[0.1, 0.1 + 0.01 * k, 0.5, 0.5 + 0.01 * k] for k in range(frames)],
        distractor_boxes=[[[0.6, 0.6, 0.9, 0.9]] * frames],
        distractor_labels=["cow"], photo="p.png", recording="r.ogg", background="b.jpg"))
  with open(f"{root}/labels.jsonl", "w") as f:
    for row in rows:
      f.write(json.dumps(row) + "\n")
  return root
