"""`python -m embedded_dataset`: builds the embedded dataset (see embedded_dataset.build).

  python -m embedded_dataset [--out DIR | --cache-dir DIR] [--seed S] [--if-missing]

Without --out the dataset goes where the library looks for it: `embedded-vN` in $AVJAX_DATA or
~/.cache/avjax, or in --cache-dir (a run's data.cache_dir). --if-missing builds only when that
folder holds no finished build and prints nothing otherwise (`./run.sh` uses it).
"""

from __future__ import annotations

import argparse
import os
import sys

from data_pipeline.clips import DataError
from data_pipeline.formats import embedded as layout


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(prog="python -m embedded_dataset",
                                   description="Builds the embedded dataset.")
  where = parser.add_mutually_exclusive_group()
  where.add_argument("--out", default=None, help=f"output dir (default: {layout.default_dir()})")
  where.add_argument("--cache-dir", default=None,
                     help=f"build into CACHE_DIR/{layout.dir_name()} (a run's data.cache_dir)")
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--if-missing", action="store_true",
                      help="build only when the folder holds no finished build; print nothing "
                      "when it does")
  args = parser.parse_args(argv)
  out = args.out or (os.path.join(os.path.expanduser(args.cache_dir), layout.dir_name())
                     if args.cache_dir else layout.default_dir())
  out = os.path.abspath(out)
  if args.if_missing and layout.is_built(out):
    return 0
  # The builder needs PyAV and OpenCV: imported only when there is something to build.
  from embedded_dataset import build  # pylint: disable=g-import-not-at-top
  try:
    os.makedirs(os.path.dirname(out), exist_ok=True)
    if args.if_missing:
      print(f"Building the embedded dataset into {out} (first run only) ...", flush=True)
      build.ensure_embedded(out, args.seed)  # locked: parallel runs build it once
      return 0
    s = build.build(out, args.seed)
  except DataError as e:
    print(f"error: {e}", file=sys.stderr)
    return 1
  print(f"built {s['clips']} clips in {s['seconds']:.1f} s into {s['dir']}")
  print("per split: " + ", ".join(f"{k} {v}" for k, v in s["per_split"].items()))
  for label, c in s["per_class"].items():
    print(f"  {label:16s} " + " ".join(f"{k} {v}" for k, v in c.items()))
  return 0


if __name__ == "__main__":
  sys.exit(main())
