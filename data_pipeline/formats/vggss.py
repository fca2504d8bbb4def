"""VGG-SS: a JSON list of {file, class, bbox: [[xmin, ymin, xmax, ymax], ...] normalised}.

The media for `file` is a video named `<file>.<ext>` anywhere under the root, or the LVS layout
`frames/<file>.jpg` + `audio/<file>.wav`. VGG-SS is an evaluation set: every clip is "test".
Every box marks a sounding object (VGG-SS boxes all mark the sounding class): all of them are
the clip's `gt_boxes` (gt_consensus 1: the localisation ground truth is their union, as in the
LVS / EZ-VSL evaluation), and the first is the target box (for pointing and pictures).
"""

from __future__ import annotations

import json
import os

from data_pipeline import media
from data_pipeline.formats import common
from data_pipeline.formats import flickr


def _is_box_list(path: str) -> bool:
  with open(path) as f:
    data = json.load(f)
  return (isinstance(data, list) and bool(data) and isinstance(data[0], dict)
          and {"file", "bbox"} <= set(data[0]))


def _json_files(root: str) -> list[str]:
  # ontology.json is AudioSet's class ontology (see audioset.py), never boxes.
  return common.metadata_files(root, ".json", _is_box_list, skip=("ontology.json",))


def detect(root: str) -> bool:
  return bool(_json_files(root))


def read(root: str) -> common.Listing:
  videos = common.media_by_stem(root)
  images = flickr.by_stem(flickr.find_dir(root, "frames", "frame"), media.IMAGE_EXTENSIONS)
  audio = flickr.by_stem(flickr.find_dir(root, "audio", "audios"), media.AUDIO_EXTENSIONS)
  entries, skipped = [], []
  for json_path in _json_files(root):
    with open(json_path) as f:
      items = json.load(f)
    for item in items:
      clip_id = os.path.splitext(str(item["file"]))[0]
      boxes = [tuple(float(min(max(c, 0.0), 1.0)) for c in b) for b in item.get("bbox") or []]
      target = (boxes[0],) if boxes else ()
      label = item.get("class")
      labels = (str(label),) if label else ()
      fields = dict(labels=labels, split="test", target_boxes=target, gt_boxes=tuple(boxes),
                    clip_id=clip_id)
      if clip_id in videos:
        entries.append(common.Entry(path=videos[clip_id], **fields))
      elif clip_id in images and clip_id in audio:
        entries.append(common.Entry(path=images[clip_id], audio_path=audio[clip_id], **fields))
      else:
        skipped.append((clip_id, "missing file"))
  return common.Listing(entries, skipped)
