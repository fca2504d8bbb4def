"""Pictures, video and report: overlays put colour where the map is, boxes where the boxes are,
the mp4 holds the frames and the sound, and the HTML report renders in headless Chromium."""

import json

import av
import cv2
import numpy as np

from avjax import metrics_file
from avjax.visualise import drawing, figures, report, video
import browser


def test_heat_overlay_is_red_where_the_map_peaks_and_blue_elsewhere():
  image = np.full((64, 64, 3), 128, np.uint8)
  loc_map = np.zeros((4, 4), np.float32)
  loc_map[0, 3] = 1.0  # top right
  out = drawing.heat_overlay(image, loc_map)
  top_right, bottom_left = out[4, 60].astype(int), out[60, 4].astype(int)
  assert top_right[0] > top_right[2] + 60, top_right      # red
  assert bottom_left[2] > bottom_left[0] + 60, bottom_left  # blue
  # On the absolute scale a map of 0.2 everywhere stays cold; min-max makes it flat zero.
  flat = np.full((4, 4), 0.2, np.float32)
  np.testing.assert_allclose(drawing.normalised_map(flat, 8, 8, absolute=True), 0.2, atol=1e-6)
  np.testing.assert_array_equal(drawing.normalised_map(flat, 8, 8), 0.0)


def test_boxes_are_drawn_where_they_are_and_missing_boxes_not_at_all():
  image = np.zeros((100, 100, 3), np.uint8)
  drawing.draw_box(image, (0.2, 0.3, 0.6, 0.8), drawing.TARGET_COLOUR, 1)
  green = np.all(image == drawing.TARGET_COLOUR, axis=-1)
  assert green[30, 20:61].all() and green[80, 20:61].all()   # top and bottom edges
  assert green[30:81, 20].all() and green[30:81, 60].all()   # left and right edges
  assert not green[50, 40] and not green[10, 10]             # inside and outside
  untouched = np.zeros((10, 10, 3), np.uint8)
  drawing.draw_box(untouched, (-1, -1, -1, -1), drawing.TARGET_COLOUR)
  assert not untouched.any()


def test_peak_marker_sits_on_the_maximum():
  image = np.zeros((80, 80, 3), np.uint8)
  loc_map = np.zeros((8, 8))
  loc_map[6, 1] = 1.0
  drawing.draw_peak(image, loc_map)
  ys, xs = np.nonzero(image.any(axis=-1))
  assert abs(np.median(xs) - 15) <= 1 and abs(np.median(ys) - 65) <= 1


def test_video_holds_every_frame_and_the_sound(tmp_path):
  colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)]
  frames = [np.full((64, 96, 3), colours[i % 4], np.uint8) for i in range(16)]
  t = np.arange(32000) / 16000
  sound = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
  path = video.write_video(str(tmp_path / "v.mp4"), frames, 8, sound, 16000)
  with av.open(path) as container:
    decoded = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
  with av.open(path) as container:
    audio = np.concatenate([f.to_ndarray().reshape(-1) for f in container.decode(audio=0)])
  assert len(decoded) == 16 and decoded[0].shape == (64, 96, 3)
  for i, frame in enumerate(decoded):
    np.testing.assert_allclose(frame.reshape(-1, 3).mean(0), colours[i % 4], atol=12)
  assert abs(len(audio) / 16000 - 2.0) < 0.1
  assert 0.3 < np.sqrt(np.mean(audio[4000:28000] ** 2)) < 0.4  # the sine's RMS is 0.354
  assert not (tmp_path / "v.mp4.tmp.mp4").exists()


def test_report_renders_its_table_picture_and_players_in_chromium(tmp_path):
  red = np.zeros((200, 300, 3), np.uint8)
  red[..., 0] = 255
  png = str(tmp_path / "red.png")
  cv2.imwrite(png, cv2.cvtColor(red, cv2.COLOR_RGB2BGR))
  page = report.Report("a test report")
  page.heading("Metrics")
  page.metrics_table({"avc_accuracy": 0.875, "ndcg30/im-aud": 0.5, "ndcg30/random": 0.25,
                      "note/x": "a note", "step": 3})
  page.image(png, "a red square")
  page.sounds([("a tone", np.sin(np.arange(8000) / 5.0).astype(np.float32))], 16000)
  path = page.write(str(tmp_path / "report.html"))

  dom = browser.rendered_dom(path)
  assert dom.count("<img") == 1 and dom.count("<audio") == 1
  assert "<td>ndcg30/im-aud</td>" in dom and "0.2500 (ndcg30/random)" in dom
  assert "avc_accuracy" in dom and "note/x: a note" in dom
  shot = browser.screenshot(path, str(tmp_path / "shot.png"))
  is_red = (shot[..., 0] > 200) & (shot[..., 1] < 60) & (shot[..., 2] < 60)
  assert is_red.sum() > 0.8 * 200 * 300, is_red.sum()  # the inlined picture was drawn


def test_grid_and_curves_are_pictures(tmp_path):
  cell = figures.Cell(np.zeros((32, 32, 3), np.uint8), "x", figures.CORRECT)
  grid = figures.save(figures.grid_figure([[cell, None], [cell, cell]], "t"),
                      str(tmp_path / "g.png"))
  rows = [{"step": s, "loss": 1.0 / s, "accuracy": 0.5 + s / 100} for s in range(1, 20)]
  rows.append({"step": 19, "val/avc_accuracy": 0.7})
  curves = figures.save(figures.training_curves(rows), str(tmp_path / "c.png"))
  for path in (grid, curves):
    picture = cv2.imread(path)
    assert picture is not None and picture.shape[0] > 100 and picture.std() > 10


def test_dollar_signs_in_labels_are_drawn_as_text(tmp_path):
  """Class and file names are text: "$$" or "$5" must not reach matplotlib's mathtext, which
  stops the whole picture with a ParseException."""
  cell = figures.Cell(np.full((32, 32, 3), 200, np.uint8), "cash $$ register", figures.CORRECT)
  grid = figures.grid_figure([[cell]], "prices in $", row_labels=["$$"])
  path = figures.save(grid, str(tmp_path / "g.png"))
  assert cv2.imread(path) is not None


def test_curves_read_a_cut_short_and_resumed_metrics_file(tmp_path):
  """A kill can cut the last line; a run stopped before saving and then resumed logs its
  steps again. The reader keeps whole lines, each step once, in step order."""
  path = tmp_path / "metrics.jsonl"
  lines = [{"step": 1, "loss": 3.0}, {"step": 2, "loss": 2.0}, {"step": 3, "loss": 9.0},
           {"step": 2, "loss": 2.5}, {"step": 3, "loss": 1.5}]
  path.write_text("".join(json.dumps(r) + "\n" for r in lines) + '{"step": 4, "lo')
  rows = metrics_file.read_rows(str(path))
  assert [(r["step"], r["loss"]) for r in rows] == [(1, 3.0), (2, 2.5), (3, 1.5)]
  figures.save(figures.training_curves(rows), str(tmp_path / "c.png"))


def test_frame_sampler_keeps_evenly_spaced_frames_in_bounded_memory():
  sampler = figures.FrameSampler(keep=8)
  for t in range(100):
    sampler.add(float(t), np.zeros(1))
    assert len(sampler.items) <= 8
  times = [t for t, _ in sampler.items]
  assert times[0] == 0 and len(times) >= 4 and len(set(np.diff(times))) == 1
