"""Matplotlib figures written as PNG: picture grids (heat maps, retrieval) and training curves.

Figures use matplotlib's object API with the Agg canvas, so nothing needs a display and no
global pyplot state is touched.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Optional, Sequence

import cv2
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from avjax.visualise import drawing

CORRECT = "#1a9c3c"
WRONG = "#d62728"


@dataclasses.dataclass
class Cell:
  """One picture of a grid: uint8 RGB image, a caption and an optional frame colour."""
  image: np.ndarray
  caption: str = ""
  frame: Optional[str] = None


def spectrogram_picture(spec: np.ndarray, size: int = 224) -> np.ndarray:
  """A log-spectrogram [F, T] or [F, T, 1] as a uint8 RGB picture (low frequencies at the
  bottom), for showing sounds in a grid."""
  s = np.asarray(spec, np.float32).reshape(spec.shape[0], spec.shape[1])
  lo, hi = np.percentile(s, 1), np.percentile(s, 99.5)
  grey = (np.clip((s - lo) / max(hi - lo, 1e-6), 0, 1) * 255).astype(np.uint8)[::-1]
  grey = cv2.resize(grey, (size, size), interpolation=cv2.INTER_LINEAR)
  return cv2.cvtColor(cv2.applyColorMap(grey, cv2.COLORMAP_MAGMA), cv2.COLOR_BGR2RGB)


def grid_figure(rows: Sequence[Sequence[Optional[Cell]]], title: str = "",
                row_labels: Sequence[str] = (), cell_inches: float = 2.0) -> Figure:
  """A grid of pictures; None leaves a cell empty; a cell's frame colours its border."""
  n_rows = len(rows)
  n_cols = max(len(r) for r in rows)
  fig = Figure(figsize=(cell_inches * n_cols, cell_inches * n_rows + 0.6 * bool(title)))
  FigureCanvasAgg(fig)
  if title:
    fig.suptitle(title, fontsize=11, parse_math=False)
  for r, row in enumerate(rows):
    for c in range(n_cols):
      ax = fig.add_subplot(n_rows, n_cols, r * n_cols + c + 1)
      ax.set_xticks([])
      ax.set_yticks([])
      cell = row[c] if c < len(row) else None
      if cell is None:
        ax.axis("off")
        continue
      ax.imshow(cell.image)
      # Captions are file and class names: a "$" in one is text, not mathtext.
      ax.set_title(cell.caption, fontsize=8, color=cell.frame or "black", parse_math=False)
      for spine in ax.spines.values():
        spine.set_color(cell.frame or "#999999")
        spine.set_linewidth(4 if cell.frame else 0.5)
      if c == 0 and r < len(row_labels):
        ax.set_ylabel(row_labels[r], fontsize=8, parse_math=False)
  fig.tight_layout()
  return fig


def localisation_sheet(pictures: Sequence[np.ndarray], maps: Sequence[np.ndarray],
                       times: Sequence[float], title: str = "", cols: int = 4) -> Figure:
  """Frames of a video with the map of the sound centred on each (p(sound here), one scale
  for all, so silent moments stay cold)."""
  cells = [Cell(drawing.annotated(p, m, size=224, absolute=True),
                f"t = {t:.1f} s (max {np.max(m):.2f})")
           for p, m, t in zip(pictures, maps, times)]
  return grid_figure([cells[r:r + cols] for r in range(0, len(cells), cols)], title)


def training_curves(rows: Sequence[dict], title: str = "") -> Figure:
  """Loss and AVC accuracy against the step: training (logged) and validation (evaluations)."""
  fig = Figure(figsize=(10, 3.6))
  FigureCanvasAgg(fig)
  loss_ax, acc_ax = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)

  def series(key):
    points = [(r["step"], r[key]) for r in rows if isinstance(r.get(key), (int, float))]
    return ([p[0] for p in points], [p[1] for p in points])

  loss_ax.plot(*series("loss"), color="#1f77b4", label="train loss")
  loss_ax.set_xlabel("step")
  loss_ax.set_ylabel("loss")
  loss_ax.set_title("loss")
  acc_ax.plot(*series("accuracy"), color="#1f77b4", label="train (balanced)")
  steps, val = series("val/avc_accuracy")
  if steps:
    acc_ax.plot(steps, val, "o-", color="#d62728", label="validation")
  acc_ax.axhline(0.5, color="#999999", linestyle="--", linewidth=1, label="chance")
  acc_ax.set_xlabel("step")
  acc_ax.set_ylabel("AVC accuracy")
  acc_ax.set_ylim(0.3, 1.0)
  acc_ax.set_title("audio-visual correspondence")
  acc_ax.legend(loc="lower right", fontsize=8)
  for ax in (loss_ax, acc_ax):
    ax.grid(alpha=0.3)
  if title:
    fig.suptitle(title, parse_math=False)
  fig.tight_layout()
  return fig


def save(fig: Figure, path: str, dpi: int = 80) -> str:
  """Writes the figure as a PNG; returns the path."""
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  fig.savefig(path, dpi=dpi)
  return path


class FrameSampler:
  """Keeps at most `keep` evenly spaced (time, picture) pairs of a stream of unknown length,
  in bounded memory: when full, every other one is dropped and the stride doubles."""

  def __init__(self, keep: int = 8):
    self.keep, self.stride, self.seen = keep, 1, 0
    self.items: list[tuple[float, np.ndarray]] = []

  def add(self, t: float, picture: np.ndarray) -> None:
    if self.seen % self.stride == 0:
      self.items.append((t, picture))
      if len(self.items) > self.keep:
        self.items = self.items[::2]
        self.stride *= 2
    self.seen += 1
