"""Packed datasets: clips decoded once into ArrayRecord shards, read back by random access.

`python -m data_pipeline.pack` (a Beam pipeline) writes a folder:

    manifest.json                  what was packed from where, counts, skipped files, hashes
    clips.jsonl                    the clip table; each clip names its first record (clips.Clip)
    shard-00000-of-00004.array_record, ...

Each clip is a run of consecutive records, so that an example reads only what it shows:

    header     JSON: the clip, its frame times, the sound's rate, start, length and scale
    sound      AUDIO_CHUNK_S pieces of the sound track as 16-bit PCM, from AUDIO_PAD_S before
               the clip to AUDIO_PAD_S after it (windows near its ends read what seeking would)
    frames     one JPEG per frame on the clip's frame grid (short side at most pack.short_side)

This module encodes and decodes them and serves frames and sound windows to
`data_pipeline.pipeline`, through `grain.sources.ArrayRecordDataSource`.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import math
import os
from typing import Optional, Sequence

import cv2
import numpy as np

from data_pipeline import decode
from data_pipeline.clips import Clip, DataError

MANIFEST = "manifest.json"
CLIPS = "clips.jsonl"
KIND = "avjax-packed"
VERSION = 1
AUDIO_PAD_S = 1.0  # sound kept beyond each end of a clip
AUDIO_CHUNK_S = 0.5  # seconds of sound per record
_MAGIC = b"AVJXPK1\n"


class Record:
  """One packed clip: its header, read once, and its frames and sound, read when asked."""

  def __init__(self, store: "Store", first: int, header: dict):
    self._store, self._first = store, first
    self.frame_times = np.asarray(header["frame_times"], np.float64)
    self.audio_rate = int(header["audio_rate"])
    self.audio_start = float(header["audio_start"])  # seconds of sample 0 on the file's timeline
    self.audio_samples = int(header["audio_samples"])
    self.audio_scale = float(header["audio_scale"])  # float sample = int16 / 32767 * scale
    self.chunk = int(header["chunk_samples"])
    self.chunks = int(header["chunks"])

  def frame(self, t: float) -> np.ndarray:
    """The frame shown at t (the last one at or before it; the first before the first) as
    HxWx3 uint8 RGB."""
    if not self.frame_times.size:
      raise DataError("this packed clip has no frames (a sound without a picture)")
    i = max(0, int(np.searchsorted(self.frame_times, t + 1e-6, side="right")) - 1)
    data, = self._store.read([self._first + 1 + self.chunks + i])
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)

  def _samples(self, first: int, n: int) -> np.ndarray:
    """float32 samples [first, first + n) of the packed sound, zeros outside it."""
    out = np.zeros(n, np.float32)
    lo, hi = max(first, 0), min(first + n, self.audio_samples)
    if hi <= lo:
      return out
    c0, c1 = lo // self.chunk, (hi - 1) // self.chunk
    pieces = self._store.read([self._first + 1 + c for c in range(c0, c1 + 1)])
    pcm = np.frombuffer(b"".join(pieces), "<i2")
    start = lo - c0 * self.chunk
    out[lo - first:hi - first] = pcm[start:start + hi - lo].astype(np.float32) * (
        self.audio_scale / 32767.0)
    return out

  def wave(self, centre: float, seconds: float, sample_rate: int) -> np.ndarray:
    """float32 [round(seconds * sample_rate)] centred at `centre`: zeros outside what was
    packed; resampled as decode.read_audio does when sample_rate is not the packing rate."""
    n_out = int(round(seconds * sample_rate))
    rate = self.audio_rate
    margin = 0 if rate == sample_rate else decode.resample_margin(sample_rate)
    start = centre - seconds / 2 - margin / sample_rate
    n_in = n_out if rate == sample_rate else int(
        math.ceil((n_out + 2 * margin) / sample_rate * rate)) + 1
    buffer = self._samples(int(round((start - self.audio_start) * rate)), n_in)
    return decode.resampled_window(buffer, rate, sample_rate, margin, n_out)


def encode_clip(clip: Clip, frame_times: Sequence[float], jpegs: Sequence[bytes],
                wave: np.ndarray, audio_rate: int, audio_start: float) -> list[bytes]:
  """One clip's records: its header, its sound in AUDIO_CHUNK_S pieces, its JPEG frames."""
  wave = np.asarray(wave, np.float32)
  scale = max(1.0, float(np.max(np.abs(wave)))) if wave.size else 1.0
  pcm = np.round(np.clip(wave / scale, -1.0, 1.0) * 32767.0).astype("<i2")
  chunk = max(1, int(round(AUDIO_CHUNK_S * audio_rate)))
  pieces = [pcm[i:i + chunk].tobytes() for i in range(0, pcm.shape[0], chunk)]
  header = json.dumps(dict(
      clip=dataclasses.asdict(clip), frame_times=[float(t) for t in frame_times],
      audio_rate=int(audio_rate), audio_start=float(audio_start),
      audio_samples=int(pcm.shape[0]), audio_scale=scale, chunk_samples=chunk,
      chunks=len(pieces))).encode("utf-8")
  return [_MAGIC + header, *pieces, *jpegs]


def decode_header(data: bytes) -> dict:
  """The header record that `encode_clip` wrote."""
  if not data.startswith(_MAGIC):
    raise DataError("not an avjax packed clip header (wrong magic or record index): pack "
                    "the dataset again")
  return json.loads(data[len(_MAGIC):])


def encode_jpeg(rgb: np.ndarray, short_side: int, quality: int) -> bytes:
  """An RGB frame as JPEG, shrunk (area filter, aspect kept) so its short side is at most
  short_side (0: kept as it is)."""
  h, w = rgb.shape[:2]
  if short_side and min(h, w) > short_side:
    scale = short_side / min(h, w)
    rgb = cv2.resize(rgb, (max(1, round(w * scale)), max(1, round(h * scale))),
                     interpolation=cv2.INTER_AREA)
  ok, data = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR),
                          [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
  if not ok:
    raise DataError("JPEG encoding failed")
  return data.tobytes()


def is_packed(root: str) -> bool:
  """Whether root holds a finished packed dataset (the manifest is written last)."""
  path = os.path.join(root, MANIFEST)
  if not os.path.isfile(path):
    return False
  try:
    with open(path, encoding="utf-8") as f:
      return json.load(f).get("kind") == KIND
  except (OSError, ValueError):
    return False


detect = is_packed  # the format registry's name for it


def read_manifest(root: str) -> dict:
  try:
    with open(os.path.join(root, MANIFEST), encoding="utf-8") as f:
      manifest = json.load(f)
  except (OSError, ValueError) as e:
    raise DataError(f"cannot read the packed dataset's manifest in {root}: {e}") from None
  if manifest.get("kind") != KIND or manifest.get("version") != VERSION:
    raise DataError(f"{root} holds a packed dataset of another version "
                    f"({manifest.get('version')}; this avjax reads {VERSION}): pack it again")
  return manifest


def read_table(root: str) -> tuple[list[Clip], list[tuple[str, str]]]:
  """The packed clips (each pointing at its record in root) and the files skipped at packing."""
  manifest = read_manifest(root)
  missing = [s["file"] for s in manifest["shards"]
             if not os.path.isfile(os.path.join(root, s["file"]))]
  if missing:
    raise DataError(f"the packed dataset in {root} lacks {len(missing)} shard(s), e.g. "
                    f"{missing[0]}: copy the whole folder, or pack again")
  with open(os.path.join(root, CLIPS), encoding="utf-8") as f:
    clips = [dataclasses.replace(Clip.from_json(line), packed_in=root)
             for line in f if line.strip()]
  return clips, [tuple(item) for item in manifest.get("skipped", ())]


class Store:
  """Random access to one packed dataset's records; the headers of recently read clips kept
  (an example reads a clip's header, then one frame and a few sound pieces)."""

  def __init__(self, root: str, keep: int = 256):
    import grain  # pylint: disable=g-import-not-at-top  # the reader needs it, the packer not
    manifest = read_manifest(root)
    self.root = root
    self._source = grain.sources.ArrayRecordDataSource(
        [os.path.join(root, s["file"]) for s in manifest["shards"]])
    self._headers: collections.OrderedDict = collections.OrderedDict()
    self._keep = keep

  def read(self, indices: list[int]) -> list[bytes]:
    if len(indices) == 1:
      return [self._source[indices[0]]]
    return self._source.__getitems__(indices)

  def record(self, first: int) -> Record:
    """The clip whose records start at `first`."""
    if first in self._headers:
      self._headers.move_to_end(first)
      return self._headers[first]
    rec = Record(self, first, decode_header(self.read([first])[0]))
    self._headers[first] = rec
    if len(self._headers) > self._keep:
      self._headers.popitem(last=False)
    return rec


_STORES: dict = {}


def store(root: str) -> Store:
  """This process's Store of a packed folder (opened on first use; Grain workers each open
  their own)."""
  if root not in _STORES:
    _STORES[root] = Store(root)
  return _STORES[root]


def record_of(clip: Clip) -> Optional[Record]:
  """The packed record of a clip, or None for a clip read from its media files."""
  if not clip.packed_in:
    return None
  return store(clip.packed_in).record(clip.record)
