"""The embed command line on real files: the arrays and their shapes, windows every --hop,
values equal to the export applied to the training pipeline's decoding, bad files skipped
with exit status 1, and a missing export refused with exit status 2. The exit-status checks
run main() in this process (flags restored after), sparing a JAX start each."""

import os
import subprocess
import sys

import cv2
import numpy as np
import pytest
from absl.testing import flagsaver

import avjax
import media_factory
import test_export
from avjax import embed
from data_pipeline import decode
import limits

HOP = 0.25


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory, worker_id, embedded_dir):
  del embedded_dir  # built before training
  return test_export.shared_export(tmp_path_factory, worker_id)[2]


@pytest.fixture(scope="module")
def media(tmp_path_factory):
  """(folder with a wav, a jpg, clips/clip.mp4 and a text file; a broken mp3 outside it)."""
  root = tmp_path_factory.mktemp("media")
  folder = root / "folder"
  (folder / "clips").mkdir(parents=True)
  media_factory.write_wav(str(folder / "tone.wav"), seconds=3.0, sample_rate=16000)
  media_factory.write_image(str(folder / "still.jpg"), size=(48, 40))
  media_factory.write_video(str(folder / "clips" / "clip.mp4"), seconds=3.0, fps=8)
  (folder / "notes.txt").write_text("not media: ignored in folders")
  broken = root / "broken.mp3"
  broken.write_bytes(b"\x00 not an mp3 " * 64)
  return str(folder), str(broken)


def _embed(*args):
  return subprocess.run([sys.executable, "-m", "avjax.embed", *args], capture_output=True,
                        text=True, timeout=limits.HANG_S, check=False)


def test_embeds_audio_images_and_videos_and_skips_a_bad_file(export_dir, media, tmp_path):
  folder, broken = media
  out = str(tmp_path / "out")
  proc = _embed(f"--model={export_dir}", f"--output_dir={out}", f"--hop={HOP}",
                "--batch_size=8", folder, broken)
  assert proc.returncode == 1, proc.stderr[-3000:]
  assert f"skipped {broken}" in proc.stderr and "Traceback" not in proc.stderr
  assert sorted(os.path.relpath(os.path.join(d, f), out)
                for d, _, files in os.walk(out) for f in files) == [
                    "clips/clip.mp4.npz", "still.jpg.npz", "tone.wav.npz"]
  model = avjax.load(export_dir)
  dim = 128

  # Audio: 1 s windows every HOP seconds, centred 0.5 .. 2.5 s, as the training decoder reads.
  wav = np.load(os.path.join(out, "tone.wav.npz"))
  assert sorted(wav) == ["audio_embedding", "audio_times"]
  times = wav["audio_times"]
  assert wav["audio_embedding"].shape == (9, dim)
  np.testing.assert_allclose(times[0], 0.5)
  np.testing.assert_allclose(np.diff(times), HOP)
  waves = np.stack([decode.read_audio(os.path.join(folder, "tone.wav"), t, 1.0, 8000)
                    for t in times])
  np.testing.assert_allclose(wav["audio_embedding"], model.embed_audio(waves), atol=1e-4)

  image = np.load(os.path.join(out, "still.jpg.npz"))
  assert sorted(image) == ["image_embedding"]
  np.testing.assert_allclose(
      image["image_embedding"],
      model.embed_image(decode.read_image(os.path.join(folder, "still.jpg"))), atol=1e-5)

  # Video: the audio windows, plus frames every second with their maps.
  path = os.path.join(folder, "clips", "clip.mp4")
  video = np.load(os.path.join(out, "clips", "clip.mp4.npz"))
  assert sorted(video) == ["audio_embedding", "audio_times", "frame_embedding", "frame_times",
                           "loc_maps"]
  assert video["audio_embedding"].shape == (9, dim)
  np.testing.assert_allclose(np.diff(video["audio_times"]), HOP)
  np.testing.assert_allclose(video["frame_times"], [0.0, 1.0, 2.0])
  frames = np.stack([decode.read_frame(path, t) for t in video["frame_times"]])
  frame_waves = np.stack([decode.read_audio(path, t, 1.0, 8000) for t in video["frame_times"]])
  np.testing.assert_allclose(video["frame_embedding"], model.embed_image(frames), atol=1e-5)
  assert video["loc_maps"].shape == (3, 2, 2)
  assert np.all((video["loc_maps"] >= 0) & (video["loc_maps"] <= 1))
  np.testing.assert_allclose(video["loc_maps"], model.localise(frames, frame_waves), atol=1e-4)


def _embed_in_process(capsys, *inputs, **flag_values) -> tuple[int, str]:
  """(exit status, stderr) of avjax.embed's main run here, its flags restored afterwards."""
  with flagsaver.flagsaver(**flag_values), pytest.raises(SystemExit) as info:
    embed.main(["avjax.embed", *inputs])
  return info.value.code, capsys.readouterr().err


def test_exit_status_is_zero_when_every_file_is_embedded(export_dir, media, tmp_path, capsys):
  folder, _ = media
  out = str(tmp_path / "out")
  status, err = _embed_in_process(capsys, os.path.join(folder, "tone.wav"), model=export_dir,
                                  output_dir=out)
  assert status == 0, err[-3000:]
  times = np.load(os.path.join(out, "tone.wav.npz"))["audio_times"]
  np.testing.assert_allclose(np.diff(times), 0.1)  # the default hop
  assert len(times) == 21


def test_missing_export_is_one_line_and_exit_status_two(tmp_path, capsys):
  status, err = _embed_in_process(capsys, str(tmp_path), model=str(tmp_path / "nowhere"))
  assert status == 2
  assert err.strip().splitlines() == [
      f"avjax.embed: no avjax export at {tmp_path / 'nowhere'}: folder not found"]


def test_localise_draws_the_video_frames_with_their_maps(export_dir, media, tmp_path, capsys):
  folder, _ = media
  out = str(tmp_path / "out")
  status, err = _embed_in_process(capsys, os.path.join(folder, "clips", "clip.mp4"),
                                  os.path.join(folder, "tone.wav"), model=export_dir,
                                  output_dir=out, localise=True)
  assert status == 0, err[-3000:]
  assert sorted(os.listdir(out)) == ["clip.mp4.localisation.png", "clip.mp4.npz", "tone.wav.npz"]
  picture = cv2.imread(os.path.join(out, "clip.mp4.localisation.png"))
  assert picture is not None and picture.shape[1] > 400 and picture.std() > 10
