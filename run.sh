#!/usr/bin/env bash
# avjax's one entry script: creates and reuses a virtual environment, installs what is
# missing, then runs the job.
#   ./run.sh demo            train AVOL-Net (demo variant) on the embedded dataset, evaluate
#                            (metrics, pictures, report.html) and export it
#   ./run.sh test [ARGS]     the test suite (pytest ARGS)
#   ./run.sh train ARGS      python -m avjax.main ARGS
#   ./run.sh bench [ARGS]    python -m benchmarks ARGS (the step benchmark)
# Each first builds the embedded dataset when it is not built yet (python -m embedded_dataset,
# into $AVJAX_DATA or ~/.cache/avjax); train skips that when ARGS set --config.data.root.
set -euo pipefail
cd "$(dirname "$0")"
VENV="${AVJAX_VENV:-.venv}"
PY="$VENV/bin/python"

ensure_env() {
  local stamp="$VENV/.avjax-installed" want
  want="$(cat setup.cfg pyproject.toml run.sh | sha256sum | cut -c1-16)"
  if [ ! -x "$PY" ]; then
    echo "Creating the virtual environment in $VENV ..."
    python3 -m venv "$VENV"
  fi
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "Installing avjax and its dependencies into $VENV (first run only) ..."
    "$PY" -m pip install -q --upgrade pip
    "$PY" -m pip install -q -e ".[dev]"
    # tinysoundfont renders the embedded dataset's instrument sounds; its pyaudio dependency
    # is for playback only and does not build, so it is installed without dependencies.
    "$PY" -m pip install -q --no-deps "tinysoundfont>=0.3,<1"
    # oneDNN's CPU convolutions, compiled here against the installed jaxlib and oneDNN wheel;
    # where that fails avjax says so in one line and runs XLA's kernels.
    "$PY" -m avjax.models.onednn >/dev/null || true
    echo "$want" > "$stamp"
  fi
}

# The report test renders the HTML report in headless Chromium (Debian's package).
ensure_chromium() {
  if command -v chromium >/dev/null || command -v chromium-browser >/dev/null; then
    return
  fi
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "Installing Chromium for the report test (first run only) ..."
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null \
      || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive \
           apt-get install -y -q chromium >/dev/null; }
  else
    echo "warning: chromium is not installed and cannot be installed here (needs root and" \
         "apt-get); the report test will fail. Install Debian's chromium package." >&2
  fi
}

# The embedded dataset, built once where the run will look for it (data.cache_dir when ARGS
# set it); nothing to do when ARGS give a data root. Silent when it is already built.
ensure_embedded() {
  local arg where=()
  for arg in "$@"; do
    case "$arg" in
      --config.data.root=?*|--config.data.root) return ;;
      --config.data.cache_dir=?*) where=(--cache-dir "${arg#*=}") ;;
    esac
  done
  "$PY" -m embedded_dataset --if-missing ${where[@]+"${where[@]}"}
}

# Runs one step of a multi-step job with SIGTERM and SIGINT passed on to it, so that a
# scheduler's or Ctrl-C's stop reaches the trainer (which saves and exits 143 or 130) and the
# job ends there with that status instead of going on. Single-step jobs use exec instead.
run_step() {
  "$@" &
  local child=$! rc=0
  trap 'kill -TERM "$child" 2>/dev/null' TERM INT
  wait "$child" || rc=$?
  while kill -0 "$child" 2>/dev/null; do  # a trapped signal ends `wait` early: wait again
    rc=0
    wait "$child" || rc=$?
  done
  trap - TERM INT
  return "$rc"
}

cmd="${1:-help}"
[ $# -gt 0 ] && shift
case "$cmd" in
  demo)
    ensure_env
    ensure_embedded "$@"
    workdir="${AVJAX_WORKDIR:-workdirs/avol_demo}"
    run_step "$PY" -m avjax.main --experiment=avol:demo --workdir="$workdir" "$@"
    run_step "$PY" -m avjax.main --experiment=avol:demo --workdir="$workdir" --mode=eval "$@"
    run_step "$PY" -m avjax.main --experiment=avol:demo --workdir="$workdir" --mode=export "$@"
    ;;
  test)
    ensure_env
    ensure_chromium
    ensure_embedded
    exec "$PY" -m pytest "$@"
    ;;
  train)
    ensure_env
    ensure_embedded "$@"
    exec "$PY" -m avjax.main "$@"
    ;;
  bench)
    ensure_env
    ensure_embedded
    exec "$PY" -m benchmarks "$@"
    ;;
  *)
    echo "usage: ./run.sh demo|test|train|bench [ARGS...]" >&2
    exit 2
    ;;
esac
