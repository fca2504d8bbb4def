"""The rule of the house: what each folder may import (README, "Layout"), checked on the source.

Each rule names a folder and the packages of ours it must not import; the test reads every
import statement (module level and inside functions) with `ast`, so a lazy import counts too.
"""

import ast
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OURS = ("avjax", "data_pipeline", "experiments", "benchmarks", "embedded_dataset")

# folder -> the modules (prefixes) it must not import.
FORBIDDEN = {
    "data_pipeline": ("avjax", "experiments", "benchmarks", "embedded_dataset"),
    "avjax": ("benchmarks", "embedded_dataset"),
    "avjax/models": ("avjax.train", "avjax.evaluate", "avjax.visualise", "avjax.export",
                     "data_pipeline", "experiments"),
    "avjax/train": ("avjax.visualise", "avjax.export", "experiments"),
    "avjax/evaluate": ("avjax.train", "avjax.visualise", "avjax.export", "experiments"),
    "avjax/visualise": ("avjax.train", "experiments"),
    "experiments": ("avjax.train", "avjax.models", "avjax.visualise", "benchmarks",
                    "embedded_dataset"),
}
# The one place the library turns an experiment's name into its module (lazily).
EXPERIMENT_LOADER = os.path.join("avjax", "config.py")


def _imports(path: str) -> list[str]:
  with open(path, encoding="utf-8") as f:
    tree = ast.parse(f.read(), path)
  names = []
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      names += [alias.name for alias in node.names]
    elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
      names += [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
  return [n for n in names if n.split(".")[0] in OURS]


def _python_files(folder: str) -> list[str]:
  found = []
  for dirpath, _, files in os.walk(os.path.join(ROOT, folder)):
    found += [os.path.join(dirpath, f) for f in files if f.endswith(".py")]
  return sorted(found)


def _violations(folder: str, forbidden) -> list[str]:
  out = []
  for path in _python_files(folder):
    for name in _imports(path):
      if any(name == f or name.startswith(f + ".") for f in forbidden):
        out.append(f"{os.path.relpath(path, ROOT)} imports {name}")
  return out


@pytest.mark.parametrize("folder", sorted(FORBIDDEN))
def test_each_folder_imports_only_what_the_house_allows(folder):
  assert _python_files(folder), f"{folder} has no Python files: the rule names a wrong folder"
  assert _violations(folder, FORBIDDEN[folder]) == []


def test_only_the_config_loader_imports_experiments_in_the_library():
  users = [os.path.relpath(p, ROOT) for folder in ("avjax", "data_pipeline")
           for p in _python_files(folder) if any(n.split(".")[0] == "experiments"
                                                 for n in _imports(p))]
  assert users == [EXPERIMENT_LOADER]


def test_the_checker_sees_lazy_imports(tmp_path):
  path = tmp_path / "lazy.py"
  path.write_text("def f():\n  from benchmarks import step\n  import avjax.train.loop\n")
  assert _imports(str(path)) == ["benchmarks", "benchmarks.step", "avjax.train.loop"]
