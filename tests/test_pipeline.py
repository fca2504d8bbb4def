"""Tests of the Grain train pipeline (determinism, resume, content, bad files) and eval batches."""

import os
import threading

import grain
import ml_collections
import numpy as np
import orbax.checkpoint as ocp
import pytest
from absl import flags

import media_factory as mf
from data_pipeline import config, decode, pairs, pipeline
from data_pipeline.clips import Clip

flags.FLAGS.mark_as_parsed()  # Grain worker processes read absl flags


def _cfg(**kw):
  cfg = config.default_data_config()
  cfg.update(dict(sample_rate=16000, n_fft=256, win_length=160, hop_length=160,
                  spec_frames=100, image_size=56, resize_size=64, num_workers=0))
  cfg.update(kw)
  return ml_collections.ConfigDict(cfg.to_dict())


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
  root = tmp_path_factory.mktemp("media")
  out = []
  for i in range(6):
    path = mf.write_video(str(root / f"v{i}.mp4"), seconds=3.0, fps=8, size=(64, 64))
    box = (0.25, 0.5, 0.75, 1.0)
    out.append(Clip(path, path, 3.0, 8.0, 16000, 1, labels=("ab"[i % 2],), clip_id=str(i),
                    target_boxes=(box,) * 24,
                    distractor_boxes=((box,) * 24,) * (i % 3)))
  return out


def _take(it, n):
  return [next(it) for _ in range(n)]


def _equal(a, b):
  assert len(a) == len(b)
  for x, y in zip(a, b):
    assert x.keys() == y.keys()
    for k in x:
      np.testing.assert_array_equal(x[k], y[k])


def test_batches_shapes_and_determinism(clips):
  cfg = _cfg()
  a = _take(iter(pipeline.train_dataset(cfg, clips, global_batch_size=4, seed=3)), 4)
  b = _take(iter(pipeline.train_dataset(cfg, clips, global_batch_size=4, seed=3)), 4)
  c = _take(iter(pipeline.train_dataset(cfg, clips, global_batch_size=4, seed=4)), 1)
  _equal(a, b)
  assert not np.array_equal(a[0]["audio"], c[0]["audio"])
  assert a[0]["image"].shape == (4, 56, 56, 3) and a[0]["image"].dtype == np.uint8
  assert a[0]["audio"].shape == (4, 129, 100, 1) and a[0]["audio"].dtype == np.float32
  assert np.all(np.isfinite(a[0]["audio"]))
  labels = np.concatenate([x["label"] for x in a[:3]])  # 12 = two epochs of 6
  assert labels.sum() == 6 and not np.concatenate([x["replaced"] for x in a]).any()


def test_resume_with_state_and_orbax(clips, tmp_path):
  ds = pipeline.train_dataset(_cfg(), clips, global_batch_size=4, seed=0)
  full = _take(iter(ds), 6)
  it = iter(ds)
  _take(it, 3)
  state = it.get_state()
  with ocp.CheckpointManager(str(tmp_path / "ckpt")) as mgr:
    mgr.save(3, args=ocp.args.Composite(data=grain.checkpoint.CheckpointSave(it)))
    mgr.wait_until_finished()
    resumed = iter(ds)
    resumed.set_state(state)
    _equal(_take(resumed, 3), full[3:])
    restored = iter(ds)
    mgr.restore(3, args=ocp.args.Composite(data=grain.checkpoint.CheckpointRestore(restored)))
    _equal(_take(restored, 3), full[3:])


def test_resume_with_two_workers(clips):
  # One worker iterator only: closing one costs Grain's process-join timeout.
  ds = pipeline.train_dataset(_cfg(num_workers=2), clips, global_batch_size=2, seed=1)
  serial = _take(iter(pipeline.train_dataset(_cfg(), clips, global_batch_size=2, seed=1)), 5)
  it = iter(ds)
  _equal(_take(it, 2), serial[:2])
  state = it.get_state()
  _equal(_take(it, 3), serial[2:])
  it.set_state(state)
  _equal(_take(it, 3), serial[2:])


def test_positive_audio_and_frame_match_time(clips):
  cfg = _cfg(augment=False, image_size=64)  # whole frame, so the frame's index is readable
  for seed in range(4):
    ex = pipeline.train_example(clips, seed, 1, 0, np.random.default_rng(seed), cfg)
    spec = pairs.sample_pair(clips, seed, 1, np.random.default_rng(seed), cfg)
    assert ex["label"] == 1 and spec.audio_center == spec.frame_time
    assert mf.frame_index_of(ex["image"]) == round(spec.frame_time * 8)
    # Peak of the 440 Hz tone in the middle STFT frame: amplitude * sum(hann) / 2.
    peak = np.exp(ex["audio"][:, 50, 0]).max() / (cfg.win_length / 4)
    assert abs(peak - mf.amplitude_at(spec.frame_time, 3.0)) < 0.04


def test_broken_file_is_replaced(clips, tmp_path):
  bad = tmp_path / "broken.mp4"
  bad.write_bytes(os.urandom(2000))
  table = list(clips) + [Clip(str(bad), str(bad), 3.0, 8.0, 16000, 1, clip_id="bad")] * 2
  batches = _take(iter(pipeline.train_dataset(_cfg(), table, global_batch_size=4, seed=0)), 6)
  replaced = np.concatenate([b["replaced"] for b in batches])
  assert replaced.sum() >= 2 and set(replaced.tolist()) <= {0, 1}


def test_replaced_clips_are_listed_with_file_and_reason(clips, tmp_path):
  """A file damaged in the middle (past the probe) makes its examples fail to decode: each
  is replaced, counted in `replaced`, and listed with the file and the reason."""
  from test_decode import damaged_in_the_middle  # pylint: disable=g-import-not-at-top
  bad = damaged_in_the_middle(str(tmp_path / "bad.mp4"))
  table = list(clips) + [Clip(bad, bad, 6.0, 8.0, 16000, 1, clip_id="bad")] * 6
  log = tmp_path / "replaced_clips.tsv"
  batches = _take(iter(pipeline.train_dataset(_cfg(), table, global_batch_size=4, seed=0,
                                              failure_log=str(log))), 10)
  replaced = int(np.concatenate([b["replaced"] for b in batches]).sum())
  lines = log.read_text().splitlines()
  assert replaced >= 1 and len(lines) >= replaced
  for line in lines:
    position, reason, files = line.split("\t")
    assert int(position) >= 0 and bad in files
    assert any(why in reason for why in ("no video frame at", "audio missing",
                                         "decoding failed")), reason


def test_a_decode_past_the_time_limit_is_tried_again_then_stops_never_replaced(
    clips, monkeypatch):
  """What a seed trains on must not depend on how busy the machine is: a decode that runs past
  data.per_file_timeout_s once is tried again and gives the example an unhurried decode gives;
  twice stops with one line naming the files and the setting, and no clip is replaced."""
  cfg = _cfg()
  expected = pipeline.train_example(clips, 2, 1, 7, np.random.default_rng(5), cfg)
  real, calls = pipeline.decode_pair, []
  # Prefetch threads of earlier tests' datasets may still call decode_pair: only this
  # thread's calls are slowed and counted.
  this_thread = threading.get_ident()

  def slow(times_out):
    def decode_pair(*args):
      if threading.get_ident() != this_thread:
        return real(*args)
      calls.append(1)
      if len(calls) <= times_out:
        raise decode.DecodeTimeout("video decoding timed out")
      return real(*args)
    return decode_pair

  replaced = []
  monkeypatch.setattr(pipeline, "decode_pair", slow(1))
  got = pipeline.train_example(clips, 2, 1, 7, np.random.default_rng(5), cfg,
                               on_failure=lambda *a: replaced.append(a))
  assert len(calls) == 2 and not replaced and got["replaced"] == 0
  for key in expected:
    np.testing.assert_array_equal(got[key], expected[key])
  calls.clear()
  monkeypatch.setattr(pipeline, "decode_pair", slow(2))
  with pytest.raises(pipeline.DecodeStalled) as stalled:
    pipeline.train_example(clips, 2, 1, 7, np.random.default_rng(5), cfg,
                           on_failure=lambda *a: replaced.append(a))
  message = str(stalled.value)
  assert len(calls) == 2 and not replaced and "\n" not in message
  assert clips[2].path in message and "data.per_file_timeout_s (20 s) twice" in message


def test_eval_batches_fixed_padded_boxes(clips):
  cfg = _cfg()
  a = list(pipeline.eval_batches(cfg, clips, batch_size=5, seed=0))
  b = list(pipeline.eval_batches(cfg, clips, batch_size=5, seed=0))
  _equal(a, b)
  assert len(a) == 3  # 12 rows in pairs mode
  valid = np.concatenate([x["valid"] for x in a])
  assert valid.tolist() == [True] * 12 + [False] * 3
  labels = np.concatenate([x["label"] for x in a])[:12]
  assert labels.tolist() == [1, 0] * 6
  assert a[0]["clip_index"].tolist() == [0, 0, 1, 1, 2]
  assert a[0]["class_id"].tolist() == [0, 0, 1, 1, 0]
  # Box (0.25, 0.5, 0.75, 1.0): the whole frame resized to 56, no crop: the box unchanged.
  want = [0.25, 0.5, 0.75, 1.0]
  np.testing.assert_allclose(a[0]["target_box"][0], want, atol=1e-6)
  assert a[0]["distractor_boxes"].shape == (5, 2, 4)
  np.testing.assert_allclose(a[0]["distractor_boxes"][2, 0], want, atol=1e-6)  # clip 1: one
  assert np.all(a[0]["distractor_boxes"][2, 1] == -1)
  pos = list(pipeline.eval_batches(cfg, clips, batch_size=4, seed=0, mode="positives"))
  assert [len(x["label"]) for x in pos] == [4, 4] and np.concatenate(
      [x["valid"] for x in pos]).sum() == 6


def test_eval_pairs_with_several_frames_per_clip(clips):
  cfg = _cfg()
  one = list(pipeline.eval_rows(cfg, clips, seed=0))
  three = list(pipeline.eval_rows(cfg, clips, seed=0, frames_per_clip=3))
  assert len(three) == 6 * 3 * 2
  assert [r["label"] for r in three[:6]] == [1, 0, 1, 0, 1, 0]
  assert [r["clip_index"] for r in three[:7]] == [0] * 6 + [1]
  # Different frames of one clip; the frames' positives differ in picture and sound.
  first = three[:6]
  assert not np.array_equal(first[0]["image"], first[2]["image"])
  assert not np.array_equal(first[0]["audio"], first[2]["audio"])
  # The positives mode ignores frames_per_clip: one middle frame per clip, as retrieval needs.
  assert len(list(pipeline.eval_rows(cfg, clips, seed=0, mode="positives",
                                     frames_per_clip=3))) == 6
  assert len(one) == 12


@pytest.mark.parametrize("positives_only", [True, False])
def test_frame_ids_are_unique_across_processes(clips, positives_only):
  """The rows of all processes meet in one global batch: a frame id names one frame there."""
  cfg = _cfg()
  ids = []
  for process in range(2):
    it = iter(pipeline.train_dataset(cfg, clips, global_batch_size=4, seed=0,
                                     process_index=process, process_count=2,
                                     positives_only=positives_only))
    ids.append(np.concatenate([b["frame"] for b in _take(it, 3)]))
  assert not set(ids[0].tolist()) & set(ids[1].tolist()), ids


def test_extended_rows_give_each_frame_four_sounds(clips):
  cfg = _cfg()
  rows = list(pipeline.eval_rows(cfg, clips, seed=0, mode="extended"))
  pair_rows = list(pipeline.eval_rows(cfg, clips, seed=0, mode="pairs"))
  assert len(rows) == 4 * len(clips)
  for i in range(len(clips)):
    own, other, silence, noise = rows[4 * i:4 * i + 4]
    assert [r["audio_kind"] for r in (own, other, silence, noise)] == [0, 1, 2, 3]
    assert [r["label"] for r in (own, other, silence, noise)] == [1, 0, 0, 0]
    # One frame, four sounds: the other video's is the AVC negative of the same frame.
    for r in (other, silence, noise):
      np.testing.assert_array_equal(r["image"], own["image"])
    np.testing.assert_array_equal(other["wave"], pair_rows[2 * i + 1]["wave"])
    np.testing.assert_array_equal(own["wave"], pair_rows[2 * i]["wave"])
    assert not silence["wave"].any()
    assert np.sqrt(np.mean(noise["wave"] ** 2)) == pytest.approx(pipeline.NOISE_RMS, rel=0.05)
