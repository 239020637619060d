#!/usr/bin/env bash
# Qdrant cluster backup benchmark: `opsh backup-all` (every shard at once) against each shard's
# snapshot + download alone with curl, and `backup::restore_qdrant` into an emptied collection
# against the shards' uploads alone with curl.
# Needs a running Qdrant cluster whose collection COLLECTION (default bench) is already filled,
# e.g. 300,000 points of 32 dims in 3 shards with 2 replicas on 3 peers (/work/shared/tools/
# README.md says how to run real Qdrant as 3 peers on one machine).
#
#   PEERS="http://127.0.0.1:54333 http://127.0.0.1:55333 http://127.0.0.1:56333" \
#   QDRANT_URL=http://127.0.0.1:54334 OPSH_QDRANT_REST_URL=http://127.0.0.1:54333 \
#   OPSH_QDRANT_PEERS='{"<peer id>": "http://127.0.0.1:55333", …}' \
#   RUNS=3 tools/with-services benches/backup_cluster.sh
#
# OPSH: the binary (default target/release/opsh). Prints each run's wall time; opsh's peak RSS
# from /usr/bin/time. Other collections of the cluster are backed up too: keep it to this one.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OPSH=${OPSH:-$root/target/release/opsh}
RUNS=${RUNS:-3}
C=${COLLECTION:-bench}
: "${PEERS:?set PEERS to the REST URLs of the peers}"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
echo 'services: {}' >docker-compose.yml

now() { date +%s.%N; }
# Field `$1` of the JSON answer's result on stdin.
result() { python3 -c "import json, sys; print(json.load(sys.stdin)['result']['$1'])"; }
# The shards with an Active replica on the peer whose collection view is on stdin.
active_shards() {
    python3 -c "import json, sys; print(' '.join(str(x['shard_id']) for x in json.load(sys.stdin)['result']['local_shards'] if x['state'] == 'Active'))"
}
# The peer holding each shard (the first with an Active local replica).
declare -A holder
for p in $PEERS; do
    for s in $(curl -sf "$p/collections/$C/cluster" | active_shards); do
        holder[$s]=${holder[$s]:-$p}
    done
done

for run in $(seq "$RUNS"); do
    slowest=0
    for s in $(printf '%s\n' "${!holder[@]}" | sort -n); do
        p=${holder[$s]}
        t0=$(now)
        name=$(curl -sf -X POST "$p/collections/$C/shards/$s/snapshots?wait=true" | result name)
        curl -sf -o "shard$s.snapshot" "$p/collections/$C/shards/$s/snapshots/$name"
        sha256sum "shard$s.snapshot" >/dev/null
        t=$(python3 -c "print(round($(now) - $t0, 2))")
        curl -sf -X DELETE "$p/collections/$C/shards/$s/snapshots/$name" >/dev/null
        size=$(stat -c %s "shard$s.snapshot")
        echo "run $run: shard $s alone (snapshot + download + sha256 on $p): $t s, $size bytes"
        slowest=$(python3 -c "print(max($t, $slowest))")
        rm -f "shard$s.snapshot"
    done
    echo "run $run: slowest shard alone: $slowest s"
    rm -rf backups
    /usr/bin/time -f "run $run: opsh backup-all verify=false: %e s, peak RSS %M KiB" \
        "$OPSH" --json backup-all dir=backups verify=false >backup.json
done

dir=$(ls -d "$work"/backups/opsh-backup-* | head -1)
for run in $(seq "$RUNS"); do
    # The uploads alone, all at once with curl, each to a holder of its shard (what Qdrant does
    # afterwards — copying each to its other replica — is not waited for here).
    t0=$(now)
    for s in "${!holder[@]}"; do
        f="$dir/qdrant-$C-shard-$s.snapshot"
        curl -sf -X POST "${holder[$s]}/collections/$C/shards/$s/snapshots/upload?wait=true&priority=snapshot&checksum=$(sha256sum "$f" | cut -c1-64)" \
            -F "snapshot=@$f" >/dev/null &
    done
    wait
    echo "run $run: the shards uploaded alone with curl (checksum, upload, recovery): $(python3 -c "print(round($(now) - $t0, 2))") s"
    sleep 10
    # Emptied: every point deleted, the collection kept.
    curl -sf -X POST "${PEERS%% *}/collections/$C/points/delete?wait=true" \
        -H 'content-type: application/json' -d '{"filter": {"must": []}}' >/dev/null
    /usr/bin/time -f "run $run: restore_qdrant into the emptied collection: %e s, peak RSS %M KiB" \
        "$OPSH" --json --yes -e "backup::restore_qdrant(\"$dir\", \"$C\").matches_manifest" 2>&1 |
        grep -v INFO
done
