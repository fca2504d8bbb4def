"""Published non-sounding pair lists: the sound each test image is scored with instead of its own.

The Extended Flickr-SoundNet and Extended VGG-SS benchmarks (Mo & Morgado, NeurIPS 2022) ship
their non-sounding pairs as CSV files (SLAVC's `metadata/flickr_test_plus_silent.csv` and
`metadata/vggss_test_plus_silent.csv`) with the header `video,audio,label`: a row labelled
`non-sounding` pairs the frame of id `video` with the sound of id `audio`, and its ground truth
is empty. In the published lists every image is a test image; the sound may belong to a clip
outside the test split (90 of Flickr's 250), or to a file that has a sound but no frame.

`resolve` maps such a list onto the clips of the split being evaluated: images by clip id,
sounds by clip id in the whole dataset and then by file name in the layout's audio folder. The
extended eval rows (`pipeline.eval_rows(mode="extended", negatives=...)`) then use these
sounds instead of drawing the negatives with the eval seed; an image the list does not name
has no non-sounding pair, as in SLAVC's evaluation.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Sequence

from data_pipeline import decode, media
from data_pipeline.clips import Clip, DataError
from data_pipeline.formats import common

HEADER = ("video", "audio", "label")
NON_SOUNDING = "non-sounding"
_AUDIO_DIRS = ("audio", "audios")


@dataclasses.dataclass
class PairList:
  """A pair list resolved on one split."""
  negatives: dict[int, Clip]  # split clip index -> the clip whose sound is its non-sounding pair
  rows: int                   # non-sounding rows in the file
  unknown_images: list[str]   # ids of rows whose image is not in the split
  unknown_sounds: list[str]   # ids of rows whose sound was found nowhere

  def summary(self, path: str) -> str:
    text = f"pair list {path}: {len(self.negatives)} of {self.rows} non-sounding pairs used"
    if self.unknown_images:
      text += f"; {len(self.unknown_images)} name an image not in the split"
    if self.unknown_sounds:
      text += (f"; {len(self.unknown_sounds)} name a sound not in the dataset "
               f"(first: {self.unknown_sounds[0]})")
    return text


def read_rows(path: str) -> list[tuple[str, str]]:
  """The (image id, sound id) of each non-sounding row; DataError on a file of another shape."""
  if not os.path.isfile(path):
    raise DataError(f"pair list {path} does not exist")
  rows = [[cell.strip() for cell in row] for row in common.read_csv_rows(path) if row]
  if not rows or tuple(c.lower() for c in rows[0][:3]) != HEADER:
    got = ",".join(rows[0]) if rows else "an empty file"
    raise DataError(f"pair list {path} must start with the header {','.join(HEADER)} "
                    f"(as Extended Flickr / Extended VGG-SS), got {got!r}")
  out = []
  for number, row in enumerate(rows[1:], start=2):
    if len(row) < 3:
      raise DataError(f"pair list {path} line {number}: expected video,audio,label, got {row}")
    if row[2].lower() == NON_SOUNDING:
      out.append((_stem(row[0]), _stem(row[1])))
  if not out:
    raise DataError(f"pair list {path} has no row labelled {NON_SOUNDING}")
  return out


def _stem(name: str) -> str:
  return os.path.splitext(os.path.basename(name))[0]


def _sound_only_clip(path: str, timeout_s: float) -> Clip:
  info = decode.media_info(path, timeout_s=timeout_s)
  if not info["has_audio"] or not info["duration"]:
    raise DataError(f"pair list sound {path} has no readable audio stream")
  return Clip(path=path, audio_path=path, duration=float(info["duration"]), fps=None,
              audio_rate=info["audio_rate"], audio_channels=info["audio_channels"],
              split="test", clip_id=_stem(path))


def resolve(path: str, clips: Sequence[Clip], pool: Sequence[Clip], root: str,
            timeout_s: float = 20.0) -> PairList:
  """Maps the list at `path` onto `clips` (the split evaluated); sounds are looked up in
  `pool` (every clip of the dataset) and then in `root`'s audio folder."""
  rows = read_rows(path)
  image_of = {c.clip_id or _stem(c.path): i for i, c in enumerate(clips)}
  sound_of = {c.clip_id or _stem(c.path): c for c in pool}
  files = {}
  for name in _AUDIO_DIRS:
    folder = os.path.join(root, name)
    if os.path.isdir(folder):
      for f in common.walk_files(folder, media.AUDIO_EXTENSIONS):
        files.setdefault(_stem(f), f)
  out = PairList({}, len(rows), [], [])
  for image_id, sound_id in rows:
    if image_id not in image_of:
      out.unknown_images.append(image_id)
      continue
    if sound_id not in sound_of and sound_id in files:
      sound_of[sound_id] = _sound_only_clip(files[sound_id], timeout_s)
    if sound_id not in sound_of:
      out.unknown_sounds.append(sound_id)
      continue
    out.negatives[image_of[image_id]] = sound_of[sound_id]
  if not out.negatives:
    raise DataError(out.summary(path) + ": none can be scored (do its ids match the "
                    "dataset's clip ids, e.g. the frame names without extension?)")
  return out
