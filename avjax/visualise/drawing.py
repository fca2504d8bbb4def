"""Pixel-level drawing shared by the figures, the localisation video and `avjax.embed`.

Images are uint8 RGB [H, W, 3]; maps are float [h, w] (any range); boxes are (x0, y0, x1, y1)
normalised to the image, with negative coordinates meaning "no box".
"""

from __future__ import annotations

import cv2
import numpy as np

from avjax.evaluate import metrics

TARGET_COLOUR = (40, 220, 40)       # the sounding object's box
DISTRACTOR_COLOUR = (250, 250, 250)  # silent objects' boxes
PEAK_COLOUR = (255, 255, 255)


def upscale(image: np.ndarray, size: int) -> np.ndarray:
  """A square image scaled to size x size (nearest for enlarging: pixels stay visible)."""
  if image.shape[0] == size and image.shape[1] == size:
    return image
  interp = cv2.INTER_NEAREST if size > image.shape[0] else cv2.INTER_AREA
  return cv2.resize(image, (size, size), interpolation=interp)


def normalised_map(loc_map: np.ndarray, height: int, width: int,
                   absolute: bool = False) -> np.ndarray:
  """The map bilinearly resized to height x width, in [0, 1]: min-max normalised (as the cIoU
  protocol does before thresholding), or clipped as it is (absolute, for maps that are
  probabilities, so that maps of different sounds share one scale)."""
  m = cv2.resize(np.asarray(loc_map, np.float32), (width, height),
                 interpolation=cv2.INTER_LINEAR)
  if absolute:
    return np.clip(m, 0.0, 1.0)
  return metrics.minmax_normalise(m[None])[0]


def heat_overlay(image: np.ndarray, loc_map: np.ndarray, alpha: float = 0.5,
                 absolute: bool = False) -> np.ndarray:
  """The image with the map drawn over it in the jet colour map (red = where the sound is)."""
  h, w = image.shape[:2]
  heat = (normalised_map(loc_map, h, w, absolute) * 255).astype(np.uint8)
  colour = cv2.cvtColor(cv2.applyColorMap(heat, cv2.COLORMAP_JET), cv2.COLOR_BGR2RGB)
  mixed = image.astype(np.float32) * (1 - alpha) + colour.astype(np.float32) * alpha
  return np.clip(mixed, 0, 255).astype(np.uint8)


def draw_box(image: np.ndarray, box, colour, thickness: int = 2) -> np.ndarray:
  """Draws a normalised box in place (nothing for a missing box); returns the image."""
  box = np.asarray(box, np.float32)
  if box.shape != (4,) or np.any(box < 0):
    return image
  h, w = image.shape[:2]
  x0, y0, x1, y1 = (int(round(v)) for v in box * np.array([w, h, w, h]))
  cv2.rectangle(image, (x0, y0), (min(x1, w - 1), min(y1, h - 1)), colour, thickness)
  return image


def draw_peak(image: np.ndarray, loc_map: np.ndarray) -> np.ndarray:
  """Marks the map's maximum (the net's single best guess, the point the pointing metric
  scores) with a cross, in place."""
  h, w = image.shape[:2]
  x, y = metrics.peak_points(np.asarray(loc_map)[None])[0]
  centre = (int(x * w), int(y * h))
  cv2.drawMarker(image, centre, PEAK_COLOUR, cv2.MARKER_CROSS, max(8, w // 12), 2)
  return image


def annotated(image: np.ndarray, loc_map: np.ndarray | None, target_box=None,
              distractor_boxes=(), size: int = 224, absolute: bool = False) -> np.ndarray:
  """The picture the figures show: image enlarged to size, heat map, boxes and peak."""
  out = upscale(np.asarray(image, np.uint8), size).copy()
  if loc_map is not None:
    out = heat_overlay(out, loc_map, absolute=absolute)
  for box in distractor_boxes:
    draw_box(out, box, DISTRACTOR_COLOUR, 1)
  if target_box is not None:
    draw_box(out, target_box, TARGET_COLOUR, 2)
  if loc_map is not None:
    draw_peak(out, loc_map)
  return out
