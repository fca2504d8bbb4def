"""Evaluation: AVC accuracy, nDCG@k retrieval, localisation (cIoU/AUC) and linear probes.

    evaluators = build_evaluators(config.eval, make_batches, clips, classes, ontology)
    results = run_evaluators(evaluators, predict_fn)   # {"avc_accuracy": 0.81, ...}
    print(format_table(results))
"""

from avjax.evaluate.config import default_eval_config
from avjax.evaluate.common import collect
from avjax.evaluate.runner import EVALUATORS, build_evaluators, evaluate_all, run_evaluators
from avjax.evaluate.table import format_table

__all__ = ["EVALUATORS", "build_evaluators", "collect", "default_eval_config", "evaluate_all",
           "format_table", "run_evaluators"]
