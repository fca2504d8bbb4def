"""Which files each data worker is decoding, so that a worker that dies can be named with them.

A Grain worker killed mid-decode (a decoder crash that takes the process down, the OOM killer)
leaves the trainer only its pid. Each worker keeps one small file, FOLDER/<pid>, that holds the
files of the example it is decoding and is emptied when that example is done; the trainer
reads the dead worker's file (`files_of`). A mark is two system calls on an open descriptor.
"""

from __future__ import annotations

import os


class DecodingMarks:
  """Marks kept by whichever process decodes (each worker gets a pickled copy)."""

  def __init__(self, folder: str):
    self.folder = folder
    self._fd = None
    self._pid = None

  def __getstate__(self):
    return {"folder": self.folder}  # a descriptor does not cross into a worker

  def __setstate__(self, state):
    self.__init__(state["folder"])

  def _descriptor(self) -> int:
    if self._pid != os.getpid():
      self._fd = os.open(os.path.join(self.folder, str(os.getpid())),
                         os.O_RDWR | os.O_CREAT, 0o644)
      self._pid = os.getpid()
    return self._fd

  def mark(self, files: str) -> None:
    """This process now decodes `files` (one short write: a reader sees all of it or none)."""
    fd = self._descriptor()
    os.ftruncate(fd, 0)
    os.pwrite(fd, files.encode("utf-8", "replace")[:4000], 0)

  def clear(self) -> None:
    """This process decodes nothing now."""
    os.ftruncate(self._descriptor(), 0)


def files_of(folder: str, pid: int) -> str:
  """What process pid was decoding when it last marked ("" when nothing, or unknown)."""
  try:
    with open(os.path.join(folder, str(pid)), encoding="utf-8", errors="replace") as f:
      return f.read().strip()
  except OSError:
    return ""
