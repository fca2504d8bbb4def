"""Default evaluation settings; experiments override fields of this ConfigDict."""

import ml_collections


def default_eval_config() -> ml_collections.ConfigDict:
  """Which evaluators run, how often, and their settings."""
  return ml_collections.ConfigDict(dict(
      evaluators=("avc", "retrieval", "localisation", "probe"),
      every_steps=10_000,   # 0 = no evaluation during training
      batch_size=64,
      seed=0,               # fixes the eval pairs (negatives) and frame choice
      avc_frames_per_clip=1,  # AVC pairs per clip: frames spread over its grid, each with
                              # its own sound and another video's (more = less noise)
      ndcg_k=30,            # [OtS] reports nDCG@30
      probe_folds=5,        # GroupKFold folds, grouped by clip
      probe_c=1.0,          # inverse L2 strength of the probe's logistic regression
      loc_size=224,         # maps are scored at loc_size^2 (LVS / EZ-VSL: 224)
      pictures=True,        # --mode=eval also writes figures, a video and report.html
      picture_clips=8,      # test frames in the heat-map figure
      picture_items=512,    # at most this many test clips in the retrieval pictures
      retrieval_query_chunk=512,
      retrieval_db_chunk=4096,
  ))
