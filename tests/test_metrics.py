"""Tests of avjax.evaluate metric functions against independent or hand-worked answers."""

import json

import numpy as np
import pytest
from sklearn.metrics import ndcg_score

from avjax.evaluate import knn, metrics, protocols
from avjax.evaluate.ontology import flat_relevance, ontology_relevance
from benchmarks import ontology_chance


def test_avc_accuracy_perfect_inverted_and_mask():
  labels = np.array([1, 0, 1, 0, 1])
  logits = np.array([3.0, -2.0, 0.5, -0.1, 7.0])
  assert metrics.avc_accuracy(logits, labels) == 1.0
  assert metrics.avc_accuracy(-logits, labels) == 0.0
  valid = np.array([True, True, False, False, False])
  wrong_on_masked = np.array([3.0, -2.0, -5.0, 5.0, -1.0])
  assert metrics.avc_accuracy(wrong_on_masked, labels, valid) == 1.0


def test_ndcg_matches_sklearn_with_query_excluded():
  rng = np.random.default_rng(0)
  n, k = 60, 10
  classes = np.repeat(np.arange(6), 10)  # every query has relevant others
  x = rng.standard_normal((n, 8))
  sim = x @ x.T
  order = np.argsort(-np.where(np.eye(n, dtype=bool), -np.inf, sim), axis=1)[:, :n - 1]
  ours = metrics.ndcg_at_k(order[:, :k], np.arange(n), flat_relevance([(c,) for c in classes]), k)
  for i in range(n):
    others = np.delete(np.arange(n), i)
    y_true = (classes[others] == classes[i]).astype(float)[None]
    expected = ndcg_score(y_true, sim[i, others][None], k=k)
    assert ours[i] == pytest.approx(expected, abs=1e-9)


def test_ndcg_nan_without_relevant_items_and_self_retrieval_rejected():
  rel = flat_relevance([("a",), ("b",), ("a",)])
  out = metrics.ndcg_at_k(np.array([[2, 1], [0, 2], [1, 0]]), np.arange(3), rel, 2)
  assert out[0] == 1.0 and np.isnan(out[1]) and out[2] == pytest.approx(1 / np.log2(3))
  with pytest.raises(ValueError):
    metrics.ndcg_at_k(np.array([[0, 1]]), np.array([0]), rel, 2)


def test_random_ndcg_is_the_mean_over_permutations():
  rng = np.random.default_rng(1)
  labels = [(int(c),) for c in rng.integers(0, 3, 12)]
  rel = flat_relevance(labels)
  k = 4
  expected = metrics.random_ndcg_at_k(np.arange(12), rel, k)
  sims = []
  for _ in range(4000):
    order = np.array([np.delete(np.arange(12), i)[rng.permutation(11)] for i in range(12)])
    sims.append(metrics.ndcg_at_k(order[:, :k], np.arange(12), rel, k))
  np.testing.assert_allclose(np.nanmean(sims, axis=0), expected, atol=0.02)


def test_chunked_top_k_equals_brute_force():
  rng = np.random.default_rng(2)
  q = rng.standard_normal((70, 16)).astype(np.float32)
  db = np.concatenate([q, rng.standard_normal((33, 16)).astype(np.float32)])
  k = 7
  scores, idx = knn.top_k_neighbours(q, db, k, query_ids=np.arange(70), query_chunk=16,
                                     db_chunk=10)
  sim = q.astype(np.float64) @ db.T.astype(np.float64)
  sim[np.arange(70), np.arange(70)] = -np.inf
  brute = np.argsort(-sim, axis=1, kind="stable")[:, :k]
  np.testing.assert_array_equal(idx, brute)
  np.testing.assert_allclose(scores, np.take_along_axis(sim, brute, 1), rtol=1e-5)
  # Fewer items than k: missing neighbours are -1.
  _, few = knn.top_k_neighbours(q[:3], q[:3], 4, query_ids=np.arange(3))
  assert (few[:, 2:] == -1).all() and set(few[0, :2]) == {1, 2}


def test_ontology_relevance_on_a_small_tree():
  # root -> animal -> {dog, cat}; root -> music -> guitar; "island" is unconnected.
  ontology = {
      "/m/root": {"name": "Root", "child_ids": ["/m/animal", "/m/music"]},
      "/m/animal": {"name": "Animal", "child_ids": ["/m/dog", "/m/cat"]},
      "/m/dog": {"name": "Dog", "child_ids": []},
      "/m/cat": {"name": "Cat", "child_ids": []},
      "/m/music": {"name": "Music", "child_ids": ["/m/guitar"]},
      "/m/guitar": {"name": "Guitar", "child_ids": []},
      "/m/island": {"name": "Island", "child_ids": []},
  }
  items = [("Dog",), ("/m/cat",), ("Guitar",), ("Dog", "Guitar"), ("Island",), ()]
  rel = ontology_relevance(items, ontology)
  r = lambda i, j: float(rel.between(np.array([i]), np.array([[j]]))[0, 0])
  assert r(0, 0) == 20          # d(dog, dog) = 0
  assert r(0, 1) == 18          # dog - animal - cat
  assert r(0, 2) == 16          # dog - animal - root - music - guitar
  assert r(1, 3) == 18          # max over (cat, dog)=2 and (cat, guitar)=4
  assert r(2, 3) == 20          # shares guitar
  assert r(0, 4) == 0 and r(4, 4) == 20   # unconnected label
  assert r(0, 5) == 0 and r(5, 5) == 0    # unlabelled item


def test_graph_and_tree_distances_differ_through_a_shared_child():
  # Two top-level trees, "sounds" and "things", share the child "bell" (AudioSet nodes have
  # several parents). The undirected graph walks down through bell; the tree distance only
  # goes up to a common ancestor, and the two trees have none.
  ontology = {
      "/m/sounds": {"name": "Sounds", "child_ids": ["/m/ring", "/m/bell"]},
      "/m/things": {"name": "Things", "child_ids": ["/m/bell", "/m/cup"]},
      "/m/ring": {"name": "Ring", "child_ids": []},
      "/m/bell": {"name": "Bell", "child_ids": ["/m/tiny_bell"]},
      "/m/tiny_bell": {"name": "Tiny bell", "child_ids": []},
      "/m/cup": {"name": "Cup", "child_ids": []},
  }
  items = [("Ring",), ("Cup",), ("Tiny bell",), ("Bell",)]
  def rel(distance):
    r = ontology_relevance(items, ontology, distance=distance)
    return lambda i, j: float(r.between(np.array([i]), np.array([[j]]))[0, 0])
  graph, tree = rel("graph"), rel("tree")
  assert graph(0, 1) == 16        # ring - sounds - bell - things - cup
  assert tree(0, 1) == 0          # no common ancestor
  assert graph(0, 2) == tree(0, 2) == 17  # tiny bell - bell - sounds - ring: up, then down
  assert tree(2, 3) == 19 and tree(3, 3) == 20
  with pytest.raises(ValueError, match="known: graph, tree"):
    ontology_relevance(items, ontology, distance="walk")


def test_ontology_chance_reads_a_segment_csv_and_keeps_the_subset(tmp_path, capsys):
  # root -> music -> {guitar, drum}; root -> animal -> dog.
  nodes = [{"id": "/m/root", "name": "Root", "child_ids": ["/m/music", "/m/animal"]},
           {"id": "/m/music", "name": "Music", "child_ids": ["/m/guitar", "/m/drum"]},
           {"id": "/m/guitar", "name": "Guitar", "child_ids": []},
           {"id": "/m/drum", "name": "Drum", "child_ids": []},
           {"id": "/m/animal", "name": "Animal", "child_ids": ["/m/dog"]},
           {"id": "/m/dog", "name": "Dog", "child_ids": []}]
  (tmp_path / "ontology.json").write_text(json.dumps(nodes))
  (tmp_path / "eval.csv").write_text(
      "# Segments csv\n# num_ytids=4\n# YTID, start_seconds, end_seconds, positive_labels\n"
      'a, 0.0, 10.0, "/m/guitar,/m/dog"\nb, 5.0, 15.0, "/m/drum"\n'
      'c, 0.0, 10.0, "/m/dog"\nd, 0.0, 10.0, "/m/guitar"\n')
  ontology = {n["id"]: n for n in nodes}
  segments = str(tmp_path / "eval.csv")
  assert ontology_chance.chance_items(ontology, "Music", segments) == [
      ["/m/guitar", "/m/dog"], ["/m/drum"], ["/m/guitar"]]
  assert ontology_chance.chance_items(ontology, "Music", segments, labels="under") == [
      ["/m/guitar"], ["/m/drum"], ["/m/guitar"]]
  ontology_chance.main(["--ontology", str(tmp_path / "ontology.json"), "--segments", segments,
                        "--under", "/m/music", "--k", "2"])
  out = capsys.readouterr().out
  # Hand-worked: a = {guitar, dog} and d = {guitar} have r = 20, each with b = {drum} r = 18
  # (guitar - music - drum). Query a ranks {b, d} at random: E[DCG@2] = 19 (1 + 1/log2 3)
  # against the ideal 20 + 18/log2 3, 0.98820; d likewise; b sees 18 and 18: 1.
  assert "3 items with a label under '/m/music'" in out
  assert "(graph distance, r = 20 - d): 0.992" in out
  assert "(tree distance, r = 20 - d): 0.992" in out
  with pytest.raises(SystemExit, match="neither an id nor a name"):
    ontology_chance.chance_items(ontology, "Cello", segments)


def test_ciou_auc_on_hand_worked_maps():
  size = 8
  # Map 1: bright left half. EZ-VSL upsampling (align corners) gives columns 0-2 the value 1,
  # column 3 0.714, column 4 0.286; the median (sorted[32] = 0.714) keeps columns 0-3 (32 px).
  left = np.zeros((1, 4, 4)); left[0, :, :2] = 1.0
  box = np.array([[0.0, 0.0, 0.5, 0.5]])  # top-left quadrant: 16 pixels
  pred = protocols.prediction_masks("ezvsl", left, size)
  assert pred.sum() == 32 and pred[0, :, :4].all()
  # cIoU = |pred & gt| / (|gt| + |pred \ gt|) = 16 / (16 + 16) = 0.5
  assert protocols.ciou_per_image("ezvsl", left, box, 1, size)[0] == pytest.approx(0.5)
  # Box = whole left half: 32 / (32 + 0) = 1; box on the right half: 0 / (32 + 32) = 0.
  scores = protocols.ciou_per_image("ezvsl", np.repeat(left, 2, 0),
                                    np.array([[0, 0, .5, 1], [.5, 0, 1, 1]]), 1, size)
  np.testing.assert_allclose(scores, [1.0, 0.0])
  # (0.32, not 0.3: the scripts' threshold 0.05 * 6 is 0.30000000000000004.)
  summary = protocols.summary("ezvsl", np.array([0.0, 0.5, 1.0, 0.32]))
  assert summary["ciou_ap50"] == 0.5 and summary["ciou_mean"] == pytest.approx(0.455)
  # success(t) on the grid: t=0 -> 1; .05..0.3 -> .75; .35..0.5 -> .5; .55..1 -> .25.
  # Trapezoids: [0,.05]: (1+.75)/2*.05 = .04375; (.05,.3]: .75*.25 = .1875; (.3,.35]: .03125;
  # (.35,.5]: .075; (.5,.55]: .01875; (.55,1]: .1125  -> 0.46875
  assert summary["auc"] == pytest.approx(0.46875)


def test_lvs_upsampling_has_half_pixel_centres():
  up = protocols.upsample("lvs", np.array([[[0.0, 1.0]]]), 4)
  np.testing.assert_allclose(up[0, 0], [0.0, 0.25, 0.75, 1.0])


def test_pointing_and_distractor_pick():
  maps = np.zeros((3, 4, 4))
  maps[0, 0, 0] = 1   # peak at (0.125, 0.125)
  maps[1, 3, 3] = 1   # peak at (0.875, 0.875)
  maps[2, 0, 3] = 1   # peak at (0.875, 0.125)
  target = np.array([[0, 0, .5, .5]] * 3)
  distractors = np.array([[[.5, .5, 1, 1], [-1, -1, -1, -1]],
                          [[.5, .5, 1, 1], [-1, -1, -1, -1]],
                          [[-1, -1, -1, -1], [-1, -1, -1, -1]]])
  np.testing.assert_array_equal(metrics.pointing_hits(maps, target), [True, False, False])
  picked, has = metrics.distractor_picks(maps, target, distractors)
  np.testing.assert_array_equal(picked, [False, True, False])
  np.testing.assert_array_equal(has, [True, True, False])
  # Unknown target boxes never count as hits.
  assert not metrics.pointing_hits(maps[:1], -np.ones((1, 4)))[0]


def test_centre_prior_peaks_in_the_middle():
  centre = metrics.centre_prior_maps(2, 7, 7)
  assert centre.shape == (2, 7, 7)
  np.testing.assert_allclose(metrics.peak_points(centre), [[0.5, 0.5]] * 2)


def test_multi_annotator_gt_map_and_ciou_by_hand():
  # 8x8 grid. Annotator A: [0, .5]^2 -> 256-scale 0..128 -> int(8 * v / 256): rows/cols 0-3
  # (16 px); annotator B: [.25, .75]^2 -> rows/cols 2-5 (16 px); both: rows/cols 2-3 (4 px).
  size = 8
  a, b, pad = [0, 0, .5, .5], [.25, .25, .75, .75], [-1, -1, -1, -1]
  gt = protocols.ground_truth_maps("ezvsl", np.array([[a, b, pad]]), np.array([2]), size)[0]
  # Consensus 2: one annotator's box counts 0.5, two count 1; padding covers nothing.
  assert gt[0, 0] == 0.5 and gt[2, 3] == 1.0 and gt[5, 5] == 0.5 and gt[7, 7] == 0.0
  assert gt.sum() == 12 * 0.5 + 4 * 1.0 + 12 * 0.5  # = 16
  # Prediction: the left half (cols 0-3, 32 px; the map of test_ciou_auc_on_hand_worked_maps).
  left = np.zeros((1, 4, 4)); left[0, :, :2] = 1.0
  # Inside cols 0-3: A only 12 px x .5 = 6, both 4 px x 1 = 4, B only (rows 4-5, cols 2-3)
  # 4 px x .5 = 2 -> sum(pred*gt) = 12; pred where gt == 0: 32 - 20 = 12 px.
  # cIoU = 12 / (sum(gt) + 12) = 12 / 28 = 3/7.
  ciou = lambda boxes, c: protocols.ciou_per_image("ezvsl", left, np.array([boxes]), [c], size)[0]
  assert ciou([a, b], 2) == pytest.approx(3 / 7)
  # Consensus 1 (VGG-SS): the union, 28 px; 20 of them in the prediction -> 20 / (28 + 12).
  assert ciou([a, b], 1) == pytest.approx(0.5)
  # A lone annotator's box counts 0.5: 8 / (8 + 16) = 1/3.
  assert ciou([a, pad], 2) == pytest.approx(1 / 3)
