"""Default evaluation settings; experiments override fields of this ConfigDict."""

import ml_collections

from avjax.evaluate import registry


def default_eval_config() -> ml_collections.ConfigDict:
  """Which evaluators run, how often, and their settings.

  Besides the general fields, one block per registered evaluator, eval.<name>, holding its
  `defaults` (e.g. eval.retrieval.k): every block exists whether or not its evaluator is in
  `evaluators`, so any of them can be overridden.
  """
  config = ml_collections.ConfigDict(dict(
      evaluators=("avc", "retrieval", "localisation", "quick_probe"),
      every_steps=10_000,   # 0 = no evaluation during training
      batch_size=64,
      seed=0,               # fixes the eval pairs (negatives), frame choice and bootstrap
      bootstrap_samples=1000,  # draws of clips behind each metric's 95% interval (0 = none)
      loc_protocol="ezvsl",    # whose cIoU: "lvs", "ezvsl" or "slavc" (evaluate.protocols)
      pictures=True,        # --mode=eval also writes figures, a video and report.html
      picture_clips=8,      # test frames in the heat-map figure
      picture_items=512,    # at most this many test clips in the retrieval pictures
  ))
  for name, evaluator in registry.registered().items():
    if name in config:
      raise ValueError(f"evaluator name '{name}' is a general eval setting")
    config[name] = ml_collections.ConfigDict(dict(evaluator.defaults))
  return config


def default_probe_config() -> ml_collections.ConfigDict:
  """Settings of --mode=probe, L3's linear probe of the audio tower (avjax.train.linear_probe):
  the dataset it reads and the protocol's sizes (avjax.evaluate.svm_probe)."""
  return ml_collections.ConfigDict(dict(
      root="",             # the probe's dataset: ESC-50, UrbanSound8K, DCASE 2013, sounds...
      format="",           # "" -> detected from the files under root
      modality="audio",    # "audio": the audio tower on 1 s windows; "image": the vision
                           # tower on each clip's middle frame (datasets with pictures)
      grid=(4, 3),         # conv4_2 max-pooled to this frequency x time grid (L3: 4 x 3)
      c_grid=(0.001, 0.01, 0.1, 1.0),  # the SVM's C, chosen inside the training folds
      folds=5,             # folds dealt (stratified) when the dataset has no official ones
      max_windows=0,       # 1 s windows per clip (0: every whole second, at least one)
      max_clips=0,         # at most this many clips of each split (0: all)
      batch_size=64,
      bootstrap_samples=1000,  # draws of clips (within folds) behind the 95% intervals
      seed=0,
  ))
