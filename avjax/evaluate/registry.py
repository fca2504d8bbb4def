"""Evaluators by name: each evaluator class registers itself with `@register`.

    @registry.register
    class MyEvaluator(Evaluator):
      name = "mine"                  # eval.evaluators=...,mine runs it
      mode = "positives"             # the batches it reads
      defaults = {"k": 10}           # its block: eval.mine.k, default 10
      ...

Registering is all a new evaluator needs: `default_eval_config` gives it a config block from
its `defaults`, `build_evaluators` builds it by name with its `from_config`, and the results
table reads its metrics against the baselines its `baseline` names.
"""

from __future__ import annotations

_EVALUATORS: dict[str, type] = {}


def register(cls: type) -> type:
  """Class decorator: registers an Evaluator subclass under its `name`."""
  if _EVALUATORS.get(cls.name, cls) is not cls:
    raise ValueError(f"evaluator name '{cls.name}' is taken by {_EVALUATORS[cls.name].__name__}")
  _EVALUATORS[cls.name] = cls
  return cls


def unregister(name: str) -> None:
  """Removes the evaluator registered under `name` (if any)."""
  _EVALUATORS.pop(name, None)


def registered() -> dict[str, type]:
  """Every registered evaluator class by name, in the order they were registered."""
  return dict(_EVALUATORS)

