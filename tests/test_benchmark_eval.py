"""Localisation benchmarks end to end: a checkpoint of `avol:tiny` (2 steps on the embedded
dataset) evaluated with `python -m avjax.main --mode=eval` on small Flickr-SoundNet and VGG-SS
layouts, whose still images and videos carry every annotator's or object's box.

The ground truth is the LVS / EZ-VSL map: Flickr-SoundNet's annotators' boxes summed, halved
and clipped to 1; VGG-SS's boxes unioned. The centre-prior baseline is checked against a
per-pixel reference of that map.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import media_factory as mf
from avjax import config as config_lib
from avjax.evaluate import metrics
from avjax.train import loop
from data_pipeline import features, index, pipeline
import limits

LOC_KEYS = ("loc/ciou_ap50", "loc/auc", "loc/ciou_mean", "loc/pointing")
FLICKR_TEST_IMAGES = 5  # 1001 and 4 extra test images


@pytest.fixture(scope="module")
def workdir(tmp_path_factory, embedded_dir):  # pylint: disable=unused-argument
  """A workdir holding a 2-step avol:tiny checkpoint trained on the embedded dataset."""
  path = str(tmp_path_factory.mktemp("avol_tiny"))
  loop.train_and_evaluate(config_lib.get_config("avol:tiny", ["train.num_steps=2"]), path)
  return path


def _data_config(fmt: str, root: str, cache: str):
  cfg = config_lib.get_config("avol:tiny").data
  cfg.format, cfg.root, cfg.cache_dir = fmt, root, cache
  return cfg


def _evaluate(workdir: str, fmt: str, root: str, cache: str) -> dict:
  proc = subprocess.run(
      [sys.executable, "-m", "avjax.main", "--experiment=avol:tiny", f"--workdir={workdir}",
       "--mode=eval", f"--config.data.format={fmt}", f"--config.data.root={root}",
       f"--config.data.cache_dir={cache}"],
      capture_output=True, text=True, check=False, timeout=limits.HANG_S)
  assert proc.returncode == 0, proc.stderr[-3000:]
  with open(os.path.join(workdir, "eval", "metrics.json")) as f:
    return json.load(f)


def _reference_centre_cious(rows, size: int = 224) -> np.ndarray:
  """cIoU of the centre prior against the published map, pixel by pixel: a pixel's ground
  truth is min(1, (boxes holding its centre) / consensus)."""
  centre = metrics.centre_prior_maps(len(rows), size, size)
  pred = metrics.binarise_median(metrics.minmax_normalise(metrics.upsample_bilinear(centre, size)))
  out = []
  for p, row in zip(pred, rows):
    c = (np.arange(size) + 0.5) / size
    count = np.zeros((size, size))
    for x0, y0, x1, y1 in row["gt_boxes"]:
      if x0 >= 0:
        count += np.outer((c >= y0) & (c <= y1), (c >= x0) & (c <= x1))
    gt = np.minimum(1.0, count / row["gt_consensus"])
    out.append((p * gt).sum() / (gt.sum() + (p * (gt == 0)).sum()))
  return np.array(out)


def _test_rows(fmt: str, root: str, cache: str):
  cfg = _data_config(fmt, root, cache)
  clips = index.load_dataset(cfg, progress=False).split("test")
  return cfg, clips, list(pipeline.eval_rows(cfg, clips, seed=0, mode="positives"))


def _check_metrics(results: dict, num_images: int) -> None:
  assert results["split"] == "test" and results["step"] == 2
  for key in LOC_KEYS:
    assert 0.0 <= results[key] <= 1.0, key
    assert 0.0 <= results[f"baseline/centre/{key}"] <= 1.0, key
  assert results["loc/num_images"] == num_images
  assert "avc_accuracy" in results


def test_flickr_rows_carry_every_annotator_box(tmp_path):
  root = mf.make_flickr_dataset(str(tmp_path / "flickr"), extra_test=4)
  cfg, clips, rows = _test_rows("flickr", root, str(tmp_path / "cache"))
  assert len(rows) == FLICKR_TEST_IMAGES
  first = next(r for r, c in zip(rows, clips) if c.clip_id == "1001")
  assert first["gt_boxes"].shape == (3, 4) and first["gt_consensus"] == 2
  geo = features.sample_geometry(None, cfg.resize_size, cfg.image_size, False)
  for kept, written in zip(first["gt_boxes"], mf.FLICKR_BOXES):
    np.testing.assert_allclose(
        kept, features.transform_box([v / 256 for v in written], geo), atol=1e-6)
  # Two annotators: the third box is padding.
  others = [r for r, c in zip(rows, clips) if c.clip_id != "1001"]
  assert all((r["gt_boxes"][2] == -1).all() for r in others)


def test_flickr_eval_from_the_command_line(workdir, tmp_path):
  root = mf.make_flickr_dataset(str(tmp_path / "flickr"), extra_test=4)
  cache = str(tmp_path / "cache")
  results = _evaluate(workdir, "flickr", root, cache)
  _check_metrics(results, FLICKR_TEST_IMAGES)
  # No labels in Flickr-SoundNet: the probe says so instead of failing.
  assert "note/probe" in results and "probe/audio_accuracy" not in results
  _, _, rows = _test_rows("flickr", root, cache)
  reference = _reference_centre_cious(rows)
  assert results["baseline/centre/loc/ciou_mean"] == pytest.approx(reference.mean())
  # Pictures of unlabelled still images: heat maps and retrieval, no video (no frames).
  written = set(os.listdir(os.path.join(workdir, "eval")))
  assert {"report.html", "heatmaps.png", "matched_mismatched.png",
          "retrieval_im-aud.png"} <= written
  assert "localisation.mp4" not in written


def test_vggss_eval_from_the_command_line(workdir, tmp_path):
  root = mf.make_vggss_dataset(str(tmp_path / "vggss"))  # a video and a still image; test only
  cache = str(tmp_path / "cache")
  results = _evaluate(workdir, "vggss", root, cache)
  _check_metrics(results, 2)
  _, clips, rows = _test_rows("vggss", root, cache)
  video = next(r for r, c in zip(rows, clips) if c.clip_id == "vid_000030")
  assert video["gt_consensus"] == 1 and (video["gt_boxes"] >= 0).all()  # both boxes: union
  reference = _reference_centre_cious(rows)
  assert results["baseline/centre/loc/ciou_mean"] == pytest.approx(reference.mean())
