"""load_dataset: formats end to end, splits, max_clips, the probe cache and user errors."""

import ast
import os

import pytest

import media_factory as mf
from data_pipeline import index
from data_pipeline.clips import Clip
from data_pipeline.clips import DataError
from data_pipeline.config import default_data_config
from data_pipeline.formats import embedded
from embedded_dataset import build as builder


def _cfg(root, cache, **kw):
  cfg = default_data_config()
  cfg.root, cfg.cache_dir = str(root), str(cache)
  for key, value in kw.items():
    cfg[key] = value
  return cfg


def test_folder_dataset_and_probe_cache(tmp_path, capsys):
  root = mf.make_folder_dataset(str(tmp_path / "f"))
  first = index.load_dataset(_cfg(root, tmp_path / "cache"))
  assert first.format == "folder" and first.probed == 5 and not first.skipped
  assert first.classes == ["cat", "dog"]
  by_id = {c.clip_id: c for c in first.clips}
  clip = by_id["cat/c0"]
  assert clip.fps == 8 and clip.audio_rate == 48000 and clip.audio_channels == 1
  assert clip.duration == pytest.approx(2.0, abs=0.05) and clip.audio_path == clip.path
  assert "indexed 5 clips" in capsys.readouterr().err
  assert os.path.isfile(tmp_path / "cache" / "probe_cache.json")
  # Second run: everything from the cache, same table.
  second = index.load_dataset(_cfg(root, tmp_path / "cache"))
  assert second.probed == 0 and second.clips == first.clips
  # A changed file (new mtime/size) is probed again, alone.
  mf.write_video(os.path.join(root, "dog", "d1.mp4"), seconds=2.5)
  third = index.load_dataset(_cfg(root, tmp_path / "cache"))
  assert third.probed == 1
  assert {c.clip_id: c for c in third.clips}["dog/d1"].duration == pytest.approx(2.5, abs=0.05)


def test_hash_splits_and_max_clips(tmp_path):
  root = tmp_path / "many"
  for i in range(24):
    mf.write_video(str(root / f"c{i:02d}.mp4"), seconds=1.5, size=(32, 32))
  full = index.load_dataset(_cfg(root, tmp_path / "cache"), progress=False)
  splits = {c.clip_id: c.split for c in full.clips}
  assert set(splits.values()) <= {"train", "val", "test"} and len(full.split("train")) >= 12
  capped = index.load_dataset(_cfg(root, tmp_path / "cache", max_clips=5), progress=False)
  assert len(capped.split("train")) == 5
  assert all(len(capped.split(s)) <= 5 for s in ("val", "test"))
  again = index.load_dataset(_cfg(root, tmp_path / "cache", max_clips=5), progress=False)
  assert [c.clip_id for c in again.clips] == [c.clip_id for c in capped.clips]
  # Splits do not depend on max_clips (hash of the clip id).
  assert all(splits[c.clip_id] == c.split for c in capped.clips)


def test_vggsound_segments(tmp_path):
  root = mf.make_vggsound_dataset(str(tmp_path / "v"))
  ds = index.load_dataset(_cfg(root, tmp_path / "cache"), progress=False)
  by_id = {c.clip_id: c for c in ds.clips}
  full = by_id["def_000001"]
  # The full 3 s video read from second 1: 2 s usable.
  assert full.start == 1.0 and full.duration == pytest.approx(2.0, abs=0.05)
  assert ds.skipped == [("zzz_000010", "missing file")]
  assert ds.classes == ["cat purring, loud", "dog barking"]


def test_val_carved_from_train_when_missing():
  clips = [Clip(path=f"{i}.mp4", audio_path=f"{i}.mp4", duration=2.0, fps=8.0, audio_rate=16000,
                audio_channels=1, split="test" if i % 5 == 0 else "train", clip_id=str(i))
           for i in range(200)]
  carved = index._carve_val(clips)  # pylint: disable=protected-access
  val = [c for c in carved if c.split == "val"]
  assert 5 <= len(val) <= 30 and all(clips[int(c.clip_id)].split == "train" for c in val)
  assert [c.clip_id for c in carved if c.split == "test"] == [
      c.clip_id for c in clips if c.split == "test"]
  assert index._carve_val(carved) == carved  # pylint: disable=protected-access


def test_audioset_ontology_and_flickr_boxes(tmp_path):
  audioset = index.load_dataset(
      _cfg(mf.make_audioset_dataset(str(tmp_path / "a")), tmp_path / "cache"), progress=False)
  assert audioset.ontology is not None and "/m/05zppz" in audioset.ontology
  assert audioset.split("test")[0].labels == ("Speech",)
  flickr = index.load_dataset(
      _cfg(mf.make_flickr_dataset(str(tmp_path / "fl")), tmp_path / "cache"), progress=False)
  clip = flickr.split("test")[0]
  assert clip.fps is None and clip.path.endswith(".jpg") and clip.audio_path.endswith(".wav")
  assert clip.audio_rate == 16000 and clip.duration == pytest.approx(2.0)
  assert len(clip.target_boxes) == 1


def test_embedded_boxes_kept(tmp_path):
  root = mf.make_embedded_dataset(str(tmp_path / "e"))
  ds = index.load_dataset(_cfg(root, tmp_path / "cache", format="embedded"), progress=False)
  clip = {c.clip_id: c for c in ds.clips}["train/violin_000"]
  assert len(clip.target_boxes) == 16 and clip.distractor_boxes[0][0] == (0.6, 0.6, 0.9, 0.9)
  assert [len(ds.split(s)) for s in ("train", "val", "test")] == [2, 1, 1]


def test_empty_root_uses_the_built_embedded_dataset(tmp_path, monkeypatch):
  # In data.cache_dir when set, else in $AVJAX_DATA; the builder's default is the same folder.
  in_cache = mf.make_embedded_dataset(str(tmp_path / "cache" / embedded.dir_name()))
  ds = index.load_dataset(_cfg("", tmp_path / "cache"), progress=False)
  assert ds.format == "embedded" and ds.root == in_cache and len(ds.clips) == 4
  monkeypatch.setenv("AVJAX_DATA", str(tmp_path / "data"))
  in_data = mf.make_embedded_dataset(str(tmp_path / "data" / embedded.dir_name()))
  assert index.load_dataset(_cfg("", ""), progress=False).root == in_data
  monkeypatch.setattr(builder, "build", lambda *a, **k: pytest.fail("rebuilt a built dataset"))
  assert builder.ensure_embedded() == in_data


def test_empty_root_not_built_is_one_line_naming_the_build(tmp_path, monkeypatch):
  monkeypatch.setenv("AVJAX_DATA", str(tmp_path / "data"))
  (tmp_path / "cache").mkdir()
  with pytest.raises(DataError) as e:
    index.load_dataset(_cfg("", tmp_path / "cache"), progress=False)
  expected = tmp_path / "cache" / embedded.dir_name()
  message = str(e.value)
  assert "\n" not in message and "not built" in message
  assert f"python -m embedded_dataset --out {expected}" in message
  with pytest.raises(DataError) as e:  # the default folder, the one ./run.sh builds
    index.load_dataset(_cfg("", ""), progress=False)
  message = str(e.value)
  assert "\n" not in message and str(tmp_path / "data" / embedded.dir_name()) in message
  assert "`./run.sh demo` or `python -m embedded_dataset`" in message
  # Nothing was built or started.
  assert os.listdir(tmp_path / "cache") == [] and not (tmp_path / "data").exists()


def test_library_never_imports_the_builder_or_the_benchmarks():
  repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  outside = ("embedded_dataset", "benchmarks")
  for package in ("avjax", "data_pipeline"):
    for folder, _, files in os.walk(os.path.join(repo, package)):
      for name in (f for f in files if f.endswith(".py")):
        path = os.path.join(folder, name)
        with open(path) as f:
          tree = ast.parse(f.read(), path)
        for node in ast.walk(tree):
          modules = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
          for module in modules:
            assert module.split(".")[0] not in outside, f"{path} imports {module}"


def test_user_errors(tmp_path):
  with pytest.raises(DataError, match="does not exist"):
    index.load_dataset(_cfg(tmp_path / "nope", tmp_path / "cache"))
  (tmp_path / "notes").mkdir()
  (tmp_path / "notes" / "readme.txt").write_text("hi")
  with pytest.raises(DataError, match=r"no dataset found .*readme\.txt"):
    index.load_dataset(_cfg(tmp_path / "notes", tmp_path / "cache"))
  with pytest.raises(DataError, match="unknown data format 'youtube8m'"):
    index.load_dataset(_cfg(tmp_path / "notes", tmp_path / "cache", format="youtube8m"))
  with pytest.raises(DataError, match="does not look like vggsound"):
    index.load_dataset(_cfg(tmp_path / "notes", tmp_path / "cache", format="vggsound"))
