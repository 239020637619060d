#!/bin/sh
# check-data against a real 3-peer Qdrant cluster (3 shards) and the same points on one real
# node (benches/check_data_cluster.py says what it does). Needs PostgreSQL and a Qdrant binary:
#   tools/with-services benches/check_data_cluster.sh --qdrant /tmp/qdrant [--n 300000] [--rounds 3]
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
if [ ! -x /usr/bin/time ]; then
    apt-get -q update >/dev/null && apt-get -q -y install time >/dev/null
fi
(cd "$root" && cargo build --release --quiet -p opsh --example raw_scroll)
exec python3 "$root/benches/check_data_cluster.py" "$@"
