"""The clip table: one row per usable clip, the currency between indexing and sampling.

Every dataset format (a folder of videos, VGGSound, AudioSet, Kinetics, Flickr-SoundNet,
VGG-SS, the embedded dataset, and the audio-only ESC-50, UrbanSound8K, DCASE 2013 and sound
folders) is read into a list of `Clip`s; the Grain pipeline only ever sees `Clip`s. An
audio-only clip (`path` a sound file) serves probes and embedding, never AVC training. Boxes are normalised to [0, 1] of the full frame as (x0, y0, x1, y1).

Localisation ground truth: by default the target box of the evaluated frame. Datasets annotated
on one frame with several boxes (Flickr-SoundNet: one box per annotator; VGG-SS: one box per
sounding object) also list them all in `gt_boxes`; the ground-truth map is then
min(1, (number of gt_boxes covering a pixel) / gt_consensus), the LVS / EZ-VSL map: with
gt_consensus 2 (Flickr-SoundNet) a pixel inside one annotator's box counts 0.5 and inside two
or more counts 1; with gt_consensus 1 (VGG-SS) the map is the union of the boxes.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Optional, Sequence

from data_pipeline import media

Box = tuple[float, float, float, float]


@dataclasses.dataclass(frozen=True)
class Clip:
  """One video (or one still image with its sound) that training and evaluation can use.

  Attributes:
    path: video file, an image file when the frame and the audio are separate files, or a sound
      file for an audio-only clip.
    audio_path: file holding the audio track; equal to `path` for videos.
    duration: seconds of usable media (the shorter of the audio and video streams).
    fps: video frame rate; None for a still image (every time maps to the one frame).
    audio_rate: sample rate of the audio stream in the file.
    audio_channels: channel count of the audio stream in the file.
    labels: class names (possibly several, as in AudioSet); empty when unlabelled.
    split: "train", "val" or "test".
    start: offset in seconds of the clip inside the file (AudioSet/VGGSound segments).
    target_boxes: per video frame, the box of the sounding object (may be empty).
    distractor_boxes: per distractor, per video frame, its box (may be empty).
    clip_id: a stable name for the clip, unique in its table.
    gt_boxes: for a clip annotated on one frame (its target track a single box), every
      ground-truth box of that frame: one per annotator (Flickr-SoundNet) or per sounding
      object (VGG-SS). Empty: the target box is the ground truth.
    gt_consensus: how many of gt_boxes must cover a pixel for it to count fully (>= 1).
    fold: the dataset's official cross-validation fold (ESC-50, UrbanSound8K); 0 = none.
    packed_in: the packed dataset folder (data_pipeline.packed) holding this clip's decoded
      frames and sound, set when its table is read; "" = read from `path` and `audio_path`.
    record: the index of the clip's first record (its header) in that folder's shards
      (-1 when not packed).
  """
  path: str
  audio_path: str
  duration: float
  fps: Optional[float]
  audio_rate: int
  audio_channels: int
  labels: tuple[str, ...] = ()
  split: str = "train"
  start: float = 0.0
  target_boxes: tuple[Box, ...] = ()
  distractor_boxes: tuple[tuple[Box, ...], ...] = ()
  clip_id: str = ""
  gt_boxes: tuple[Box, ...] = ()
  gt_consensus: int = 1
  fold: int = 0
  packed_in: str = ""
  record: int = -1

  @property
  def audio_only(self) -> bool:
    """Whether the clip is a sound without a picture (an ESC-50 or UrbanSound8K file)."""
    return media.media_kind(self.path) == "audio"

  @property
  def label(self) -> Optional[str]:
    """The first label, or None when the clip is unlabelled."""
    return self.labels[0] if self.labels else None

  def to_json(self) -> str:
    return json.dumps(dataclasses.asdict(self))

  @classmethod
  def from_json(cls, line: str) -> "Clip":
    row = json.loads(line)
    row["labels"] = tuple(row.get("labels", ()))
    row["target_boxes"] = tuple(tuple(b) for b in row.get("target_boxes", ()))
    row["gt_boxes"] = tuple(tuple(b) for b in row.get("gt_boxes", ()))
    row["distractor_boxes"] = tuple(
        tuple(tuple(b) for b in track) for track in row.get("distractor_boxes", ()))
    return cls(**row)


def save_clips(path: str, clips: Sequence[Clip]) -> None:
  """Writes a clip table as JSON lines."""
  with open(path, "w") as f:
    for clip in clips:
      f.write(clip.to_json() + "\n")


def load_clips(path: str) -> list[Clip]:
  """Reads a clip table written by `save_clips`."""
  with open(path) as f:
    return [Clip.from_json(line) for line in f if line.strip()]


def class_names(clips: Sequence[Clip]) -> list[str]:
  """Sorted class names over all clips (the class index used by probes and retrieval)."""
  return sorted({label for clip in clips for label in clip.labels})


class DataError(ValueError):
  """A problem with the user's data or data flags; its message is one clear line for the user."""
