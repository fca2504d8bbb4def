"""Packing (data_pipeline.pack, Beam's DirectRunner) and training from the shards: the packed
pipeline yields the video pipeline's examples, a changed file is packed again and nothing else."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from avjax import config as config_lib
from avjax import export as export_lib
from avjax.train import evaluation as evaluation_lib
from avjax.train import loop
from data_pipeline import config, decode, index, pack, packed, pipeline
from data_pipeline.clips import Clip, DataError
import media_factory as mf

# Small sizes: JPEG and PCM round the pixels and samples, nothing else differs.
TINY = dict(sample_rate=8000, n_fft=128, win_length=80, hop_length=160, spec_frames=50,
            resize_size=40, image_size=32, num_workers=0)


def _cfg(root: str, cache: str, **kw):
  cfg = config.default_data_config()
  cfg.update(dict(TINY, root=root, cache_dir=cache, **kw))
  return cfg


def _pack(src_cfg, out: str, **pack_kw):
  pack_cfg = config.default_pack_config()
  pack_cfg.update(pack_kw)
  return pack.run(src_cfg, pack_cfg, out, workers=1, progress=False)


def _same_rows(video_rows, packed_rows):
  """Images within JPEG's rounding; sounds within PCM's; everything else equal."""
  for a, b in zip(video_rows, packed_rows, strict=True):
    assert a.keys() == b.keys()
    diff = np.abs(a["image"].astype(np.float32) - b["image"].astype(np.float32))
    assert diff.mean() < 6 and np.median(diff) <= 4, diff.mean()
    # Spectrograms are log-magnitudes: compare magnitudes, where rounding is additive.
    np.testing.assert_allclose(np.exp(a["audio"]), np.exp(b["audio"]), atol=2e-3)
    for key in a:
      if key not in ("image", "audio", "wave"):
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    if "wave" in a:
      np.testing.assert_allclose(a["wave"], b["wave"], atol=2 / 32767)


@pytest.mark.parametrize("start,end", [(0.0, 3.0), (0.9, 1.6), (1.0, 2.0), (2.9, 5.0)])
def test_a_segments_frames_are_the_seeking_reads(tmp_path, start, end):
  video = mf.write_video(str(tmp_path / "v.mp4"), seconds=3.0, fps=8, size=(48, 32))
  got = list(decode.iter_frames(video, start, end))
  want_times = [t for t in np.arange(24) / 8 if t + 1 / 8 > start + 1e-6 and t < end]
  np.testing.assert_allclose([t for t, _ in got], want_times)
  for t, frame in got:
    np.testing.assert_array_equal(frame, decode.read_frame(video, max(t, start)))
  # Kept at 3 frames a second: the frames shown at multiples of 1/3 s.
  clip = Clip(video, video, end - start, 8.0, 16000, 1, start=start)
  times, frames = pack._frames(clip, dict(frames_per_second=3.0), timeout_s=20)
  assert pack.packed_fps(clip, dict(frames_per_second=3.0)) == 3.0
  np.testing.assert_allclose(times, [k / 3 for k in range(int(np.ceil(start * 3 - 1e-9)),
                                                          int(np.ceil(end * 3 - 1e-9)))])
  for t, frame in zip(times, frames):
    assert mf.frame_index_of(frame) == mf.frame_index_of(decode.read_frame(video, t)), t


@pytest.fixture(scope="module")
def embedded_pack(embedded_dir, tmp_path_factory):
  """The embedded dataset (16 clips per split) and its packed copy, in 2 shards."""
  tmp = tmp_path_factory.mktemp("pack")
  src = _cfg(embedded_dir, "", max_clips=16)  # the probe cache the other tests fill
  out = str(tmp / "packed")
  manifest = _pack(src, out, clips_per_shard=20)
  return src, out, manifest


def test_the_packed_examples_are_the_video_pipelines(embedded_pack):
  src, out, manifest = embedded_pack
  assert manifest["clips"] == 40 and len(manifest["shards"]) == 2
  assert manifest["counts"] == {"train": 16, "val": 8, "test": 16}
  videos = index.load_dataset(src, progress=False)
  dst = _cfg(out, src.cache_dir, max_clips=16)
  packs = index.load_dataset(dst, progress=False)
  assert packs.format == "packed"
  assert [c.clip_id for c in packs.clips] == [c.clip_id for c in videos.clips]
  assert all(c.record >= 0 and c.packed_in == out for c in packs.clips)
  # Training: the same seed draws the same pairs, frames, crops, flips and gains. The video
  # side reads whole clips (the clip cache), as the packer does: sound codecs start up
  # differently when a read seeks.
  src.decode_cache_mb = 256
  train = lambda cfg, ds: iter(pipeline.train_dataset(
      cfg, ds.split("train"), global_batch_size=8, seed=3))
  video_it, packed_it = train(src, videos), train(dst, packs)
  for _ in range(3):
    v, p = next(video_it), next(packed_it)
    _same_rows([{k: v[k][i] for k in v} for i in range(8)],
               [{k: p[k][i] for k in p} for i in range(8)])
  video_it.close()  # their prefetch threads would go on decoding
  packed_it.close()
  # Evaluation rows: every grid frame with its own and another clip's sound, boxes included.
  rows = lambda cfg, ds: list(pipeline.eval_rows(cfg, ds.split("test"), seed=0,
                                                 frames_per_clip=3))
  _same_rows(rows(src, videos), rows(dst, packs))


def test_a_still_image_layout_packs_and_reads_back(tmp_path):
  root = mf.make_flickr_dataset(str(tmp_path / "flickr"), extra_test=3)
  src = _cfg(root, str(tmp_path / "cache"), decode_cache_mb=64)
  out = str(tmp_path / "packed")
  manifest = _pack(src, out)
  assert manifest["source"]["format"] == "flickr"
  assert any("1003" in path for path, _ in manifest["skipped"])  # no sound: skipped, with why
  videos = index.load_dataset(src, progress=False)
  packs = index.load_dataset(_cfg(out, str(tmp_path / "cache")), progress=False)
  assert all(p.fps is None and p.gt_boxes == v.gt_boxes for v, p in zip(videos.clips, packs.clips))
  rows = lambda cfg, ds: list(pipeline.eval_rows(cfg, ds.split("test"), seed=0,
                                                 mode="extended"))
  _same_rows(rows(src, videos), rows(_cfg(out, ""), packs))


def test_only_a_changed_clip_is_packed_again(tmp_path):
  root = mf.make_embedded_dataset(str(tmp_path / "src"), n=8)
  src = _cfg(root, str(tmp_path / "cache"))
  out = str(tmp_path / "packed")
  first = _pack(src, out, clips_per_shard=2)
  shards = {s["file"]: os.stat(os.path.join(out, s["file"])).st_mtime_ns
            for s in first["shards"]}
  assert len(shards) >= 2  # clips go to 4 shards by a hash of their ids; one may be empty

  again = _pack(src, out, clips_per_shard=2)  # unchanged source: nothing rewritten
  assert again == first
  assert {f: os.stat(os.path.join(out, f)).st_mtime_ns for f in shards} == shards

  # One clip re-made with other content (and a later modification time).
  rel = json.loads(open(os.path.join(root, "labels.jsonl")).readline())["file"]
  mf.write_video(os.path.join(root, rel), seconds=2.0, fps=8, size=(64, 64), tone_hz=1500.0)
  os.utime(os.path.join(root, rel), ns=(os.stat(os.path.join(root, rel)).st_atime_ns,
                                        os.stat(os.path.join(root, rel)).st_mtime_ns + 10**9))
  third = _pack(src, out, clips_per_shard=2)
  assert third["content_hash"] != first["content_hash"]
  changed = {f for f in shards if os.stat(os.path.join(out, f)).st_mtime_ns != shards[f]}
  clip_id = os.path.splitext(rel)[0]
  [shard] = [t["file"] for t in pack.plan(index.load_dataset(src, progress=False).clips,
                                          pack.settings(src, config.default_pack_config()),
                                          2, out)
             if any(json.loads(c)["clip_id"] == clip_id for c in t["clips"])]
  assert changed == {shard}
  # The new record holds the new sound.
  [clip] = [c for c in index.load_dataset(_cfg(out, ""), progress=False).clips
            if c.clip_id == clip_id]
  wave = packed.record_of(clip).wave(1.0, 1.0, 8000)
  spectrum = np.abs(np.fft.rfft(wave))
  assert abs(np.argmax(spectrum) * 8000 / len(wave) - 1500) < 20


def test_the_command_line_packs_with_worker_processes_and_refuses_a_foreign_folder(tmp_path):
  root = mf.make_embedded_dataset(str(tmp_path / "src"), n=4)
  out = tmp_path / "packed"
  args = [sys.executable, "-m", "data_pipeline.pack", f"--config.data.root={root}",
          f"--config.data.cache_dir={tmp_path / 'cache'}", "--config.data.sample_rate=8000"]
  done = subprocess.run(args + [f"--out={out}", "--workers=2"], capture_output=True, text=True,
                        timeout=300, check=False)
  assert done.returncode == 0, done.stderr[-2000:]
  assert "packed 4 clips into 1 shard(s)" in done.stderr
  assert "Traceback" not in done.stderr and "apitools" not in done.stderr  # Beam's log: pack.log
  assert packed.read_manifest(str(out))["counts"] == {"train": 2, "val": 1, "test": 1}
  foreign = tmp_path / "mine"
  foreign.mkdir()
  (foreign / "thesis.tex").write_text("keep me")
  refused = subprocess.run(args + [f"--out={foreign}"], capture_output=True, text=True,
                           timeout=300, check=False)
  assert refused.returncode == 1
  assert refused.stderr.strip().splitlines() == [
      f"avjax pack: --out {foreign} holds other files (thesis.tex); give an empty folder or "
      "one that a pack wrote"]
  assert (foreign / "thesis.tex").read_text() == "keep me"


def test_avol_tiny_trains_evaluates_and_exports_from_the_shards(embedded_pack, tmp_path):
  _, out, _ = embedded_pack
  workdir = str(tmp_path / "work")
  cfg = config_lib.get_config("avol:tiny", [f"data.root={out}", "train.num_steps=2",
                                            "eval.evaluators=avc", "eval.pictures=false"])
  loop.train_and_evaluate(cfg, workdir)
  evaluation_lib.evaluate_checkpoint(cfg, workdir)
  with open(os.path.join(workdir, "eval", "metrics.json")) as f:
    metrics = json.load(f)
  assert 0.0 <= metrics["avc_accuracy"] <= 1.0, metrics
  exported = export_lib.export(cfg, workdir, str(tmp_path / "export"))
  assert os.listdir(exported)


def test_a_missing_shard_is_one_line(embedded_pack, tmp_path):
  _, out, _ = embedded_pack
  broken = tmp_path / "broken"
  broken.mkdir()
  for name in (packed.MANIFEST, packed.CLIPS):
    (broken / name).write_bytes(open(os.path.join(out, name), "rb").read())
  with pytest.raises(DataError, match=r"lacks 2 shard\(s\).*copy the whole folder"):
    index.load_dataset(_cfg(str(broken), ""), progress=False)


@pytest.mark.parametrize("setting,message", [
    (dict(compression="lz4"), r"pack.compression='lz4'; it must be uncompressed"),
    (dict(jpeg_quality=0), r"pack.jpeg_quality=0; it must be in 1-100"),
    (dict(clips_per_shard=0), r"pack.clips_per_shard=0; it must be at least 1"),
])
def test_bad_pack_settings_are_one_line_before_any_work(tmp_path, setting, message):
  out = tmp_path / "packed"
  with pytest.raises(DataError, match=message):
    _pack(_cfg(str(tmp_path / "nowhere"), ""), str(out), **setting)
  assert not out.exists()


def test_an_output_folder_inside_the_dataset_is_refused(tmp_path):
  root = mf.make_embedded_dataset(str(tmp_path / "src"), n=4)
  with pytest.raises(DataError, match="is inside the dataset's folder"):
    _pack(_cfg(root, str(tmp_path / "cache")), os.path.join(root, "packed"))
