"""avjax entry point: flags only.

  python -m avjax.main --experiment=avol:demo --workdir=/tmp/avol
      [--mode=train|eval|export|probe] [--export_dir=DIR] [--config.train.batch_size=64 ...]

Any config field can be overridden with --config.SECTION.KEY=VALUE.
"""

import os
import sys
from typing import NamedTuple

from absl import app
from absl import flags

FLAGS = flags.FLAGS
flags.DEFINE_string("experiment", None, "NAME[:VARIANT], e.g. avol, avol:demo, l3:tiny.")
flags.DEFINE_string("workdir", None, "Where checkpoints, metrics and reports go.")
flags.DEFINE_enum("mode", "train", ["train", "eval", "export", "probe"],
                  "Train (resuming if possible), evaluate, export for inference, or run L3's "
                  "linear probe of the audio tower on --config.probe.root.")
flags.DEFINE_integer("checkpoint", None,
                     "Step to evaluate, export or probe (default: the latest).")
flags.DEFINE_string("export_dir", None, "Where --mode=export writes (default: WORKDIR/export).")
flags.DEFINE_string("split", "test", "Split to evaluate in --mode=eval.")
flags.DEFINE_list("allow_resume_change", [],
                  "Fields a resume may change although they change the state or the data order "
                  "(e.g. train.batch_size,seed); without it such a resume is refused.")
flags.DEFINE_bool("distributed", False,
                  "Call jax.distributed.initialize() first (multi-host cluster jobs; the "
                  "coordinator is found from the cluster environment or the flags below).")
flags.DEFINE_string("coordinator_address", None, "host:port of process 0 (with --distributed).")
flags.DEFINE_integer("num_processes", None, "Number of processes (with --distributed).")
flags.DEFINE_integer("process_id", None, "This process's index (with --distributed).")

_OVERRIDE_PREFIX = "--config."


class Args(NamedTuple):
  """The command line after absl: positional arguments and the --config.KEY=VALUE overrides."""
  positional: list[str]
  overrides: list[str]


def parse_flags(argv: list[str]) -> Args:
  """absl parsing, with every --config.KEY=VALUE set aside for the config."""
  overrides = [a[len(_OVERRIDE_PREFIX):] for a in argv[1:] if a.startswith(_OVERRIDE_PREFIX)]
  rest = [a for a in argv if not a.startswith(_OVERRIDE_PREFIX)]
  try:
    return Args(FLAGS(rest), overrides)
  except flags.Error as err:
    sys.exit(f"avjax: {err}")


def main(args: Args) -> None:
  if len(args.positional) > 1:
    sys.exit(f"avjax: unexpected arguments: {' '.join(args.positional[1:])}")
  if not FLAGS.experiment:
    sys.exit("avjax: --experiment is required (NAME[:VARIANT], e.g. --experiment=avol:demo; "
             "experiments: l3, ave, avol; variants: paper, demo, tiny)")
  if not FLAGS.workdir:
    sys.exit("avjax: --workdir is required: the folder for checkpoints and metrics")

  # Imports here so that --help and flag errors answer at once.
  import jax  # pylint: disable=g-import-not-at-top
  from avjax import config as config_lib  # pylint: disable=g-import-not-at-top
  from avjax import export as export_lib  # pylint: disable=g-import-not-at-top
  from avjax import runtime  # pylint: disable=g-import-not-at-top
  from avjax.errors import ConfigError  # pylint: disable=g-import-not-at-top
  from avjax.train import evaluation as evaluation_lib  # pylint: disable=g-import-not-at-top
  from avjax.train import checkpoint  # pylint: disable=g-import-not-at-top
  from avjax.train import linear_probe  # pylint: disable=g-import-not-at-top
  from avjax.train import loop  # pylint: disable=g-import-not-at-top
  from avjax.visualise import eval_pictures  # pylint: disable=g-import-not-at-top
  from data_pipeline.clips import DataError  # pylint: disable=g-import-not-at-top

  runtime.quiet_logs(FLAGS["verbosity"].present)
  runtime.interrupt_on_stop_signals()
  runtime.enable_compile_cache()
  if FLAGS.distributed:
    jax.distributed.initialize(coordinator_address=FLAGS.coordinator_address,
                               num_processes=FLAGS.num_processes, process_id=FLAGS.process_id)
  try:
    config = config_lib.get_config(FLAGS.experiment, args.overrides)
    if FLAGS.mode == "train":
      loop.train_and_evaluate(config, FLAGS.workdir, FLAGS.allow_resume_change)
    elif FLAGS.mode == "export":
      export_dir = FLAGS.export_dir or os.path.join(FLAGS.workdir, "export")
      export_dir = export_lib.export(config, FLAGS.workdir, export_dir, FLAGS.checkpoint)
      print(f"Exported to {export_dir} (embed with: python -m avjax.embed "
            f"--model={export_dir} FILE_OR_FOLDER...)")
    elif FLAGS.mode == "probe":
      linear_probe.probe_checkpoint(config, FLAGS.workdir, FLAGS.checkpoint)
    else:
      evaluation = evaluation_lib.evaluate_checkpoint(config, FLAGS.workdir, FLAGS.checkpoint,
                                                      FLAGS.split)
      if config.eval.pictures:
        report = eval_pictures.write_eval_pictures(config, evaluation, FLAGS.workdir)
        if report:
          print(f"Report (metrics, heat maps, retrieval, video): {report}")
  except loop.TrainingStopped as stopped:
    print(f"avjax: {stopped}", file=sys.stderr)
    sys.exit(stopped.exit_code)
  except runtime.Interrupted as stopped:
    print(f"avjax: stopped at once by signal {stopped.signum}; files are written whole or not "
          "at all (checkpoints, caches, configs, metrics): run the same command to go on",
          file=sys.stderr)
    sys.exit(stopped.exit_code)
  except checkpoint.CheckpointError as err:
    runtime.exit_at_once(f"avjax: {err}")
  except (ConfigError, DataError, loop.TrainingDiverged, export_lib.ExportError) as err:
    sys.exit(f"avjax: {err}")


if __name__ == "__main__":
  app.run(main, flags_parser=parse_flags)
