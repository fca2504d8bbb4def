"""Embeds media files with an export: one .npz of embeddings per input file.

  python -m avjax.embed --model=EXPORT_DIR INPUT... [--output_dir=embeddings] [--hop=0.1]
      [--frame_hop=1.0] [--batch_size=64]

INPUTs are files or folders (searched recursively) of audio (wav, flac, ogg, mp3, m4a, aac,
opus, ...), images (jpg, png, bmp, webp) and videos (mp4, webm, mkv, avi, mov, mpg, flv, ...;
data_pipeline.media lists them all). Each input INPUT writes OUTPUT_DIR/NAME.npz, where NAME
is the file's name with its extension (clip.mp4 -> clip.mp4.npz, so clip.wav and clip.mp4
never collide), and for files found in a folder its path relative to that folder
(DIR/a/clip.mp4 -> OUTPUT_DIR/a/clip.mp4.npz).

Arrays in each .npz (D is the export's embedding size; L3-Net's are tower features):

  audio_embedding  float32 [N, D]     audio and video files: one per audio window of
                                      audio_seconds (1 s), every --hop seconds
  audio_times      float64 [N]        the centre of each window in seconds (first: 0.5 s);
                                      windows lie inside the file, except a file shorter
                                      than a window, which gets one zero-padded window
  image_embedding  float32 [1, D]     image files
  frame_embedding  float32 [M, D]     video files: the frame shown at each frame time
  frame_times      float64 [M]        0, frame_hop, 2 frame_hop, ... up to the last frame
  loc_maps         float32 [M, h, w]  AVOL-Net videos with sound: where in each frame the
                                      sound of the window centred on the frame comes from

With --localise, such a video also gets OUTPUT_DIR/NAME.localisation.png beside its .npz.

Audio is decoded, down-mixed and resampled chunk by chunk (data_pipeline.stream), so a long
file runs in bounded memory; windows are batched across files. Files that cannot be read are
reported on stderr and skipped. Exit status: 0 when every input was embedded, 1 when any
failed, 2 when the export cannot be loaded or the command line is wrong.
"""

from __future__ import annotations

import collections
import os
import sys

import numpy as np
from absl import app
from absl import flags
import tqdm

from data_pipeline import decode
from data_pipeline import media
from data_pipeline import stream

FLAGS = flags.FLAGS
flags.DEFINE_string("model", None, "Export folder (python -m avjax.main --mode=export).")
flags.DEFINE_string("output_dir", "embeddings", "Where the .npz files go.")
flags.DEFINE_float("hop", 0.1, "Seconds between audio windows.")
flags.DEFINE_float("frame_hop", 1.0, "Seconds between video frames.")
flags.DEFINE_integer("batch_size", 64, "Windows or frames per call of the net.")
flags.DEFINE_bool("localise", False, "Also draw NAME.localisation.png for AVOL-Net videos "
                  "with sound: up to 8 frames, evenly spaced, with the map of their sound.")


def find_inputs(paths):
  """([(file, output name)], [(path, reason)]): folders walked, sorted, media only."""
  found, bad = [], []
  for path in paths:
    if os.path.isdir(path):
      for root, dirs, files in os.walk(path):
        dirs.sort()
        for name in sorted(files):
          if media.media_kind(name):
            full = os.path.join(root, name)
            found.append((full, os.path.relpath(full, path)))
    elif not os.path.exists(path):
      bad.append((path, "no such file or folder"))
    elif not media.media_kind(path):
      bad.append((path, "unsupported file type"))
    else:
      found.append((path, os.path.basename(path)))
  return found, bad


class _Batch:
  """One call's outputs (device arrays), fetched to the host once, when first needed."""

  def __init__(self, *arrays):
    self.arrays, self._host = arrays, None

  def row(self, part: int, i: int) -> np.ndarray:
    if self._host is None:
      self._host = [None if a is None else np.asarray(a) for a in self.arrays]
    return self._host[part][i]


class _Job:
  """One input file: its reader, its results so far and where they go."""

  def __init__(self, path: str, out_path: str, kind: str):
    self.path, self.out_path, self.kind = path, out_path, kind
    self.reader = None
    self.results = collections.defaultdict(list)  # kind -> [(time, batch, row)]
    self.pending = 0
    self.done_reading = False
    self.failed = None
    self.duration = 0.0  # header seconds, for the progress bar
    self.frames = None   # a figures.FrameSampler of the network images, with --localise


class Embedder:
  """Feeds the files' windows and frames to the net in fixed-size batches, across files."""

  def __init__(self, model, output_dir: str, hop: float, frame_hop: float, batch_size: int,
               localise: bool = False):
    self.model, self.output_dir = model, output_dir
    self.hop, self.frame_hop, self.batch_size = hop, frame_hop, batch_size
    self.queues = {"audio": [], "frame": [], "image": []}
    self.failures = []
    self.localise = localise  # also draw NAME.localisation.png for videos with maps
    p = model.preprocessing
    size = p["image_size"]
    self.blank_image = np.zeros((size, size, 3), np.uint8)
    self.blank_spec = np.zeros(media.spectrogram_shape(p), np.float32)
    # Output sizes without running the net, for files with no window or frame.
    import jax  # pylint: disable=g-import-not-at-top
    images = np.zeros((1, size, size, 3), np.uint8)
    specs = self.blank_spec[None]
    self.audio_dim = jax.eval_shape(model.audio_outputs, specs).shape[-1]
    emb, maps = jax.eval_shape(model.frame_outputs, images, specs)
    self.image_dim = emb.shape[-1]
    self.map_shape = tuple(maps.shape[1:]) if maps is not None else None

  def fail(self, job: _Job, reason: str) -> None:
    job.failed = reason
    self.failures.append((job.path, reason))
    for kind, queue in self.queues.items():
      self.queues[kind] = [item for item in queue if item[0] is not job]
    tqdm.tqdm.write(f"avjax.embed: skipped {job.path}: {reason}", file=sys.stderr)

  def _run(self, kind: str) -> None:
    """Runs the net on the first batch_size items of a queue (padded to batch_size)."""
    items, self.queues[kind] = (self.queues[kind][:self.batch_size],
                                self.queues[kind][self.batch_size:])
    pad = self.batch_size - len(items)
    if kind == "audio":
      specs = np.stack([it[2] for it in items] + [self.blank_spec] * pad)
      batch = _Batch(self.model.audio_outputs(specs))
    else:
      images = np.stack([it[2] for it in items] + [self.blank_image] * pad)
      if kind == "image":
        batch = _Batch(self.model.image_outputs(images))
      else:
        specs = np.stack([self.blank_spec if it[3] is None else it[3] for it in items]
                         + [self.blank_spec] * pad)
        batch = _Batch(*self.model.frame_outputs(images, specs))
    for row, (job, t, *_) in enumerate(items):
      job.results[kind].append((t, batch, row))
      job.pending -= 1
      self._maybe_finish(job)

  def _maybe_finish(self, job: _Job) -> None:
    if job.done_reading and not job.pending and not job.failed:
      self._write(job)

  def _write(self, job: _Job) -> None:
    def stack(kind, part, shape):
      rows = [batch.row(part, row) for _, batch, row in job.results[kind]]
      return np.stack(rows).astype(np.float32) if rows else np.zeros((0,) + shape, np.float32)

    def times(kind):
      return np.array([t for t, _, _ in job.results[kind]], np.float64)

    arrays = {}
    if job.kind == "image":
      arrays["image_embedding"] = stack("image", 0, (self.image_dim,))
    else:
      arrays["audio_embedding"] = stack("audio", 0, (self.audio_dim,))
      arrays["audio_times"] = times("audio")
    if job.kind == "video":
      arrays["frame_embedding"] = stack("frame", 0, (self.image_dim,))
      arrays["frame_times"] = times("frame")
      if self.map_shape is not None and job.reader.has_audio:
        arrays["loc_maps"] = stack("frame", 1, self.map_shape)
        if job.frames is not None and job.frames.items:
          self._draw(job, arrays["frame_times"], arrays["loc_maps"])
    os.makedirs(os.path.dirname(job.out_path), exist_ok=True)
    tmp = job.out_path + ".tmp"
    with open(tmp, "wb") as f:
      np.savez(f, **arrays)
    os.replace(tmp, job.out_path)
    job.results.clear()

  def _draw(self, job: _Job, frame_times: np.ndarray, maps: np.ndarray) -> None:
    from avjax.visualise import figures  # pylint: disable=g-import-not-at-top
    times = [t for t, _ in job.frames.items]
    rows = [int(np.argmin(np.abs(frame_times - t))) for t in times]
    fig = figures.localisation_sheet([p for _, p in job.frames.items], maps[rows], times,
                                     os.path.basename(job.path))
    figures.save(fig, os.path.splitext(job.out_path)[0] + ".localisation.png")

  def _reader(self, job: _Job) -> stream.MediaReader:
    p = self.model.preprocessing
    return stream.MediaReader(job.path, job.kind, sample_rate=p["sample_rate"],
                              window_seconds=p["audio_seconds"], hop=self.hop,
                              frame_hop=self.frame_hop, spectrogram=self.model.spectrogram,
                              preprocess_image=self.model.preprocess_image)

  def run(self, jobs: list, bar) -> None:
    for number, job in enumerate(jobs, 1):
      job.reader = self._reader(job)
      progressed = 0.0  # this file's seconds shown on the bar, at most its header duration
      try:
        if self.localise and job.kind == "video" and self.map_shape is not None:
          from avjax.visualise import figures  # pylint: disable=g-import-not-at-top
          job.frames = figures.FrameSampler(8)
        for item in job.reader.items():
          if item[0] == "frame" and job.frames is not None:
            job.frames.add(item[1], item[2])
          self.queues[item[0]].append((job,) + tuple(item[1:]))
          job.pending += 1
          if len(self.queues[item[0]]) >= self.batch_size:
            self._run(item[0])
          now = min(job.reader.position, job.duration)
          if now >= progressed + 1:
            bar.update(now - progressed)
            progressed = now
        job.done_reading = True
        self._maybe_finish(job)
      except Exception as err:  # pylint: disable=broad-except
        # One bad file must not stop the others; say what went wrong and go on.
        reason = media.failure_reason(err)
        if not isinstance(err, decode.DecodeError):
          reason = f"{type(err).__name__}: {reason}"
        self.fail(job, reason)
      bar.update(job.duration - progressed)
      bar.set_postfix(files=f"{number}/{len(jobs)}", failed=len(self.failures))
    for kind in self.queues:
      while self.queues[kind]:
        self._run(kind)
    bar.close()


def _duration(path: str, kind: str) -> float:
  """The header duration in seconds (0 for images and when unknown), for the progress bar."""
  if kind == "image":
    return 0.0
  try:
    return float(decode.media_info(path)["duration"] or 0.0)
  except Exception:  # pylint: disable=broad-except
    return 0.0  # the real error is reported when the file is read


def main(argv: list[str]) -> None:
  inputs = argv[1:]

  def usage(message: str):
    print(f"avjax.embed: {message}", file=sys.stderr)
    sys.exit(2)

  if not FLAGS.model:
    usage("--model is required: an export folder (python -m avjax.main --mode=export)")
  if not inputs:
    usage("no INPUT given: name media files or folders to embed")
  if FLAGS.hop <= 0 or FLAGS.frame_hop <= 0 or FLAGS.batch_size < 1:
    usage("--hop and --frame_hop must be > 0 and --batch_size >= 1")
  from avjax import export, runtime  # pylint: disable=g-import-not-at-top
  runtime.quiet_logs(FLAGS["verbosity"].present)
  runtime.enable_compile_cache()
  try:
    model = export.load(FLAGS.model)
  except export.ExportError as err:
    usage(str(err))

  found, bad = find_inputs(inputs)
  embedder = Embedder(model, FLAGS.output_dir, FLAGS.hop, FLAGS.frame_hop, FLAGS.batch_size,
                      FLAGS.localise)
  for path, reason in bad:
    embedder.failures.append((path, reason))
    print(f"avjax.embed: skipped {path}: {reason}", file=sys.stderr)
  jobs, claimed = [], {}
  for path, name in found:
    out_path = os.path.join(FLAGS.output_dir, name + ".npz")
    key = os.path.abspath(out_path)
    if key in claimed:
      if os.path.realpath(claimed[key]) != os.path.realpath(path):
        embedder.failures.append((path, f"its output {out_path} is taken by {claimed[key]}"))
        print(f"avjax.embed: skipped {path}: its output {out_path} is taken by {claimed[key]}",
              file=sys.stderr)
      continue
    claimed[key] = path
    job = _Job(path, out_path, media.media_kind(path))
    job.duration = _duration(path, job.kind)
    jobs.append(job)
  if not jobs and not bad:
    print("avjax.embed: no media files found in the inputs", file=sys.stderr)
    sys.exit(1)

  bar = tqdm.tqdm(total=sum(j.duration for j in jobs), unit="s", desc="media seconds",
                  disable=not jobs,
                  dynamic_ncols=True, bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f} s "
                  "[{elapsed}<{remaining}{postfix}]")
  embedder.run(jobs, bar)
  done = len(jobs) - sum(1 for j in jobs if j.failed)
  print(f"Embedded {done} of {len(jobs) + len(bad)} files into {FLAGS.output_dir}"
        + (f"; {len(embedder.failures)} failed" if embedder.failures else ""), file=sys.stderr)
  sys.exit(1 if embedder.failures else 0)


if __name__ == "__main__":
  app.run(main)
