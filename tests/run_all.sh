#!/usr/bin/env bash
# The whole test suite: lint, then every test (fast tier, real-ACDC tests when TEDSNET_ACDC_ROOT is set, and the
# slow tier that runs the smoke workflow end to end). Usage: bash tests/run_all.sh [extra pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."
ruff check tedsnet baselines tests workflow tools
ruff format --check tedsnet baselines tests workflow tools
snakefmt --check Snakefile workflow/rules
python3 -m pytest tests "$@"
