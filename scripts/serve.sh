#!/usr/bin/env bash
# Builds the browser app (scripts/build_web.sh) and serves it with the default model on
# http://localhost:${PORT:-8000}.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build_web.sh
port=${PORT:-8000}
echo "serving http://localhost:$port"
exec python3 scripts/serve.py "$port"
