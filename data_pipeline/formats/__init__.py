"""Readers of dataset metadata formats, and detection of the format from the files in a root.

Each module has `detect(root) -> bool` and `read(root) -> common.Listing` (a packed folder,
`data_pipeline.packed`, has its clip table instead). Detection tries the
most specific layouts first; a plain folder of videos, then of sounds, is the fallback. The
audio-only formats (esc50, urbansound8k, dcase2013, sounds) serve probes and embedding.
"""

from __future__ import annotations

from data_pipeline import packed
from data_pipeline.formats import audioset
from data_pipeline.formats import common
from data_pipeline.formats import dcase2013
from data_pipeline.formats import embedded
from data_pipeline.formats import esc50
from data_pipeline.formats import flickr
from data_pipeline.formats import folder
from data_pipeline.formats import kinetics
from data_pipeline.formats import sounds
from data_pipeline.formats import urbansound8k
from data_pipeline.formats import vggsound
from data_pipeline.formats import vggss

# In detection order: the first whose detect() is true is used.
# "packed" (data_pipeline.packed) is read without probing: its clips were decoded when packed.
READERS = {
    "packed": packed,
    "embedded": embedded,
    "vggss": vggss,
    "flickr": flickr,
    "audioset": audioset,
    "kinetics": kinetics,
    "vggsound": vggsound,
    "esc50": esc50,
    "urbansound8k": urbansound8k,
    "dcase2013": dcase2013,
    "folder": folder,
    "sounds": sounds,
}
ALIASES = {"flickr-soundnet": "flickr", "flickr_soundnet": "flickr", "soundnet": "flickr",
           "vgg-ss": "vggss", "vgg_ss": "vggss", "videos": "folder", "kinetics400": "kinetics",
           "kinetics-400": "kinetics", "vgg-sound": "vggsound", "esc-50": "esc50",
           "us8k": "urbansound8k", "urbansound": "urbansound8k", "dcase": "dcase2013",
           "dcase2013-scenes": "dcase2013", "audio": "sounds", "sound-folder": "sounds"}


def canonical(name: str) -> str:
  """The reader name for a user's format string ("" stays "")."""
  name = name.strip().lower()
  return ALIASES.get(name, name)


def detect(root: str) -> str:
  """The first format whose files are present under root, or "" when none is."""
  for name, module in READERS.items():
    if module.detect(root):
      return name
  return ""
