"""Evaluators end to end on synthetic batches (as data_pipeline.pipeline.eval_batches makes them)
and toy models whose scores are known."""

import ml_collections
import numpy as np
import pytest

from avjax import config as config_lib
from avjax import evaluate
from avjax.errors import ConfigError
from avjax.evaluate import metrics, protocols, registry
from avjax.evaluate.avc import AvcEvaluator
from avjax.evaluate.common import Evaluator
from avjax.evaluate.localisation import LocalisationEvaluator, trivial_maps
from avjax.evaluate.quick_probe import QuickProbeEvaluator
from avjax.evaluate.retrieval import RetrievalEvaluator
from data_pipeline.clips import Clip

NUM_CLIPS, NUM_CLASSES, BATCH, SIZE = 150, 5, 32, 8
CLASSES = [f"class{c}" for c in range(NUM_CLASSES)]
CLASS_OF = np.arange(NUM_CLIPS) % NUM_CLASSES
CLIPS = [Clip(path=f"v{i}.mp4", audio_path=f"v{i}.mp4", duration=3.0, fps=8.0, audio_rate=16000,
              audio_channels=1, labels=(CLASSES[CLASS_OF[i]],), split="val")
         for i in range(NUM_CLIPS)]
# Target boxes in the image corners (never the centre); each clip's distractor is opposite.
CORNERS = np.array([[0, 0, .4, .4], [.6, 0, 1, .4], [0, .6, .4, 1], [.6, .6, 1, 1]], np.float32)


def make_batches(mode, num_clips=NUM_CLIPS, boxes=True, frames_per_clip=1):
  """Batches of the contract. The toy "content": image[..., 0, 0, 0] holds the frame's clip
  index and audio[..., 0, 0, 0] the audio's clip index (negatives: another clip). One frame
  per clip whatever frames_per_clip asks (the toy frames of a clip would all be the same)."""
  del frames_per_clip
  rng = np.random.default_rng(0)
  rows = np.arange(num_clips)
  audio_src = rows.copy()
  label = np.ones(num_clips, np.int32)
  kind = np.zeros(num_clips, np.int32)
  if mode == "pairs":
    rows = np.repeat(rows, 2)
    label = np.tile([1, 0], num_clips).astype(np.int32)
    audio_src = np.where(label == 1, rows, (rows + 1 + rng.integers(0, num_clips - 1,
                                                                    len(rows))) % num_clips)
    kind = 1 - label
  if mode == "extended":
    # Own sound, another clip's, silence (-1) and noise (-2): pipeline.pairs.AUDIO_KINDS.
    rows = np.repeat(rows, 4)
    kind = np.tile(np.arange(4), num_clips).astype(np.int32)
    label = (kind == 0).astype(np.int32)
    other = (rows + 1 + rng.integers(0, num_clips - 1, len(rows))) % num_clips
    audio_src = np.select([kind == 0, kind == 1, kind == 2], [rows, other, -1], -2)
  for start in range(0, len(rows), BATCH):
    idx = rows[start:start + BATCH]
    n = len(idx)
    pad = lambda x, fill: np.concatenate([x, np.full((BATCH - n,) + x.shape[1:], fill, x.dtype)])
    image = np.zeros((n, SIZE, SIZE, 3), np.uint8)
    image[:, 0, 0, 0] = idx
    audio = np.zeros((n, 5, 4, 1), np.float32)
    audio[:, 0, 0, 0] = audio_src[start:start + BATCH]
    target = CORNERS[idx % 4] if boxes else -np.ones((n, 4), np.float32)
    distractors = np.stack([CORNERS[3 - idx % 4], -np.ones((n, 4), np.float32)], axis=1)
    yield {
        "image": pad(image, 0), "audio": pad(audio, 0),
        "label": pad(label[start:start + BATCH], 0),
        "audio_kind": pad(kind[start:start + BATCH], 0),
        "class_id": pad(CLASS_OF[idx].astype(np.int32), -1),
        "clip_index": pad(idx.astype(np.int32), -1),
        "target_box": pad(target.astype(np.float32), -1),
        "distractor_boxes": pad(distractors.astype(np.float32), -1),
        "valid": pad(np.ones(n, bool), False),
    }


def toy_model(kind="avol", quality="perfect", calls=None):
  """predict_fn whose outputs follow the contract and whose scores are known."""
  rng = np.random.default_rng(1)

  def predict_fn(batch):
    if calls is not None:
      calls.append(1)
    frame, sound = batch["image"][:, 0, 0, 0].astype(int), batch["audio"][:, 0, 0, 0].astype(int)
    b = len(frame)
    same = (frame == sound) if quality != "inverted" else (frame != sound)
    one_hot = lambda clip: np.eye(NUM_CLASSES)[CLASS_OF[clip]].astype(np.float32)
    if quality == "noise":
      img, aud = rng.standard_normal((b, 16)), rng.standard_normal((b, 16))
    else:
      img = np.concatenate([one_hot(frame), 0.01 * rng.standard_normal((b, 11))], 1)
      aud = np.concatenate([one_hot(sound), 0.01 * rng.standard_normal((b, 11))], 1)
    out = {"logit": np.where(same, 4.0, -4.0).astype(np.float32),
           "image_features": img.astype(np.float32), "audio_features": aud.astype(np.float32)}
    if kind in ("ave", "avol"):
      out["image_embedding"] = metrics_normalise(img)
      out["audio_embedding"] = metrics_normalise(aud)
    if kind == "avol":
      # A 4x4 map lit on the target's corner cell: the peak is inside the target box.
      maps = np.zeros((b, 4, 4), np.float32)
      corner = frame % 4
      maps[np.arange(b), np.where(corner >= 2, 3, 0), np.where(corner % 2 == 1, 3, 0)] = 1.0
      # Logits as AVOL-Net gives them: +4 on the lit cell, -4 elsewhere; the map their sigmoid.
      out["loc_logits"] = 8 * maps - 4
      out["loc_map"] = 1 / (1 + np.exp(-out["loc_logits"]))
    return out

  return predict_fn


def metrics_normalise(x):
  return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _positives():
  return lambda: make_batches("positives")


def test_avc_perfect_and_inverted():
  ev = AvcEvaluator(lambda: make_batches("pairs"))
  assert dict(ev.run(toy_model()))["avc_accuracy"] == 1.0
  assert dict(ev.run(toy_model(quality="inverted")))["avc_accuracy"] == 0.0


def test_retrieval_perfect_is_one_and_shuffled_is_the_random_row():
  ev = RetrievalEvaluator(_positives(), CLIPS, CLASSES, k=30, query_chunk=64, db_chunk=50)
  perfect = dict(ev.run(toy_model("ave")))
  for direction in ("im-im", "im-aud", "aud-im", "aud-aud"):
    assert perfect[f"ndcg30/{direction}"] == pytest.approx(1.0)
  # 29 same-class others out of 149: a random rank holds a relevant item with p = 29/149, so
  # E[DCG@30] = 29/149 * sum_{i<=30} 1/log2(i+1); the ideal order fills only 29 ranks.
  disc = 1 / np.log2(np.arange(2, 32))
  assert perfect["ndcg30/random"] == pytest.approx(29 / 149 * disc.sum() / disc[:29].sum())
  shuffled = dict(ev.run(toy_model("ave", quality="noise")))
  for direction in ("im-im", "im-aud", "aud-im", "aud-aud"):
    assert shuffled[f"ndcg30/{direction}"] == pytest.approx(shuffled["ndcg30/random"], abs=0.05)


def test_retrieval_without_joint_embedding_uses_features_and_notes_it():
  out = dict(RetrievalEvaluator(_positives(), CLIPS, CLASSES).run(toy_model("l3")))
  assert out["ndcg30/im-im"] == pytest.approx(1.0) and out["ndcg30/aud-aud"] == pytest.approx(1.0)
  assert "ndcg30/im-aud" not in out and "ndcg30/aud-im" not in out
  assert "joint embedding" in out["note/retrieval"]


def test_retrieval_with_an_ontology():
  ontology = {"/m/r": {"name": "root", "child_ids": [f"/m/{c}" for c in CLASSES]}}
  ontology.update({f"/m/{c}": {"name": c, "child_ids": []} for c in CLASSES})
  out = dict(RetrievalEvaluator(_positives(), CLIPS, CLASSES, ontology).run(toy_model("ave")))
  assert out["ndcg30/im-im"] == pytest.approx(1.0)
  # Every other item has relevance 20 (same class) or 18 (sibling): random is close to 1.
  assert 0.9 < out["ndcg30/random"] < 1.0


def test_localisation_model_and_centre_baseline():
  out = dict(LocalisationEvaluator(_positives()).run(toy_model("avol")))
  assert out["loc/pointing"] == 1.0 and out["loc/distractor_pick"] == 0.0
  assert out["baseline/centre/loc/pointing"] == 0.0  # the centre is in no corner box
  assert out["loc/num_images"] == NUM_CLIPS
  for key in ("loc/ciou_ap50", "loc/auc", "loc/ciou_mean"):
    assert 0.0 <= out[key] <= 1.0 and 0.0 <= out[f"baseline/centre/{key}"] <= 1.0
  assert out["loc/ciou_mean"] > out["baseline/centre/loc/ciou_mean"]
  # A map that peaks on the distractor's corner.
  flipped = toy_model("avol")
  def on_distractor(batch):
    res = flipped(batch)
    for key in ("loc_map", "loc_logits"):
      res[key] = res[key][:, ::-1, ::-1].copy()
    return res
  out = dict(LocalisationEvaluator(_positives()).run(on_distractor))
  assert out["loc/pointing"] == 0.0 and out["loc/distractor_pick"] == 1.0


def test_localisation_notes_without_map_or_boxes():
  assert "note/localisation" in dict(LocalisationEvaluator(_positives()).run(toy_model("ave")))
  no_boxes = LocalisationEvaluator(lambda: make_batches("positives", boxes=False))
  out = dict(no_boxes.run(toy_model("avol")))
  assert "target box" in out["note/localisation"] and "loc/pointing" not in out


def _with_annotators(batches):
  """The batches with two annotators' boxes per row: the target box and the box shifted right
  by 0.2, consensus 2 (Flickr-SoundNet's ground truth)."""
  for batch in batches:
    target = batch["target_box"]
    shifted = np.where(target >= 0, np.clip(target + [.2, 0, .2, 0], 0, 1), -1)
    yield dict(batch, gt_boxes=np.stack([target, shifted], 1).astype(np.float32),
               gt_consensus=np.full(len(target), 2, np.int32))


def test_localisation_scores_cious_against_the_rows_ground_truth():
  out = dict(LocalisationEvaluator(lambda: _with_annotators(make_batches("positives")))
             .run(toy_model("avol")))
  rows = list(_with_annotators(make_batches("positives")))
  valid = np.concatenate([b["valid"] for b in rows])
  gt = {k: np.concatenate([b[k] for b in rows])[valid] for k in ("gt_boxes", "gt_consensus")}
  maps = np.concatenate([toy_model("avol")(b)["loc_logits"] for b in rows])[valid]
  expected = protocols.ciou_per_image("ezvsl", maps, gt["gt_boxes"], gt["gt_consensus"])
  assert out["loc/ciou_mean"] == pytest.approx(expected.mean())
  # Pointing still uses the target box alone; the target-only cIoU differs.
  assert out["loc/pointing"] == 1.0
  target_only = dict(LocalisationEvaluator(_positives()).run(toy_model("avol")))
  assert out["loc/ciou_mean"] != pytest.approx(target_only["loc/ciou_mean"])


def test_probe_without_labelled_clips_gives_a_note():
  def unlabelled():
    for batch in make_batches("positives"):
      yield dict(batch, class_id=np.full_like(batch["class_id"], -1))
  out = dict(QuickProbeEvaluator(unlabelled).run(toy_model("l3")))
  assert "quick_probe/audio_accuracy" not in out and "0 class(es)" in out["note/quick_probe"]


def test_probe_separable_high_and_noise_near_chance():
  ev = QuickProbeEvaluator(_positives(), folds=5)
  good = dict(ev.run(toy_model("l3")))
  assert good["quick_probe/audio_accuracy"] > 0.95 and good["quick_probe/image_accuracy"] > 0.95
  assert good["quick_probe/chance"] == pytest.approx(0.2)
  noise = dict(ev.run(toy_model("l3", quality="noise")))
  assert abs(noise["quick_probe/audio_accuracy"] - 0.2) < 0.12
  assert abs(noise["quick_probe/image_accuracy"] - 0.2) < 0.12


def test_run_evaluators_end_to_end_and_table():
  cfg = evaluate.default_eval_config()
  cfg.batch_size = BATCH
  evaluators = evaluate.build_evaluators(cfg, make_batches, CLIPS, CLASSES)
  calls = []
  results = evaluate.run_evaluators(evaluators, toy_model("avol", calls=calls))
  # One pass over the pairs and ONE shared pass over the positives.
  assert len(calls) == -(-2 * NUM_CLIPS // BATCH) + -(-NUM_CLIPS // BATCH)
  expected = {"avc_accuracy", "ndcg30/im-im", "ndcg30/im-aud", "ndcg30/aud-im", "ndcg30/aud-aud",
              "ndcg30/random", "quick_probe/audio_accuracy", "quick_probe/image_accuracy", "quick_probe/chance"}
  for key in ("ciou_ap50", "auc", "ciou_mean", "pointing", "distractor_pick"):
    expected |= {f"loc/{key}", f"baseline/centre/loc/{key}"}
  assert expected <= set(results)
  assert results["avc_accuracy"] == 1.0 and results["ndcg30/im-aud"] == pytest.approx(1.0)
  table = evaluate.format_table({"step": 7, "split": "val", **results,
                                 "note/extra": "a note"})
  # Every result is in the table; the trivial maps' scores by their short name on their metric's
  # line (checked for loc/auc below).
  for key in [k for k in results if not k.startswith("baseline/")] + ["step", "split",
                                                                     "note/extra"]:
    assert key in table
  ndcg_line = next(line for line in table.splitlines() if line.startswith("ndcg30/im-im "))
  assert "ndcg30/random" in ndcg_line
  loc_line = next(line for line in table.splitlines() if line.startswith("loc/auc "))
  assert all(f"{name} {results[f'baseline/{name}/loc/auc']:.4f}" in loc_line
             for name in ("centre", "whole", "random"))
  probe_line = next(line for line in table.splitlines() if line.startswith("quick_probe/audio"))
  assert "quick_probe/chance" in probe_line


def test_every_metric_gets_an_interval_counts_and_a_gain():
  cfg = evaluate.default_eval_config()
  evaluators = evaluate.build_evaluators(cfg, make_batches, CLIPS, CLASSES)
  ids = [f"clip{i}" for i in range(len(CLIPS))]
  results, _ = evaluate.evaluate_all(evaluators, toy_model("avol", quality="noise"),
                                     clip_ids=ids, bootstrap_samples=200, seed=0)
  scoring = results["scoring"]
  for key in ("avc_accuracy", "ndcg30/im-aud", "loc/ciou_ap50", "loc/auc", "loc/pointing",
              "quick_probe/audio_accuracy", "baseline/random/loc/auc", "ndcg30/random"):
    low, high = scoring[key]["ci95"]
    assert low <= results[key] <= high, key
    assert scoring[key]["n_scored"] == scoring[key]["n_expected"] == len(CLIPS), key
  # Gains are read against the best trivial baseline, with a paired interval.
  loc = scoring["loc/auc"]
  best = max(results[f"baseline/{n}/loc/auc"] for n in ("centre", "whole", "random"))
  assert loc["gain"] == pytest.approx(results["loc/auc"] - best)
  assert loc["gain_ci95"][0] <= loc["gain"] <= loc["gain_ci95"][1]
  assert scoring["avc_accuracy"]["gain_over"] == "chance: balanced pairs"
  # The table shows them.
  table = evaluate.format_table(results)
  line = next(l for l in table.splitlines() if l.startswith("loc/auc "))
  assert f"{loc['gain']:+.4f}" in line and "over " in line


def _hears(deaf=False):
  """An AVOL-like predict_fn whose 5x5 logits cover the target's corner box (+4, +5 or +6 by
  clip) when the sound is the frame's own, and are -4 everywhere with any other sound (deaf:
  with every sound)."""
  def predict_fn(batch):
    frame, sound = batch["image"][:, 0, 0, 0].astype(int), batch["audio"][:, 0, 0, 0]
    logits = np.full((len(frame), 5, 5), -4.0, np.float32)
    for r, (f, a) in enumerate(zip(frame, sound)):
      if deaf or a == f:
        x0, y0 = (CORNERS[f % 4][:2] * 5 + 0.5).astype(int)
        logits[r, y0:y0 + 2, x0:x0 + 2] = 4.0 + f % 3
    return {"logit": logits.max(axis=(1, 2)), "loc_logits": logits,
            "loc_map": 1 / (1 + np.exp(-logits))}
  return predict_fn


def test_extended_benchmark_and_negative_audio():
  cfg = evaluate.default_eval_config()
  cfg.evaluators, cfg.loc_protocol = ("extended",), "slavc"
  (ev,) = evaluate.build_evaluators(cfg, make_batches, CLIPS, CLASSES)
  ids = [str(i) for i in range(NUM_CLIPS)]
  hears, _ = evaluate.evaluate_all([ev], _hears(), clip_ids=ids, bootstrap_samples=100)
  deaf, _ = evaluate.evaluate_all([ev], _hears(deaf=True), clip_ids=ids, bootstrap_samples=100)
  # Hearing: every sounding pair is found (cIoU >= 0.5) and ranks above every silent one
  # (SLAVC's AP sums from the second-highest confidence, and the toy maps tie in groups, so the
  # recall below that threshold is not counted: AP < 1).
  assert hears["ext/precision"] == 1.0 and hears["ext/ap"] > 0.85
  assert hears["ext/max_f1"] > 0.95 and hears["ext/max_f1_dense"] >= hears["ext/max_f1"]
  # Deaf: the same confidence with the wrong sound, so half the detections are false.
  assert deaf["ext/precision"] == 1.0 and deaf["ext/ap"] < 0.75
  assert deaf["ext/max_f1_dense"] == pytest.approx(2 / 3, abs=0.01)
  for kind in ("other", "silence", "noise"):
    # The threshold is the median of the positives' peaks (+5). With a wrong sound nothing is
    # above it; with the right one every frame has pixels above it (bicubic upsampling rises
    # past +5 even on the +4 and +5 plateaus), so no frame's two masks overlap.
    assert hears[f"neg/{kind}/pia"] == 0.0 and hears[f"neg/{kind}/iou"] == 0.0
    assert deaf[f"neg/{kind}/iou"] == 1.0
    assert deaf[f"neg/{kind}/pia"] == pytest.approx(deaf["neg/pia_positive"])
    assert hears["scoring"][f"neg/{kind}/pia"]["gain"] == pytest.approx(hears["neg/pia_positive"])
    assert hears["scoring"][f"neg/{kind}/iou"]["gain"] == 1.0
    # pIA's area over the curve: 1 when no frame lights up, a deaf net's equals its positives'.
    assert hears[f"neg/{kind}/pia_aoc"] == 1.0
    assert deaf[f"neg/{kind}/pia_aoc"] == pytest.approx(deaf["neg/pia_positive_aoc"])
    assert hears["scoring"][f"neg/{kind}/pia_aoc"]["gain"] == pytest.approx(
        1.0 - hears["neg/pia_positive_aoc"])
  assert hears["neg/pia_positive"] > 0 and hears["neg/threshold"] == 5.0
  assert hears["neg/pia_positive_aoc"] < 1.0
  # Trivial maps ignore the sound: their AP is that of a deaf net.
  assert hears["baseline/centre/ext/ap"] < 0.75
  assert hears["scoring"]["ext/ap"]["gain"] > 0.2
  assert "ext/ap" in evaluate.format_table(hears)


def test_positives_evaluators_read_the_extended_pass_when_both_run():
  cfg = evaluate.default_eval_config()
  cfg.batch_size, cfg.loc_protocol = BATCH, "slavc"
  cfg.evaluators = ("localisation",)
  modes = []
  def recording_batches(mode, **options):
    modes.append(mode)
    return make_batches(mode, **options)
  alone, _ = evaluate.evaluate_all(evaluate.build_evaluators(cfg, make_batches, CLIPS, CLASSES),
                                   _hears(), keep_inputs={"positives": 3})
  cfg.evaluators = ("localisation", "extended")
  evaluators = evaluate.build_evaluators(cfg, recording_batches, CLIPS, CLASSES)
  both, collected = evaluate.evaluate_all(evaluators, _hears(), keep_inputs={"positives": 3})
  assert modes == ["extended"]  # the positives are the extended pass's own-sound rows
  assert {k: v for k, v in both.items() if k in alone} == alone
  assert "ext/ap" in both
  positives = collected["positives"]
  np.testing.assert_array_equal(positives["clip_index"], np.arange(NUM_CLIPS))
  assert (positives["audio_kind"] == 0).all()
  # The kept inputs are the first positives' rows: clip k's frame with its own sound.
  np.testing.assert_array_equal(positives["inputs/image"][:, 0, 0, 0], [0, 1, 2])
  np.testing.assert_array_equal(positives["inputs/audio"][:, 0, 0, 0], [0, 1, 2])


def test_l3_run_gives_notes_and_no_cross_modal_rows():
  cfg = ml_collections.ConfigDict(dict(evaluators=("retrieval", "localisation")))
  results = evaluate.run_evaluators(
      evaluate.build_evaluators(cfg, make_batches, CLIPS, CLASSES), toy_model("l3"))
  assert "note/retrieval" in results and "note/localisation" in results
  assert "ndcg30/im-aud" not in results
  assert "note/localisation" in evaluate.format_table(results)


def test_unknown_evaluator_is_a_config_error_of_one_line():
  cfg = evaluate.default_eval_config()
  cfg.evaluators = ("avc", "nope")
  with pytest.raises(ConfigError) as err:
    evaluate.build_evaluators(cfg, make_batches, CLIPS, CLASSES)
  assert str(err.value) == ("unknown evaluator(s) nope in eval.evaluators; "
                            "known: avc, avc_shortcut, retrieval, localisation, quick_probe, extended, "
                            "cca_retrieval")


def test_every_registered_evaluator_has_its_block_of_defaults():
  cfg = evaluate.default_eval_config()
  assert cfg.avc.to_dict() == {"frames_per_clip": 1}
  assert cfg.retrieval.to_dict() == {"k": 30, "query_chunk": 512, "db_chunk": 4096,
                                     "distance": "graph"}
  assert cfg.localisation.to_dict() == {"size": 224}
  assert cfg.quick_probe.to_dict() == {"folds": 5, "c": 1.0}
  assert cfg.avc_shortcut.to_dict() == {"frames_per_clip": 1}
  # A block is there to override even when its evaluator does not run.
  config = config_lib.get_config("avol:tiny", ["eval.evaluators=avc", "eval.quick_probe.c=0.5"])
  assert config.eval.quick_probe.c == 0.5
  ev, = evaluate.build_evaluators(config.eval, make_batches, CLIPS, CLASSES)
  assert isinstance(ev, AvcEvaluator)


def test_evaluators_are_built_from_their_blocks():
  config = config_lib.get_config("ave:tiny", [
      "eval.evaluators=retrieval,quick_probe,avc", "eval.retrieval.k=5", "eval.quick_probe.folds=3",
      "eval.avc.frames_per_clip=4", "eval.seed=7"])
  asked = []
  def recording(mode, **options):
    asked.append((mode, options))
    return make_batches(mode, **options)
  retrieval, probe, avc = evaluate.build_evaluators(config.eval, recording, CLIPS, CLASSES)
  assert (retrieval.k, probe.folds, probe.c, probe.seed) == (5, 3, 1.0, 7)
  results = evaluate.run_evaluators([retrieval, probe, avc], toy_model("ave"))
  assert {"ndcg5/im-im", "ndcg5/random", "quick_probe/chance", "avc_accuracy"} <= set(results)
  assert not any(key.startswith("ndcg30") for key in results)
  # frames_per_clip is an option of the "pairs" batches, passed on by the AVC evaluator.
  assert asked == [("positives", {}), ("pairs", {"frames_per_clip": 4})]
  table = evaluate.format_table(results)
  assert "0.2000 (quick_probe/chance)" in next(l for l in table.splitlines() if l.startswith("quick_probe/"))
  assert "(ndcg5/random)" in next(l for l in table.splitlines() if l.startswith("ndcg5/im-im"))


def test_an_unknown_key_in_a_block_is_a_config_error():
  cfg = evaluate.default_eval_config()
  cfg.retrieval = ml_collections.ConfigDict(dict(k=5, kk=3))
  with pytest.raises(ConfigError,
                     match="unknown key.s. kk in eval.retrieval; keys: k, query_chunk"):
    evaluate.build_evaluators(cfg, make_batches, CLIPS, CLASSES)


class _HitRateEvaluator(Evaluator):
  """A toy evaluator: the fraction of pairs whose logit exceeds `margin`, read against the
  fraction of positive pairs."""

  name = "hit_rate"
  mode = "pairs"
  defaults = {"margin": 0.0}

  def __init__(self, batches, margin=0.0):
    super().__init__(batches)
    self.margin = margin

  @staticmethod
  def baseline(key):
    return "hits/positives" if key == "hits/rate" else None

  def evaluate(self, collected):
    yield "hits/rate", float(np.mean(collected["logit"] > self.margin))
    yield "hits/positives", float(np.mean(collected["label"]))


@pytest.fixture
def hit_rate_registered():
  registry.register(_HitRateEvaluator)
  try:
    yield
  finally:
    registry.unregister(_HitRateEvaluator.name)


def test_a_registered_evaluator_is_configured_built_run_and_tabled(hit_rate_registered):
  del hit_rate_registered
  config = config_lib.get_config("avol:tiny", ["eval.evaluators=avc,hit_rate",
                                               "eval.hit_rate.margin=5"])
  assert config.eval.hit_rate.margin == 5.0
  calls = []
  results = evaluate.run_evaluators(
      evaluate.build_evaluators(config.eval, make_batches, CLIPS, CLASSES),
      toy_model(calls=calls))
  # The toy logits are +-4: none above the margin of 5. Half the pairs are positives.
  assert results["hits/rate"] == 0.0 and results["hits/positives"] == 0.5
  assert len(calls) == -(-2 * NUM_CLIPS // BATCH)  # one pass over the pairs, shared with AVC
  table = evaluate.format_table(results).splitlines()
  assert [line.split() for line in table if line.startswith("hits/")] == [
      ["hits/rate", "0.0000", "0.5000", "(hits/positives)"]]


def test_unregistering_removes_the_block_and_the_name():
  registry.register(_HitRateEvaluator)
  registry.unregister(_HitRateEvaluator.name)
  assert "hit_rate" not in evaluate.default_eval_config()
  assert list(registry.registered()) == ["avc", "avc_shortcut", "retrieval", "localisation",
                                       "quick_probe", "extended", "cca_retrieval"]


def test_two_evaluators_cannot_share_a_name():
  class Other(_HitRateEvaluator):
    name = "quick_probe"
  with pytest.raises(ValueError, match="'quick_probe' is taken by QuickProbeEvaluator"):
    registry.register(Other)


def test_centre_prior_used_as_baseline_scores_a_centred_box_well():
  # Median thresholds keep half the image (cIoU 0.5 / 0.64); slavc's fixed 0 keeps the disc
  # where the Gaussian is above half its peak (radius 0.29 of the side: 0.27 / 0.64).
  centre = trivial_maps("centre", 1, (7, 7), 224, seed=0)
  box = np.array([[0.1, 0.1, 0.9, 0.9]])
  for protocol, want in (("lvs", 0.78), ("ezvsl", 0.78), ("slavc", 0.43)):
    assert protocols.ciou_per_image(protocol, centre, box, 1)[0] == pytest.approx(want, abs=0.02)


@pytest.mark.parametrize("protocol", ["lvs", "ezvsl", "slavc"])
def test_localisation_follows_the_configured_protocol(protocol):
  cfg = evaluate.default_eval_config()
  cfg.evaluators, cfg.loc_protocol = ("localisation",), protocol
  (ev,) = evaluate.build_evaluators(cfg, make_batches, CLIPS, CLASSES)
  out = dict(ev.run(toy_model("avol")))
  rows = list(make_batches("positives"))
  valid = np.concatenate([b["valid"] for b in rows])
  cat = lambda k: np.concatenate([b[k] for b in rows])[valid]
  maps = np.concatenate([toy_model("avol")(b)["loc_logits"] for b in rows])[valid]
  cious = protocols.ciou_per_image(protocol, maps, cat("gt_boxes") if "gt_boxes" in rows[0]
                                   else cat("target_box"), 1)
  want = protocols.summary(protocol, cious)
  for key in ("ciou_ap50", "auc", "ciou_mean"):
    assert out[f"loc/{key}"] == pytest.approx(want[key], abs=1e-12), key
  assert protocol in out["note/loc_protocol"]
  # The trivial maps: the whole image under every protocol (a constant 1 is all on).
  whole = protocols.ciou_per_image(protocol, np.ones((len(maps), 4, 4)),
                                   cat("target_box"), 1)
  assert out["baseline/whole/loc/ciou_mean"] == pytest.approx(np.nanmean(whole))


def test_an_unknown_protocol_is_a_config_error():
  cfg = evaluate.default_eval_config()
  cfg.loc_protocol = "cvpr"
  with pytest.raises(ConfigError, match="eval.loc_protocol must be one of lvs, ezvsl, slavc"):
    evaluate.build_evaluators(cfg, make_batches, CLIPS, CLASSES)


# Results of all four evaluators as a run gives them, with notes and the run's step and split.
FULL_RESULTS = {
    "step": 2400, "split": "test",
    "avc_accuracy": 0.8125,
    "ndcg30/im-im": 0.612345, "ndcg30/im-aud": 0.5, "ndcg30/aud-im": 0.49, "ndcg30/aud-aud": 0.7,
    "ndcg30/random": 0.25,
    "note/retrieval": "a retrieval note",
    "loc/ciou_ap50": 0.4, "loc/auc": 0.38, "loc/ciou_mean": 0.41, "loc/pointing": 0.75,
    "loc/distractor_pick": 0.125,
    "baseline/centre/loc/ciou_ap50": 0.3, "baseline/centre/loc/auc": 0.29,
    "baseline/centre/loc/ciou_mean": 0.33, "baseline/centre/loc/pointing": 0.5,
    "baseline/centre/loc/distractor_pick": 0.25,
    "baseline/whole/loc/ciou_ap50": 0.35, "baseline/whole/loc/auc": 0.31,
    "baseline/whole/loc/ciou_mean": 0.32,
    "baseline/random/loc/ciou_ap50": 0.0, "baseline/random/loc/auc": 0.2,
    "baseline/random/loc/ciou_mean": 0.21, "baseline/random/loc/pointing": 0.25,
    "baseline/random/loc/distractor_pick": 0.2,
    "loc/num_images": 38.0,
    "quick_probe/audio_accuracy": 0.9, "quick_probe/image_accuracy": 0.85, "quick_probe/chance": 0.2,
    "note/extra": "a note",
    "scoring": {
        "avc_accuracy": {"ci95": [0.75, 0.87], "n_scored": 38, "n_expected": 38,
                         "gain": 0.3125, "gain_over": "chance: balanced pairs",
                         "gain_ci95": [0.25, 0.37]},
        "loc/ciou_ap50": {"ci95": [0.25, 0.55], "n_scored": 38, "n_expected": 38, "gain": 0.05,
                          "gain_over": "baseline/whole/loc/ciou_ap50",
                          "gain_ci95": [-0.1, 0.2]},
        "loc/distractor_pick": {"n_scored": 8, "n_expected": 38, "gain": 0.075,
                                "gain_over": "baseline/random/loc/distractor_pick"},
    },
}

FULL_TABLE = """\
metric                       value  95% CI          baseline                                    gain over best baseline [95% CI]
--------------------------------------------------------------------------------------------------------------------------------
avc_accuracy                0.8125  [0.750, 0.870]  0.5000 (chance: balanced pairs)             +0.3125 [+0.250, +0.370]
ndcg30/im-im                0.6123                  0.2500 (ndcg30/random)
ndcg30/im-aud               0.5000                  0.2500 (ndcg30/random)
ndcg30/aud-im               0.4900                  0.2500 (ndcg30/random)
ndcg30/aud-aud              0.7000                  0.2500 (ndcg30/random)
loc/ciou_ap50               0.4000  [0.250, 0.550]  centre 0.3000, whole 0.3500, random 0.0000  +0.0500 [-0.100, +0.200] (over whole)
loc/auc                     0.3800                  centre 0.2900, whole 0.3100, random 0.2000
loc/ciou_mean               0.4100                  centre 0.3300, whole 0.3200, random 0.2100
loc/pointing                0.7500                  centre 0.5000, random 0.2500
loc/distractor_pick         0.1250                  centre 0.2500, random 0.2000                +0.0750 (over random)
loc/num_images                  38
quick_probe/audio_accuracy  0.9000                  0.2000 (quick_probe/chance)
quick_probe/image_accuracy  0.8500                  0.2000 (quick_probe/chance)

  step: 2400
  split: test

notes:
  note/retrieval: a retrieval note
  note/extra: a note

95% CI: bootstrap over clips (all rows of a clip drawn together); gains are paired (the same draws for metric and baseline)."""


def test_table_puts_each_baseline_beside_its_metric():
  assert evaluate.format_table(FULL_RESULTS) == FULL_TABLE


def test_table_of_baselines_without_their_metrics():
  # AVC's fixed chance line leads; a baseline whose metric is missing is a row of its own.
  table = evaluate.format_table({"ndcg5/random": 0.25, "quick_probe/chance": 0.2, "loss": 1.5,
                                 "loc/auc": 0.5, "avc_accuracy": 0.75})
  assert table == """\
metric               value  baseline
------------------------------------
avc_accuracy        0.7500  0.5000 (chance: balanced pairs)
ndcg5/random        0.2500
quick_probe/chance  0.2000
loc/auc             0.5000

  loss: 1.5000"""
