"""Each metadata format reader, and format detection, on small datasets the tests write; the
clip table's JSON form."""

import json
import os

import pytest

import media_factory as mf
from data_pipeline import formats
from data_pipeline.clips import Clip
from data_pipeline.formats import common, flickr


def _by_id(listing):
  return {e.clip_id: e for e in listing.entries}


@pytest.mark.parametrize("name,make", [
    ("folder", mf.make_folder_dataset), ("vggsound", mf.make_vggsound_dataset),
    ("audioset", mf.make_audioset_dataset), ("kinetics", mf.make_kinetics_dataset),
    ("flickr", mf.make_flickr_dataset), ("vggss", mf.make_vggss_dataset),
    ("embedded", mf.make_embedded_dataset)])
def test_detect(tmp_path, name, make):
  assert formats.detect(make(str(tmp_path / name))) == name


def test_detect_nothing(tmp_path):
  (tmp_path / "notes.txt").write_text("hello")
  assert formats.detect(str(tmp_path)) == ""
  assert formats.canonical("Flickr-SoundNet") == "flickr"


def test_metadata_files_match_by_extension_and_content(tmp_path):
  for name, text in [("b.CSV", "ok,1\n"), ("a.csv", "\ufeffok,2\n"), ("no.csv", "other\n"),
                     ("ok.txt", "ok\n"), ("skip.csv", "ok\n")]:
    (tmp_path / name).write_text(text, encoding="utf-8")
  (tmp_path / "binary.csv").write_bytes(b"\xff\xfe\x00ok")  # not UTF-8: no match, no error
  (tmp_path / "folder.csv").mkdir()

  def is_ok(path):
    return common.first_lines(path, 2)[0].startswith("ok")

  root = str(tmp_path)
  assert [os.path.basename(p) for p in common.metadata_files(
      root, ".csv", is_ok, skip=("skip.csv",))] == ["a.csv", "b.CSV"]
  assert [os.path.basename(p) for p in common.metadata_files(root, (".txt", ".csv"))] == [
      "a.csv", "b.CSV", "binary.csv", "no.csv", "ok.txt", "skip.csv"]
  # A named file is the one metadata file, whatever it holds.
  assert common.metadata_files(root, ".csv", is_ok, named="no.csv") == [
      os.path.join(root, "no.csv")]
  assert common.first_lines(os.path.join(root, "a.csv"), 2) == ["ok,2\n", ""]


@pytest.mark.parametrize("name,make", [
    ("vggsound", mf.make_vggsound_dataset), ("audioset", mf.make_audioset_dataset),
    ("kinetics", mf.make_kinetics_dataset), ("vggss", mf.make_vggss_dataset)])
def test_detect_ignores_unreadable_metadata_beside_it(tmp_path, name, make):
  root = make(str(tmp_path / name))
  for stray in ("0_stray.csv", "0_stray.json"):
    with open(os.path.join(root, stray), "wb") as f:
      f.write(b"\xff\xfe\x00 not text")
  assert formats.detect(root) == name
  assert formats.READERS[name].read(root).entries


def test_folder(tmp_path):
  root = mf.make_folder_dataset(str(tmp_path / "f"))
  entries = _by_id(formats.READERS["folder"].read(root))
  assert sorted(entries) == ["cat/c0", "dog/d0", "dog/d1", "dog/d2", "top"]
  assert entries["dog/d1"].labels == ("dog",) and entries["cat/c0"].labels == ("cat",)
  assert entries["top"].labels == () and entries["top"].split is None
  assert entries["dog/d1"].audio_path == entries["dog/d1"].path


def test_symlink_loops_and_second_paths_give_each_file_once(tmp_path):
  """A link back up the tree is followed once, not until the path is too long; a file reached
  by two paths is one clip, not two that may land in different splits."""
  root = mf.make_folder_dataset(str(tmp_path / "f"))
  os.symlink(root, os.path.join(root, "dog", "loop"))        # dog/loop -> the root itself
  os.symlink(os.path.join(root, "cat"), os.path.join(root, "kitten"))  # a second path
  entries = _by_id(formats.READERS["folder"].read(root))
  assert sorted(entries) == ["cat/c0", "dog/d0", "dog/d1", "dog/d2", "top"]


def test_folder_with_split_folders(tmp_path):
  for split, cls in [("train", "dog"), ("validation", "cat"), ("test", "dog")]:
    mf.write_video(str(tmp_path / f"x{split}.mp4"))
    os.makedirs(tmp_path / split / cls)
    os.replace(tmp_path / f"x{split}.mp4", tmp_path / split / cls / "a.mp4")
  entries = _by_id(formats.READERS["folder"].read(str(tmp_path)))
  assert {(e.split, e.labels) for e in entries.values()} == {
      ("train", ("dog",)), ("val", ("cat",)), ("test", ("dog",))}


def test_vggsound(tmp_path):
  root = mf.make_vggsound_dataset(str(tmp_path / "v"))
  listing = formats.READERS["vggsound"].read(root)
  entries = _by_id(listing)
  trimmed, full = entries["abc_000030"], entries["def_000001"]
  assert trimmed.path.endswith("abc_000030.mp4") and trimmed.start == 0 and trimmed.end is None
  assert trimmed.labels == ("dog barking",) and trimmed.split == "train"
  # A full video holds the 10 s segment from start_seconds on.
  assert full.path.endswith("def.mp4") and (full.start, full.end) == (1.0, 11.0)
  assert full.labels == ("cat purring, loud",) and full.split == "test"
  assert listing.skipped == [("zzz_000010", "missing file")]


def test_audioset(tmp_path):
  root = mf.make_audioset_dataset(str(tmp_path / "a"))
  listing = formats.READERS["audioset"].read(root)
  entries = _by_id(listing)
  assert entries["--aaa_000030"].labels == ("Speech", "Male speech, man speaking")
  assert entries["--aaa_000030"].split == "train" and entries["--ccc_000010"].split == "test"
  assert listing.skipped == [("--bbb_000000", "missing file")]
  assert listing.ontology["/m/09x0r"]["child_ids"] == ["/m/05zppz"]


def test_kinetics(tmp_path):
  root = mf.make_kinetics_dataset(str(tmp_path / "k"))
  listing = formats.READERS["kinetics"].read(root)
  entries = _by_id(listing)
  assert entries["kkk_000010_000020"].labels == ("playing violin",)
  assert entries["kkk_000010_000020"].split == "train"
  assert entries["mmm_000005_000015"].split == "val"
  assert listing.skipped == [("lll_000000_000010", "missing file")]


def test_flickr(tmp_path):
  root = mf.make_flickr_dataset(str(tmp_path / "fl"))
  listing = formats.READERS["flickr"].read(root)
  entries = _by_id(listing)
  test = entries["1001"]
  assert test.path.endswith("frames/1001.jpg") and test.audio_path.endswith("audio/1001.wav")
  assert test.split == "test" and entries["1002"].split == "train"
  # Median of three annotators' boxes on the 256 scale: (32, 64, 128, 192) / 256.
  assert test.target_boxes == (pytest.approx((32 / 256, 64 / 256, 128 / 256, 192 / 256)),)
  # Every annotator's box is kept, in file order, for the published ground-truth map.
  assert len(test.gt_boxes) == 3 and test.gt_consensus == 2
  for kept, written in zip(test.gt_boxes, mf.FLICKR_BOXES):
    assert kept == pytest.approx(tuple(v / 256 for v in written))
  assert entries["1002"].target_boxes == () and entries["1002"].gt_boxes == ()
  skipped = [(os.path.basename(p), r) for p, r in listing.skipped]
  assert skipped == [("1003.jpg", "missing audio file")]


def test_vggss(tmp_path):
  root = mf.make_vggss_dataset(str(tmp_path / "s"))
  listing = formats.READERS["vggss"].read(root)
  entries = _by_id(listing)
  video, still = entries["vid_000030"], entries["img_000010"]
  assert video.path.endswith(".mp4") and video.target_boxes == ((0.1, 0.2, 0.5, 0.6),)
  assert video.labels == ("dog barking",) and video.split == "test"
  # Both boxes are ground truth (their union: consensus 1).
  assert video.gt_boxes == ((0.1, 0.2, 0.5, 0.6), (0.6, 0.1, 0.9, 0.4))
  assert video.gt_consensus == 1 and still.gt_boxes == ((0.0, 0.0, 1.0, 0.5),)
  assert still.path.endswith(".jpg") and still.audio_path.endswith(".wav")
  assert still.target_boxes == ((0.0, 0.0, 1.0, 0.5),)  # clipped to the frame
  assert listing.skipped == [("gone_000000", "missing file")]


def test_embedded(tmp_path):
  root = mf.make_embedded_dataset(str(tmp_path / "e"))
  entries = _by_id(formats.READERS["embedded"].read(root))
  entry = entries["train/violin_000"]
  assert entry.labels == ("violin",) and entry.split == "train"
  assert len(entry.target_boxes) == 16 and entry.target_boxes[3] == pytest.approx(
      (0.1, 0.13, 0.5, 0.53))
  assert len(entry.distractor_boxes) == 1 and len(entry.distractor_boxes[0]) == 16
  assert {e.split for e in entries.values()} == {"train", "val", "test"}


def test_hash_split_is_deterministic_and_balanced():
  splits = [common.hash_split(f"clip{i}") for i in range(2000)]
  assert splits == [common.hash_split(f"clip{i}") for i in range(2000)]
  assert 0.75 < splits.count("train") / 2000 < 0.85
  assert 0.07 < splits.count("val") / 2000 < 0.13


def test_flickr_with_only_a_test_list(tmp_path):
  root = mf.make_flickr_dataset(str(tmp_path / "fl"))
  os.remove(os.path.join(root, "train_ids.txt"))
  with open(os.path.join(root, "flickr_test.csv"), "w") as f:
    f.write("file\n1001\n")  # a header row is not an id
  listing = formats.READERS["flickr"].read(root)
  assert {e.clip_id: e.split for e in listing.entries} == {"1001": "test", "1002": "train"}
  assert [r for _, r in listing.skipped] == ["missing audio file"]


def test_flickr_reads_bbox_elements_as_lvs_does(tmp_path):
  # <bbox> with named coordinates, and <bbox> read by position (the first child skipped, then
  # xmin, ymin, xmax, ymax), as the LVS / EZ-VSL evaluation reads it.
  path = tmp_path / "a.xml"
  path.write_text("<annotation><file>a.jpg</file>"
                  "<object><bbox><xmin>0</xmin><ymin>64</ymin><xmax>128</xmax><ymax>256</ymax>"
                  "</bbox></object>"
                  "<object><bbox><id>7</id><v>32</v><v>0</v><v>96</v><v>300</v></bbox></object>"
                  "<object><bbox><id>8</id><v>32</v></bbox></object></annotation>")
  assert flickr.read_boxes(str(path)) == [(0.0, 0.25, 0.5, 1.0), (0.125, 0.0, 0.375, 1.0)]


def test_clip_json_round_trip_and_older_tables():
  clip = Clip(path="a.jpg", audio_path="a.wav", duration=2.0, fps=None, audio_rate=16000,
              audio_channels=1, split="test", target_boxes=((0.1, 0.1, 0.5, 0.5),),
              gt_boxes=((0.1, 0.1, 0.5, 0.5), (0.2, 0.2, 0.6, 0.6)), gt_consensus=2)
  assert Clip.from_json(clip.to_json()) == clip
  # A table written before gt_boxes existed loads with no ground-truth boxes (the target box).
  old = json.loads(clip.to_json())
  del old["gt_boxes"], old["gt_consensus"]
  loaded = Clip.from_json(json.dumps(old))
  assert loaded.gt_boxes == () and loaded.gt_consensus == 1
  assert loaded.target_boxes == clip.target_boxes
