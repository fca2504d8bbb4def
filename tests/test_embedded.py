"""Tests for the embedded dataset builder (small builds from the cached real sources)."""

import json
import os

import av
import numpy as np
import pytest

from data_pipeline.clips import DataError
from embedded_dataset import build as embedded

_SMALL = {"train": 2, "val": 1, "test": 1}


def _rows(d):
  with open(os.path.join(d, "labels.jsonl")) as f:
    return [json.loads(line) for line in f]


def _frames(path):
  with av.open(path) as c:
    assert c.streams.video and c.streams.audio
    frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
  with av.open(path) as c:
    audio = np.concatenate([f.to_ndarray().reshape(-1) for f in c.decode(audio=0)])
  return frames, audio


@pytest.fixture(scope="module")
def small(tmp_path_factory):
  d = str(tmp_path_factory.mktemp("emb") / "a")
  embedded.build(d, seed=3, classes=4, clips_per_split=_SMALL, quiet=True)
  return d


def test_files_decode_and_match_labels(small):
  rows = _rows(small)
  # 4 classes: 2 train and 1 test clips each; val clips only for classes with a val picture
  # and a val recording (5 or more of each).
  assert [sum(r["split"] == s for r in rows) for s in ("train", "val", "test")] == [8, 1, 4]
  on_disk = {os.path.relpath(os.path.join(r, f), small)
             for r, _, fs in os.walk(small) for f in fs if f.endswith(".mp4")}
  assert on_disk == {r["file"] for r in rows}
  assert os.path.exists(os.path.join(small, "NOTICE"))
  for r in rows[:4]:
    frames, audio = _frames(os.path.join(small, r["file"]))
    assert len(frames) == len(r["target_boxes"]) == 24
    assert frames[0].shape == (256, 256, 3)
    assert audio.std() > 0.01  # a real sound, not silence
    assert r["fps"] == 8 and r["duration"] == 3.0


def _media(row: dict, field: str) -> set[str]:
  """The media files behind a clip's image or sound: its source's variants (a mirror image
  or a playback rate is a variant of the same file)."""
  return set(row["sources"][field].split("+"))


def _check_independent(rows: list[dict]) -> None:
  """No picture, recording or background (distractors' pictures included) in two splits;
  every clip's variant is one of its source's files."""
  used = {}
  for r in rows:
    assert r["photo"].split("#")[0] in _media(r, "image")
    assert r["recording"].split("@")[0].split(":phrase")[0] in _media(r, "sound")
    media = ({("image", m) for m in _media(r, "image")}
             | {("image", m) for d in r["sources"]["distractors"] for m in d.split("+")}
             | {("sound", m) for m in _media(r, "sound")}
             | {("background", r["sources"]["background"])})
    for item in media:
      used.setdefault(item, set()).add(r["split"])
  shared = {item: splits for item, splits in used.items() if len(splits) > 1}
  assert not shared, shared


def test_the_embedded_splits_share_no_picture_recording_or_background(embedded_dir):
  # The default build, read from its labels file alone.
  rows = _rows(embedded_dir)
  _check_independent(rows)
  test = [r for r in rows if r["split"] == "test"]
  labels = {r["label"] for r in rows}
  assert {r["label"] for r in test} == labels
  for label in labels:
    clips = [r for r in test if r["label"] == label]
    assert len(clips) >= 3, label
    assert len({r["sources"]["image"] for r in clips}) >= 2, label
    assert len({r["sources"]["sound"] for r in clips}) >= 2, label
  assert sum(r["split"] == "val" for r in rows) > 0


def test_every_seed_plans_independent_splits():
  labels = list(embedded.src.CLASSES)
  for seed in range(20):
    plan = embedded.plan_splits(seed, labels)
    for label, kinds in plan.items():
      for kind, splits in kinds.items():
        names = [s.name for split in splits.values() for s in split]
        assert len(names) == len(set(names)), (seed, label, kind)
        assert len(splits["test"]) == 2 and splits["train"], (seed, label, kind)
      # Training keeps a real photo when the class has one.
      assert any(s.kind == "photo" for s in kinds["images"]["train"]), (seed, label)


def test_boxes_cover_objects(small):
  for r in _rows(small):
    assert r["distractor_labels"] and r["label"] not in r["distractor_labels"]
    tracks = [r["target_boxes"]] + r["distractor_boxes"]
    for track in tracks:
      for x0, y0, x1, y1 in track:
        assert 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1
        assert 0.08 <= (x1 - x0) * (y1 - y0) <= 0.36
    # Objects move: not a fixed centred box.
    assert r["target_boxes"][0] != r["target_boxes"][-1] or r["distractor_boxes"][0][0] != (
        r["distractor_boxes"][0][-1])
  # Pixels inside the target's box change when the object drifts; the mask box is tight:
  # its border rows/columns contain object pixels that differ from the frame without it.
  r = _rows(small)[0]
  frames, _ = _frames(os.path.join(small, r["file"]))
  x0, y0, x1, y1 = (np.array(r["target_boxes"][0]) * 256).round().astype(int)
  inside = frames[0][y0:y1, x0:x1].astype(float)
  outside = np.concatenate([frames[0][:max(y0, 1)].reshape(-1, 3), frames[0][y1:].reshape(-1, 3)])
  assert abs(inside.mean() - outside.mean()) > 1 or inside.std() != outside.std()


def test_box_matches_pasted_pixels(tmp_path):
  """Render a clip on a flat background: the pixels that differ are exactly inside the boxes."""
  d = str(tmp_path / "flat")
  embedded.build(d, seed=5, classes=2, clips_per_split={"train": 1, "val": 0, "test": 0},
                 quiet=True, flat_background=(0, 0, 255))
  r = _rows(d)[0]
  frames, _ = _frames(os.path.join(d, r["file"]))
  for f in (0, 23):
    diff = np.abs(frames[f].astype(int) - [0, 0, 255]).sum(-1) > 60
    ys, xs = np.nonzero(diff)
    boxes = [r["target_boxes"][f]] + [t[f] for t in r["distractor_boxes"]]
    union = [min(b[0] for b in boxes), min(b[1] for b in boxes),
             max(b[2] for b in boxes), max(b[3] for b in boxes)]
    # Changed pixels lie inside the union of boxes (a pixel of codec slack)...
    assert xs.min() >= union[0] * 256 - 2 and xs.max() <= union[2] * 256 + 2
    assert ys.min() >= union[1] * 256 - 2 and ys.max() <= union[3] * 256 + 2
    # ... and the target box is filled by object pixels well beyond chance.
    x0, y0, x1, y1 = (np.array(r["target_boxes"][f]) * 256).astype(int)
    assert diff[y0:y1, x0:x1].mean() > 0.3


def test_deterministic(small, tmp_path):
  d = str(tmp_path / "b")
  embedded.build(d, seed=3, classes=4, clips_per_split=_SMALL, quiet=True)
  assert _rows(d) == _rows(small)
  f = _rows(d)[1]["file"]
  a, _ = _frames(os.path.join(small, f))
  b, _ = _frames(os.path.join(d, f))
  assert all(np.array_equal(x, y) for x, y in zip(a, b))
  d2 = str(tmp_path / "c")
  embedded.build(d2, seed=4, classes=4, clips_per_split=_SMALL, quiet=True)
  assert _rows(d2) != _rows(small)


def test_bad_request_is_data_error(tmp_path, capsys):
  with pytest.raises(DataError):
    embedded.build(str(tmp_path / "x"), classes=1, quiet=True)
  assert not os.path.exists(tmp_path / "x")
