#!/usr/bin/env bash
# Start-up benchmark (see benches/startup.py). Needs python3 only.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
exec python3 benches/startup.py "$@"
