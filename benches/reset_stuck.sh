#!/bin/sh
# Runs benches/reset_stuck.py in a virtualenv at .bench/venv (git-ignored), creating it and installing
# benches/requirements.txt from PyPI when it is missing or older than the requirements.
#   DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres benches/reset_stuck.sh [options]
# Options: see `benches/reset_stuck.sh --help`.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
venv="$root/.bench/venv"
req="$root/benches/requirements.txt"
stamp="$venv/.requirements-installed"
python=${PYTHON:-python3}
# Peak RSS is measured by /usr/bin/time (Debian's `time`), opsh's parent instead of Python.
if [ ! -x /usr/bin/time ]; then
    apt-get -q update >/dev/null && apt-get -q -y install time >/dev/null
fi

if [ ! -x "$venv/bin/python" ]; then
    echo "reset_stuck.sh: creating $venv" >&2
    "$python" -m venv "$venv"
fi
if [ ! -f "$stamp" ] || [ "$req" -nt "$stamp" ]; then
    echo "reset_stuck.sh: installing $req" >&2
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$req"
    touch "$stamp"
fi
exec "$venv/bin/python" "$root/benches/reset_stuck.py" "$@"
