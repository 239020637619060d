#!/usr/bin/env bash
# Start-up benchmark (see benches/startup.py). Needs python3 only.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# Peak RSS is measured by /usr/bin/time (Debian's `time`), opsh's parent instead of Python.
if [[ ! -x /usr/bin/time ]]; then
    apt-get -q update >/dev/null && apt-get -q -y install time >/dev/null
fi
exec python3 benches/startup.py "$@"
