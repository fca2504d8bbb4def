"""L3's linear probe: the protocol on features whose answer is known, the audio-only dataset
layouts (ESC-50, UrbanSound8K, DCASE 2013, a sound folder) and --mode=probe end to end."""

import csv
import os
import wave

import numpy as np
import pytest

from avjax import config as config_lib
from avjax.evaluate import svm_probe
from avjax.train import linear_probe, loop
from data_pipeline import config as data_config
from data_pipeline import index
from data_pipeline.clips import Clip, DataError
from embedded_dataset import layouts


def test_separable_features_score_one_and_shuffled_labels_score_chance():
  rng = np.random.default_rng(0)
  labels = np.repeat(np.arange(4), 20)
  folds = svm_probe.stratified_folds(labels, 5, seed=0)
  assert sorted(np.unique(folds)) == [1, 2, 3, 4, 5]
  assert all(np.bincount(labels[folds == f]).tolist() == [4, 4, 4, 4] for f in range(1, 6))
  window_clip = np.repeat(np.arange(len(labels)), 3)  # 3 windows a clip
  separable = np.concatenate([3 * np.eye(4)[labels[window_clip]],
                              rng.normal(size=(len(window_clip), 20))], axis=1)
  result = svm_probe.svm_probe(separable, window_clip, labels, folds)
  assert result.fold_accuracy == [1.0] * 5 and result.mean_accuracy == 1.0
  assert set(result.chosen_c) <= set(svm_probe.C_GRID)
  # Features unrelated to the labels: no better than guessing one class in four.
  noise = svm_probe.svm_probe(rng.normal(size=separable.shape), window_clip,
                              rng.permutation(labels), folds)
  assert noise.mean_accuracy < 0.45
  majority = svm_probe.majority_probe(labels, folds)
  assert majority.folds == result.folds and majority.mean_accuracy == pytest.approx(0.25)
  draws = svm_probe.bootstrap_fold_means({"sep": result.hits, "maj": majority.hits}, folds, 200)
  assert np.all(draws["sep"] == 1.0) and 0.02 < draws["maj"].std() < 0.1


def test_window_scores_are_averaged_over_each_clip():
  # Clip 0 of class 0 has one window that looks like class 1 and two that look like class 0:
  # the clip is right by the average of its windows' scores.
  labels = np.array([0, 1] * 6)
  folds = np.repeat([1, 2, 3], 4)
  feats, owner = [], []
  for clip, label in enumerate(labels):
    for k in range(3):
      looks = 1 - label if (clip == 0 and k == 0) else label
      feats.append([1.0 if looks == 0 else -1.0, 0.01 * k])
      owner.append(clip)
  result = svm_probe.svm_probe(np.array(feats), np.array(owner), labels, folds, c_grid=(1.0,))
  assert result.hits.all()


def test_grid_pooling_takes_the_max_of_each_cell():
  rng = np.random.default_rng(1)
  maps = rng.normal(size=(2, 32, 24, 5)).astype(np.float32)
  pooled = svm_probe.grid_max_pool(maps).reshape(2, 4, 3, 5)
  for i in range(4):
    for j in range(3):  # L3's 32 x 24 map: 8 x 8 cells
      np.testing.assert_array_equal(pooled[:, i, j], maps[:, 8 * i:8 * i + 8,
                                                          8 * j:8 * j + 8].max(axis=(1, 2)))
  odd = rng.normal(size=(1, 9, 7, 2))  # cells overlap by a row where the grid does not divide
  pooled = svm_probe.grid_max_pool(odd).reshape(1, 4, 3, 2)
  np.testing.assert_allclose(pooled[0, 0, 0], odd[0, 0:3, 0:3].max(axis=(0, 1)), rtol=1e-6)
  np.testing.assert_allclose(pooled[0, 3, 2], odd[0, 6:9, 4:7].max(axis=(0, 1)), rtol=1e-6)
  assert svm_probe.grid_max_pool(np.zeros((3, 2, 2, 4))).shape == (3, 48)


@pytest.fixture(scope="module")
def esc50_dir(embedded_dir, tmp_path_factory):
  """The embedded recordings in the ESC-50 layout: 5 folds that keep each source whole."""
  out = str(tmp_path_factory.mktemp("esc50"))
  assert layouts.write_sounds(embedded_dir, out, layout="esc50") > 50
  return out


def _data_cfg(root, tmp_path, fmt=""):
  cfg = data_config.default_data_config()
  cfg.root, cfg.format, cfg.cache_dir = root, fmt, str(tmp_path / "cache")
  return cfg


def test_esc50_and_urbansound8k_layouts_index_as_sounds_with_their_folds(
    esc50_dir, embedded_dir, tmp_path):
  dataset = index.load_dataset(_data_cfg(esc50_dir, tmp_path), progress=False)
  assert dataset.format == "esc50" and not dataset.skipped
  with open(os.path.join(esc50_dir, "meta", "esc50.csv")) as f:
    rows = {r["filename"]: r for r in csv.DictReader(f)}
  assert len(dataset.clips) == len(rows)
  for clip in dataset.clips:
    row = rows[os.path.basename(clip.path)]
    assert clip.audio_only and clip.fps is None
    assert (clip.fold, clip.label) == (int(row["fold"]), row["category"])
  # Each sound source lies in one fold.
  assert {c.fold for c in dataset.clips} == {1, 2, 3, 4, 5}
  with pytest.raises(DataError, match="sounds without pictures") as err:
    index.require_pictures(dataset)
  assert "\n" not in str(err.value)

  us8k = str(tmp_path / "us8k")
  n = layouts.write_sounds(embedded_dir, us8k, splits=("test",), layout="urbansound8k")
  dataset = index.load_dataset(_data_cfg(us8k, tmp_path), progress=False)
  assert dataset.format == "urbansound8k" and len(dataset.clips) == n
  assert all(os.path.basename(os.path.dirname(c.path)) == f"fold{c.fold}"
             for c in dataset.clips)

  # The image probe's folder of videos: fold<K>/<class>/, each picture source in one fold.
  folds = str(tmp_path / "folds")
  n = layouts.write_folds(embedded_dir, folds, splits=("test",))
  dataset = index.load_dataset(_data_cfg(folds, tmp_path), progress=False)
  assert dataset.format == "folder" and len(dataset.clips) == n
  assert {c.fold for c in dataset.clips} == {1, 2} and not any(c.audio_only for c in dataset.clips)
  assert all(c.path.split(os.sep)[-3:-1] == [f"fold{c.fold}", c.label] for c in dataset.clips)


def _tone(path, seconds, freq):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  t = np.arange(int(seconds * 16000)) / 16000
  with wave.open(path, "wb") as f:
    f.setnchannels(1)
    f.setsampwidth(2)
    f.setframerate(16000)
    f.writeframes((0.3 * np.sin(2 * np.pi * freq * t) * 32767).astype(np.int16).tobytes())


def test_dcase2013_scenes_and_a_sound_folder_index_as_sounds(tmp_path):
  scenes = tmp_path / "dcase" / "scenes_stereo"
  for scene, freq in (("bus", 300), ("park", 900)):
    for k in (1, 3, 5, 7, 9, 11):
      _tone(str(scenes / f"{scene}{k:02d}.wav"), 1.5, freq + k)
  dataset = index.load_dataset(_data_cfg(str(tmp_path / "dcase"), tmp_path), progress=False)
  assert dataset.format == "dcase2013" and dataset.classes == ["bus", "park"]
  # Each scene's recordings in name order dealt to folds 1..5: 1,2,3,4,5,1.
  assert sorted(c.fold for c in dataset.clips if c.label == "bus") == [1, 1, 2, 3, 4, 5]

  folder = tmp_path / "sounds"
  _tone(str(folder / "fold1" / "beep" / "a.wav"), 1.2, 440)
  _tone(str(folder / "fold2" / "beep" / "b.wav"), 0.3, 450)  # shorter than a window: kept
  _tone(str(folder / "fold1" / "hum" / "c.wav"), 2.0, 120)
  dataset = index.load_dataset(_data_cfg(str(folder), tmp_path), progress=False)
  assert dataset.format == "sounds"
  assert sorted((c.label, c.fold) for c in dataset.clips) == [("beep", 1), ("beep", 2),
                                                              ("hum", 1)]
  short = next(c for c in dataset.clips if c.path.endswith("b.wav"))
  assert short.duration == pytest.approx(0.3, abs=0.01)
  assert linear_probe.window_count(short, 1.0) == 1


def test_probe_mode_scores_trained_untrained_and_spectrogram_on_the_official_folds(
    esc50_dir, tmp_path, embedded_dir):
  workdir = str(tmp_path / "l3")
  loop.train_and_evaluate(config_lib.get_config("l3:tiny", ["train.num_steps=2"]), workdir)
  config = config_lib.get_config("l3:tiny", [f"probe.root={esc50_dir}",
                                             f"data.cache_dir={tmp_path / 'cache'}",
                                             "probe.bootstrap_samples=100",
                                             "probe.c_grid=0.1"])  # no inner CV: quick
  report = linear_probe.probe_checkpoint(config, workdir, progress=False)
  assert report["step"] == 2 and report["folds"] == 5 and report["fold_kind"] == "official"
  assert report["windows"] >= 2 * report["clips"]  # the embedded clips last 3 s
  results = report["results"]
  assert set(results) == {"trained", "untrained", "spectrogram", "majority"}
  widths = config.model.width
  channels = max(4, int(round(512 * widths)))
  assert results["trained"]["dims"] == 4 * 3 * channels
  for row in results.values():
    assert 0 <= row["accuracy"] <= 1 and len(row["fold_accuracy"]) == 5
    assert row["ci95"][0] <= row["accuracy"] <= row["ci95"][1]
  assert "gain_over_untrained_ci95" in results["trained"]
  # The spectrogram's class cues (pitch, timbre) are far above the majority guess.
  assert results["spectrogram"]["accuracy"] > results["majority"]["accuracy"] + 0.2
  assert os.path.isfile(os.path.join(workdir, "probe", os.path.basename(esc50_dir) + ".json"))
  # The vision tower on the embedded videos' middle frames: no official folds, 5 stratified.
  config = config_lib.get_config("l3:tiny", [
      f"probe.root={embedded_dir}", "probe.modality=image", "probe.max_clips=30",
      f"data.cache_dir={tmp_path / 'cache'}", "probe.bootstrap_samples=100",
      "probe.c_grid=0.1"])
  report = linear_probe.probe_checkpoint(config, workdir, progress=False)
  assert report["modality"] == "image" and report["fold_kind"] == "stratified"
  assert report["windows"] == report["clips"] and report["input_shape"] == [32, 32]
  assert set(report["results"]) == {"trained", "untrained", "pixels", "majority"}
  assert report["results"]["pixels"]["dims"] == 8 * 8 * 3
  assert report["results"]["trained"]["dims"] == 4 * 3 * channels


@pytest.mark.parametrize("overrides, expected", [
    ([], "needs the dataset to probe: --config.probe.root=DIR"),
    (["probe.root=/x", "probe.grid=4"], "probe.grid needs two sizes"),
    (["probe.root=/x", "probe.c_grid=0.1,big"], "probe.c_grid numbers"),
])
def test_probe_settings_are_one_line_before_any_work(overrides, expected, tmp_path):
  config = config_lib.get_config("l3:tiny", overrides)
  with pytest.raises(config_lib.ConfigError, match=expected) as err:
    linear_probe.probe_checkpoint(config, str(tmp_path))
  assert "\n" not in str(err.value)


def test_a_clip_whose_sound_does_not_decode_is_left_out_and_named(tmp_path):
  good, bad = str(tmp_path / "good.wav"), str(tmp_path / "bad.wav")
  _tone(good, 2.2, 440)
  with open(bad, "wb") as f:
    f.write(b"RIFF" + bytes(range(256)) * 8)  # a header that goes nowhere
  clips = [Clip(path, path, 2.2, None, 16000, 1, labels=("x",), clip_id=name)
           for name, path in (("bad", bad), ("good", good), ("bad2", bad))]
  cfg = data_config.default_data_config()
  cfg.sample_rate, cfg.n_fft, cfg.win_length, cfg.hop_length, cfg.spec_frames = (
      8000, 128, 80, 80, 100)
  windows = linear_probe.clip_windows(clips, cfg, progress=False)
  assert [path for path, _ in windows.failed] == [bad, bad]
  assert windows.clip.tolist() == [1, 1]  # two whole seconds of the good clip
  assert windows.inputs.shape == (2, 65, 100, 1)
  kept, remapped = linear_probe._drop_failed(clips, windows)  # pylint: disable=protected-access
  assert [c.clip_id for c in kept] == ["good"] and remapped.clip.tolist() == [0, 0]
  with pytest.raises(DataError, match="no clip's sound could be decoded"):
    linear_probe.clip_windows(clips[::2], cfg, progress=False)
