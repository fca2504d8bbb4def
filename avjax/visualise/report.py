"""One self-contained HTML report: the metrics table with baselines, pictures, sounds, video.

Everything is inlined (PNG, WAV and MP4 as data: URIs), so the single file can be mailed or
opened anywhere without its workdir. No scripts: it renders in any browser as it is.
"""

from __future__ import annotations

import base64
import html
import io
import os
import wave
from typing import Mapping, Optional, Sequence

import numpy as np

from avjax.evaluate.table import HEADER, table_rows

_STYLE = """
body { font-family: sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
h1 { font-size: 1.6em; } h2 { font-size: 1.25em; margin-top: 2em; border-bottom: 1px solid #ccc; }
table.metrics { border-collapse: collapse; font-size: 0.95em; }
table.metrics td, table.metrics th { border: 1px solid #ccc; padding: 3px 10px; text-align: left; }
table.metrics td.value { font-family: monospace; text-align: right; }
figure { margin: 1em 0; } figure img { max-width: 100%; border: 1px solid #ddd; }
figcaption { color: #555; font-size: 0.9em; }
.sounds td { padding: 4px 10px 4px 0; vertical-align: middle; }
.note { color: #555; font-size: 0.9em; }
"""


def _data_uri(mime: str, data: bytes) -> str:
  return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def wav_bytes(wave_f32: np.ndarray, sample_rate: int) -> bytes:
  """A mono float wave in [-1, 1] as 16-bit PCM WAV file bytes."""
  pcm = (np.clip(np.asarray(wave_f32, np.float32), -1, 1) * 32767).astype("<i2")
  buffer = io.BytesIO()
  with wave.open(buffer, "wb") as w:
    w.setnchannels(1)
    w.setsampwidth(2)
    w.setframerate(int(sample_rate))
    w.writeframes(pcm.tobytes())
  return buffer.getvalue()


class Report:
  """Sections appended in order, then `write(path)`."""

  def __init__(self, title: str):
    self.title = title
    self.parts: list[str] = []

  def heading(self, text: str) -> None:
    self.parts.append(f"<h2>{html.escape(text)}</h2>")

  def text(self, text: str, css_class: str = "") -> None:
    cls = f' class="{css_class}"' if css_class else ""
    self.parts.append(f"<p{cls}>{html.escape(text)}</p>")

  def metrics_table(self, metrics: Mapping[str, object]) -> None:
    """Every metric beside its baseline, as the console table prints them."""
    rows, other, notes = table_rows(metrics)
    head = "".join(f"<th>{html.escape(h)}</th>" for h in HEADER)
    cells = "".join("<tr>" + "".join(
        f"<td class='value'>{html.escape(c)}</td>" if i == 1 else f"<td>{html.escape(c)}</td>"
        for i, c in enumerate(r)) + "</tr>" for r in rows)
    self.parts.append(f"<table class='metrics'><tr>{head}</tr>{cells}</table>")
    if metrics.get("scoring"):
      self.text("95% CI: bootstrap over clips (all rows of a clip drawn together); gains are "
                "paired (the same draws for metric and baseline).", "note")
    for key, value in other + notes:
      self.text(f"{key}: {value}", "note")

  def image(self, png_path: str, caption: str = "") -> None:
    with open(png_path, "rb") as f:
      uri = _data_uri("image/png", f.read())
    alt = html.escape(caption or os.path.basename(png_path))
    self.parts.append(f"<figure><img src='{uri}' alt='{alt}'>"
                      f"<figcaption>{html.escape(caption)}</figcaption></figure>")

  def sounds(self, items: Sequence[tuple[str, np.ndarray]], sample_rate: int) -> None:
    """A table of (caption, mono wave) rows, each with an audio player."""
    rows = "".join(
        f"<tr><td>{html.escape(caption)}</td><td><audio controls preload='none' "
        f"src='{_data_uri('audio/wav', wav_bytes(w, sample_rate))}'></audio></td></tr>"
        for caption, w in items)
    self.parts.append(f"<table class='sounds'>{rows}</table>")

  def video(self, mp4_path: str, caption: str = "", width: Optional[int] = None) -> None:
    with open(mp4_path, "rb") as f:
      uri = _data_uri("video/mp4", f.read())
    size = f" width='{width}'" if width else ""
    self.parts.append(f"<figure><video controls{size} src='{uri}'></video>"
                      f"<figcaption>{html.escape(caption)}</figcaption></figure>")

  def write(self, path: str) -> str:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    page = ("<!DOCTYPE html><html><head><meta charset='utf-8'>"
            f"<title>{html.escape(self.title)}</title><style>{_STYLE}</style></head><body>"
            f"<h1>{html.escape(self.title)}</h1>{''.join(self.parts)}</body></html>")
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
      f.write(page)
    os.replace(tmp, path)
    return path
