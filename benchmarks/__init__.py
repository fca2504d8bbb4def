"""avjax's benchmarks, run from the repository root (they import avjax and data_pipeline; the
library never imports them).

  python -m benchmarks [FLAGS]        the step benchmark (benchmarks/step.py; `./run.sh bench`):
                                      train-step and eval throughput, FLOP/s and MFU, compile
                                      time, memory and the input pipeline's rate per experiment
  python -m benchmarks.pipeline       the train pipeline's clips/s per worker count and size,
                                      and its per-stage times
  python -m benchmarks.retrieval      exact nDCG@30 retrieval over many random items: time and
                                      peak memory

benchmarks/layers.py times each tower convolution alone (`python -m benchmarks --layers`);
benchmarks/torch_nets.py is the PyTorch baseline of the same nets and train step, timed beside
avjax's when PyTorch is installed. `--help` lists each one's flags.
"""
