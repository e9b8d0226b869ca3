#!/usr/bin/env bash
# Serves the app on http://localhost:${PORT:-8000}.
# The browser app (wasm build, Web Worker, UI) is not built yet: until it lands this serves
# index.html, which says so and points at the command-line tool.
set -euo pipefail
cd "$(dirname "$0")/.."
port=${PORT:-8000}
echo "serving http://localhost:$port"
exec python3 -m http.server "$port" --bind 127.0.0.1
