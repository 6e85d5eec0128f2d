#!/usr/bin/env bash
# The main job on the embedded default: set up, then run the demonstration on the local provider.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
exec .venv/bin/kubernetes-agent-sandbox demo "$@"
