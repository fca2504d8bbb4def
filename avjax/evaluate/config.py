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
      evaluators=("avc", "retrieval", "localisation", "probe"),
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
