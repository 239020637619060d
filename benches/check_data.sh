#!/bin/sh
# check-data over N mappings and N points (0.1% orphans, 0.1% missing, a third of the chunk ids
# in MD5-hex form) against the Qdrant double run as its own release-mode process, or with
# --qdrant PATH against a real Qdrant server run from that binary (e.g. ../shared/tools/
# qdrant-1.18.3.xz unpacked; --taskset CPUS pins it), compared with the two raw streams alone and
# with the original's Python method; --k 1,2,4 times check-data with each qdrant.scroll_partitions.
# Needs PostgreSQL:
#   tools/with-services benches/check_data.sh [--n 100000,1000000] [--skip-python]
#   tools/with-services benches/check_data.sh --qdrant /tmp/qdrant --n 1000000 --k 1,2,4
# A big N on a real server: load it once ahead (no database needed), keep its storage apart:
#   python3 benches/check_data.py --load-only --qdrant /tmp/qdrant --qdrant-home DIR --n 10000000
#   tools/with-services benches/check_data.sh --qdrant /tmp/qdrant --qdrant-home DIR --n 10000000
# (--help lists the rest: --qdrant-ports, --contenders, --python-rounds, --page-sizes).
# It builds opsh and qdrant-double in release mode, and makes a virtualenv at
# .bench/check-data-venv (git-ignored) from benches/check_data_requirements.txt.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
venv="$root/.bench/check-data-venv"
req="$root/benches/check_data_requirements.txt"
stamp="$venv/.requirements-installed"
python=${PYTHON:-python3}
if [ ! -x /usr/bin/time ]; then
    apt-get -q update >/dev/null && apt-get -q -y install time >/dev/null
fi
if [ ! -x "$venv/bin/python" ]; then
    echo "check_data.sh: creating $venv" >&2
    "$python" -m venv "$venv"
fi
if [ ! -f "$stamp" ] || [ "$req" -nt "$stamp" ]; then
    echo "check_data.sh: installing $req" >&2
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$req"
    touch "$stamp"
fi
(cd "$root" && cargo build --release --quiet -p opsh -p qdrant-double --bins --example raw_scroll)
exec "$venv/bin/python" "$root/benches/check_data.py" "$@"
