"""DCASE 2013 scene classification, as published (`scenes_stereo.zip`): 100 recordings of 30 s,
10 per scene, named `<scene><NN>.wav` (`bus01.wav`, `tubestation10.wav`), in the root or its
`scenes_stereo/` folder.

Audio-only. The challenge scored 5-fold cross-validation; no fold list ships with the files,
so each scene's recordings, sorted by name, are dealt to folds 1-5 in turn (2 per fold).
"""

from __future__ import annotations

import os
import re

from data_pipeline.formats import common

SCENES = ("bus", "busystreet", "office", "openairmarket", "park", "quietstreet", "restaurant",
          "supermarket", "tube", "tubestation")
FOLDS = 5
_NAME = re.compile(r"^(%s)(\d\d)\.wav$" % "|".join(SCENES))


def _recordings(root: str) -> list[tuple[str, str]]:
  """(path, scene) of every `<scene><NN>.wav` in root or root/scenes_stereo, sorted."""
  found = []
  for folder in (root, os.path.join(root, "scenes_stereo")):
    if os.path.isdir(folder):
      for name in sorted(os.listdir(folder)):
        match = _NAME.match(name)
        if match and os.path.isfile(os.path.join(folder, name)):
          found.append((os.path.join(folder, name), match.group(1)))
  return found


def detect(root: str) -> bool:
  # Several scenes, so that a lone `bus01.wav` in a sound folder is not taken for DCASE.
  return len({scene for _, scene in _recordings(root)}) >= 2


def read(root: str) -> common.Listing:
  entries, dealt = [], {}
  for path, scene in _recordings(root):
    dealt[scene] = dealt.get(scene, 0) + 1
    entries.append(common.Entry(path=path, labels=(scene,), fold=(dealt[scene] - 1) % FOLDS + 1))
  return common.Listing(entries)
