"""The pictures and the HTML report of `--mode=eval`, drawn from what the evaluation collected.

    evaluation = avjax.train.evaluation.evaluate_checkpoint(config, workdir)
    report_path = write_eval_pictures(config, evaluation, workdir)

Writes into WORKDIR/eval/: training_curves.png, heatmaps.png and matched_mismatched.png
(AVOL-Net), retrieval_<direction>.png, localisation.mp4 (AVOL-Net) and report.html. The
gallery is the evaluation's "positives" rows (one centred frame + its own sound per clip, the
rows the metrics used, with their inputs kept for the first eval.picture_items): the split is
not decoded again. Only the localisation video decodes more (every frame of one clip).
"""

from __future__ import annotations

import dataclasses
import os
from typing import Callable, Optional, Sequence

import jax
import numpy as np
import tqdm

from avjax import metrics_file
from avjax.evaluate import knn, metrics
from avjax.evaluate.common import collect
from avjax.visualise import drawing, figures, report as report_lib, video
from data_pipeline import pairs, pipeline
from data_pipeline.clips import Clip

PICTURE_SIZE = 224   # side of each picture in the figures
VIDEO_SIZE = 336     # side of the localisation video
MAX_VIDEO_SECONDS = 10.0
OUTPUTS = ("training_curves.png", "heatmaps.png", "matched_mismatched.png",
           "retrieval_im-im.png", "retrieval_im-aud.png", "retrieval_aud-im.png",
           "retrieval_aud-aud.png", "localisation.mp4", "report.html")


@dataclasses.dataclass
class Gallery:
  """Eval rows with their pictures kept: inputs, labels, boxes and the net's outputs."""
  images: np.ndarray        # uint8 [N, S, S, 3]
  specs: np.ndarray         # float32 [N, F, T, 1]
  clip_index: np.ndarray    # [N]
  class_id: np.ndarray      # [N]
  target_box: np.ndarray    # [N, 4]
  distractor_boxes: np.ndarray  # [N, K, 4]
  outputs: dict             # the net's outputs per row (loc_map, embeddings, features)
  waves: np.ndarray         # float32 [N, n]: the sound each spectrogram was made from


def predict_rows(predict_fn: Callable, images: np.ndarray, specs: np.ndarray,
                 batch_size: int) -> dict:
  """predict_fn over any number of rows, padded to whole batches of batch_size (the size the
  eval step was compiled for)."""
  outs = []
  for start in range(0, len(images), batch_size):
    im, sp = images[start:start + batch_size], specs[start:start + batch_size]
    pad = batch_size - len(im)
    if pad:
      im = np.concatenate([im, np.repeat(im[-1:], pad, 0)])
      sp = np.concatenate([sp, np.repeat(sp[-1:], pad, 0)])
    out = predict_fn({"image": im, "audio": sp})
    outs.append({k: np.asarray(v)[:batch_size - pad] for k, v in out.items()})
  return {k: np.concatenate([o[k] for o in outs]) for k in outs[0]}


# What the evaluators collect per row that is not an output of the net.
_ROW_KEYS = ("clip_index", "class_id", "target_box", "distractor_boxes", "label", "valid",
             "gt_boxes", "gt_consensus")


def gallery_from_collected(collected: dict) -> Optional[Gallery]:
  """The rows of a "positives" collection whose inputs were kept; None if there are none."""
  if not len(collected.get("inputs/image", ())):
    return None
  n = len(collected["inputs/image"])
  outputs = {k: v[:n] for k, v in collected.items()
             if not k.startswith("inputs/") and k not in _ROW_KEYS}
  return Gallery(collected["inputs/image"], collected["inputs/audio"],
                 collected["clip_index"][:n], collected["class_id"][:n],
                 collected["target_box"][:n], collected["distractor_boxes"][:n], outputs,
                 collected["inputs/wave"])


def _with_boxes(g: Gallery) -> np.ndarray:
  return np.flatnonzero(np.all(g.target_box >= 0, axis=-1))


def _name(classes: Sequence[str], class_id: int) -> str:
  return classes[class_id] if 0 <= class_id < len(classes) else "unlabelled"


def _same_class_colour(a: int, b: int) -> Optional[str]:
  """Green when two items share a class, red when not, none when either is unlabelled."""
  if a < 0 or b < 0:
    return None
  return figures.CORRECT if a == b else figures.WRONG


def heatmap_figure(g: Gallery, classes: Sequence[str], n: int, cols: int = 4):
  """The first n test frames with a box: map, sounding object (green), silent objects (white),
  peak (cross); the caption says whether the peak hit the sounding object."""
  cells = []
  for i in _with_boxes(g)[:n]:
    loc_map = g.outputs["loc_map"][i]
    hit = bool(metrics.pointing_hits(loc_map[None], g.target_box[i][None])[0])
    cells.append(figures.Cell(
        drawing.annotated(g.images[i], loc_map, g.target_box[i], g.distractor_boxes[i],
                          PICTURE_SIZE),
        f"{_name(classes, g.class_id[i])}: {'hit' if hit else 'miss'}",
        figures.CORRECT if hit else figures.WRONG))
  rows = [cells[r:r + cols] for r in range(0, len(cells), cols)]
  return figures.grid_figure(rows, "Where the sound is (test frames with their own sound)")


def matched_mismatched_figure(g: Gallery, classes: Sequence[str], predict_fn: Callable,
                              batch_size: int, n_images: int = 3, n_other: int = 3):
  """[OtS]'s figure: each image with its own sound and with sounds of other classes, the map
  on one absolute scale (p(sound here)), so a net that listens lights up only for a match."""
  # Frames of different classes (any frames when unlabelled), each with its own sound and
  # the sounds of up to n_other other classes (other clips when unlabelled).
  picked, seen = [], set()
  for i in _with_boxes(g):
    if g.class_id[i] < 0 or g.class_id[i] not in seen:
      picked.append(i)
      seen.add(g.class_id[i])
    if len(picked) == n_images:
      break
  plan = []
  for i in picked:
    others, other_classes = [], {g.class_id[i]}
    for j in range(len(g.images)):
      fresh = g.class_id[j] < 0 or g.class_id[j] not in other_classes
      if j != i and fresh and len(others) < n_other:
        others.append(j)
        other_classes.add(g.class_id[j])
    plan += [(i, j) for j in [i] + others]
  if not plan:
    return None
  maps = predict_rows(predict_fn, np.stack([g.images[i] for i, _ in plan]),
                      np.stack([g.specs[j] for _, j in plan]), batch_size)["loc_map"]
  rows = []
  for (i, j), loc_map in zip(plan, maps):
    if i == j:
      rows.append([figures.Cell(drawing.annotated(g.images[i], None, g.target_box[i], (),
                                                  PICTURE_SIZE), "frame")])
    caption = ("own sound: " if i == j else "sound of: ") + _name(classes, g.class_id[j])
    rows[-1].append(figures.Cell(drawing.annotated(g.images[i], loc_map, size=PICTURE_SIZE,
                                                   absolute=True),
                                 f"{caption} (max {loc_map.max():.2f})"))
  return figures.grid_figure(rows, "Same frame, different sounds (colour = p(sound here), "
                             "one scale for all)")


def _vectors(g: Gallery, side: str) -> Optional[np.ndarray]:
  return g.outputs.get(f"{side}_embedding", g.outputs.get(f"{side}_features"))


def retrieval_figures(g: Gallery, classes: Sequence[str], n_queries: int = 3, k: int = 5):
  """{direction: (figure, [(query, [results])])}: each query's top-k in each direction,
  green when of the query's class. Cross-modal directions need a joint embedding."""
  if len(g.images) < 2:
    return {}  # nothing to retrieve
  joint = "image_embedding" in g.outputs and "audio_embedding" in g.outputs
  directions = [("im-im", "image", "image"), ("aud-aud", "audio", "audio")]
  if joint:
    directions[1:1] = [("im-aud", "image", "audio"), ("aud-im", "audio", "image")]
  queries, seen = [], set()
  for i in range(len(g.images)):
    if g.class_id[i] < 0 or g.class_id[i] not in seen:
      queries.append(i)
      seen.add(g.class_id[i])
    if len(queries) == n_queries:
      break
  out = {}
  for name, q_side, d_side in directions:
    # Every item is a query against all the others, as the nDCG evaluation ranks them.
    _, nearest = knn.top_k_neighbours(
        knn.l2_normalise(_vectors(g, q_side)[queries]), knn.l2_normalise(_vectors(g, d_side)),
        min(k, len(g.images) - 1), query_ids=np.array(queries))
    rows, picks = [], []
    for i, found in zip(queries, nearest):
      top = [int(j) for j in found if j >= 0]
      picks.append((i, top))
      row = [figures.Cell(_picture(g, i, q_side), f"query: {_name(classes, g.class_id[i])}")]
      for rank, j in enumerate(top, 1):
        row.append(figures.Cell(_picture(g, j, d_side), f"{rank}: {_name(classes, g.class_id[j])}",
                                _same_class_colour(g.class_id[i], g.class_id[j])))
      rows.append(row)
    title = (f"Retrieval {name}: nearest of {len(g.images)} ({q_side} query, {d_side} "
             "results)")
    out[name] = (figures.grid_figure(rows, title), picks)
  return out


def _picture(g: Gallery, i: int, side: str) -> np.ndarray:
  if side == "image":
    return drawing.upscale(g.images[i], PICTURE_SIZE)
  return figures.spectrogram_picture(g.specs[i], PICTURE_SIZE)


def localisation_video(path: str, data_cfg, clips: Sequence[Clip], clip_index: int,
                       predict_fn: Callable, batch_size: int, write: bool = True
                       ) -> Optional[str]:
  """An mp4 of one clip: every frame with the map of the 1 s of sound centred on it, the
  sounding object's box, and the clip's own sound. None for a still image, or when not
  `write` (the other processes of a multi-host job, which only help run the net)."""
  clip = clips[clip_index]
  if not clip.fps:
    return None
  seconds = min(clip.duration, MAX_VIDEO_SECONDS)
  times = clip.start + np.arange(int(seconds * clip.fps)) / clip.fps
  images, specs, boxes = [], [], []
  for t in tqdm.tqdm(times, desc="localisation video", leave=False, unit="frame"):
    fi = pairs.frame_index_at(clip, float(t))
    spec = pairs.PairSpec(clip_index, float(t), fi, clip_index, float(t), 1)
    image, audio, geo = pipeline.load_example(clips, spec, data_cfg, None)
    target, _ = pipeline.box_rows(clip, fi, geo, 0)
    images.append(image)
    specs.append(audio)
    boxes.append(target)
  maps = predict_rows(predict_fn, np.stack(images), np.stack(specs), batch_size)["loc_map"]
  if not write:
    return None
  # One absolute scale for every frame: the map fades where the sound stops.
  frames = [drawing.annotated(im, m, box, (), VIDEO_SIZE, absolute=True)
            for im, m, box in zip(images, maps, boxes)]
  sound = pipeline.clip_audio(clip, clip.start + seconds / 2, seconds, data_cfg)
  return video.write_video(path, frames, clip.fps, sound, data_cfg.sample_rate)


def write_eval_pictures(config, evaluation, workdir: str) -> Optional[str]:
  """Writes the pictures and report.html of an `evaluation.Evaluation` into workdir/eval;
  returns the report's path.

  Every process runs the net (predict_fn gathers across processes); process 0 writes.
  """
  ev, data_cfg = config.eval, config.data
  clips, classes, predict_fn = evaluation.clips, evaluation.classes, evaluation.predict_fn
  results = evaluation.results
  out_dir = os.path.join(workdir, "eval")
  write = jax.process_index() == 0
  if write:  # a previous evaluation's pictures must not pass for this one's
    for name in OUTPUTS:
      if os.path.exists(os.path.join(out_dir, name)):
        os.remove(os.path.join(out_dir, name))
  positives = evaluation.collected.get("positives")
  if positives is None:  # no evaluator read the positives: collect them for the pictures
    positives = collect(evaluation.make_batches("positives"), predict_fn, desc="pictures",
                        keep_inputs=ev.picture_items)
  g = gallery_from_collected(positives)
  if g is None:
    print("No pictures: no clip of the split could be read.")
    return None
  has_map = "loc_map" in g.outputs and len(_with_boxes(g)) > 0
  rep = report_lib.Report(f"avjax {config.experiment}: step {results.get('step')} on the "
                          f"{results.get('split')} split")

  rep.heading("Metrics (each beside its baseline)")
  rep.metrics_table(results)

  history = metrics_file.read_rows(os.path.join(workdir, "metrics.jsonl"))
  if history and write:
    rep.heading("Training")
    rep.image(figures.save(figures.training_curves(history, config.experiment),
                           os.path.join(out_dir, "training_curves.png")),
              "Loss and balanced AVC accuracy of the training batches; validation AVC "
              "accuracy at each evaluation.")

  if has_map:
    heat = heatmap_figure(g, classes, ev.picture_clips)
    same_frame = matched_mismatched_figure(g, classes, predict_fn, ev.batch_size)
    first = int(g.clip_index[_with_boxes(g)[0]])
    mp4 = localisation_video(os.path.join(out_dir, "localisation.mp4"), data_cfg, clips,
                             first, predict_fn, ev.batch_size, write)
    if write:
      rep.heading("Localisation")
      rep.image(figures.save(heat, os.path.join(out_dir, "heatmaps.png")),
                "AVOL-Net's map for each frame with its own sound (min-max normalised, as "
                "the cIoU protocol scores it). Green box: the sounding object; white: silent "
                "objects; cross: the peak.")
      if same_frame is not None:
        rep.image(figures.save(same_frame, os.path.join(out_dir, "matched_mismatched.png")),
                  "One frame with its own sound and with sounds of other classes.")
      if mp4:
        rep.video(mp4, "Every frame of a test clip with the map (p(sound here), one scale) "
                  "of the second of sound centred on it, and the clip's sound.",
                  width=VIDEO_SIZE)
  elif write:
    rep.heading("Localisation")
    rep.text(f"{config.model.name} has no localisation map (only AVOL-Net does).", "note")

  retrieval = retrieval_figures(g, classes)
  if write:
    rep.heading("Retrieval")
    if "im-aud" not in retrieval:
      rep.text("No joint embedding (L3-Net): within-modality retrieval on tower features.",
               "note")
    for name, (fig, picks) in retrieval.items():
      rep.image(figures.save(fig, os.path.join(out_dir, f"retrieval_{name}.png")),
                f"{name}: each query's nearest items; green = same class as the query.")
      if name in ("aud-aud", "im-aud"):
        sounds = []
        for q, top in picks:
          if name == "aud-aud":
            sounds.append((f"query: {_name(classes, g.class_id[q])}", g.waves[q]))
          for rank, j in enumerate(top, 1):
            sounds.append((f"{name} result {rank} for the {_name(classes, g.class_id[q])} "
                           f"query: {_name(classes, g.class_id[j])}", g.waves[j]))
        rep.sounds(sounds, data_cfg.sample_rate)
    return rep.write(os.path.join(out_dir, "report.html"))
  return None
