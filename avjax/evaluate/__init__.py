"""Evaluation: AVC accuracy (also on the shortcut control's pairs), nDCG@k retrieval,
localisation (cIoU/AUC), the quick linear probe, the extended localisation benchmarks
(non-sounding pairs, negative audio) and L3-Net's cross-modal retrieval raw and after CCA.
L3's published probe protocol is in `svm_probe`.

    evaluators = build_evaluators(config.eval, make_batches, clips, classes, ontology)
    results = run_evaluators(evaluators, predict_fn)   # {"avc_accuracy": 0.81, ...}
    print(format_table(results))

Evaluators are registered by name (`registry.register`); importing this package registers
the seven below, in the order their config blocks appear in `default_eval_config`.
"""

# Imported for their registration.
from avjax.evaluate import avc, retrieval, localisation, quick_probe, extended, cca  # pylint: disable=unused-import,line-too-long
from avjax.evaluate import registry
from avjax.evaluate.config import default_eval_config
from avjax.evaluate.common import collect
from avjax.evaluate.runner import build_evaluators, evaluate_all, run_evaluators
from avjax.evaluate.table import format_table

__all__ = ["build_evaluators", "collect", "default_eval_config", "evaluate_all", "format_table",
           "registry", "run_evaluators"]
