#!/usr/bin/env bash
# Container lifecycle benchmark: pause, unpause, stop and start of the 10 containers of one
# Compose project, opsh side by side with docker-compose on the same project.
#
#   benches/containers.sh [ROUNDS]        (default 5 rounds; needs docker, docker-compose, jq)
#   OPSH=target/release/opsh benches/containers.sh
#
# The project is 10 busybox containers (OPSH_TEST_BUSYBOX_IMAGE, default
# opsh-test-busybox:latest, which tools/with-services imports) that exit on SIGTERM, so stop
# measures the engine, not a timeout. Wall time comes from date +%s%N around each command. For
# opsh it also prints the slowest single container's operation inside that run (the
# per-container `seconds` opsh reports), the floor a concurrent run cannot go below, and the
# slowest of the 10 containers' operation with the docker CLI one at a time
# (`docker pause NAME`, …), what an operator would otherwise run per container.
# The project is removed at exit, also on failure or Ctrl-C.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

ROUNDS=${1:-5}
OPSH=${OPSH:-target/release/opsh}
IMAGE=${OPSH_TEST_BUSYBOX_IMAGE:-opsh-test-busybox:latest}
PROJECT=opshbench$$
DIR=$(mktemp -d)
FILE=$DIR/docker-compose.yml

[[ -x $OPSH ]] || { echo "build opsh first: cargo build --release (or set OPSH)" >&2; exit 1; }
cleanup() {
    docker-compose -f "$FILE" -p "$PROJECT" down -t 0 >/dev/null 2>&1 || true
    rm -rf "$DIR"
}
trap cleanup EXIT INT TERM

cat >"$FILE" <<YAML
version: "2.4"
services:
  worker:
    image: $IMAGE
    command: ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"]
    scale: 10
YAML
docker-compose -f "$FILE" -p "$PROJECT" up -d >/dev/null 2>&1
export COMPOSE_PROJECT_NAME=$PROJECT COMPOSE_FILE=$FILE

now() { date +%s%N; }
ms() { echo $(( ($2 - $1) / 1000000 )); }

declare -A OPSH_SUM COMPOSE_SUM SLOW_SUM CLI_SUM
for op in pause unpause stop start; do OPSH_SUM[$op]=0; COMPOSE_SUM[$op]=0; SLOW_SUM[$op]=0; CLI_SUM[$op]=0; done
mapfile -t NAMES < <(docker ps -q --filter "label=com.docker.compose.project=$PROJECT")

for ((round = 1; round <= ROUNDS; round++)); do
    for op in pause unpause stop start; do
        t0=$(now)
        out=$("$OPSH" -q --json -e "docker::$op()")
        t1=$(now)
        changed=$(jq .changed <<<"$out")
        [[ $changed == 10 ]] || { echo "opsh $op changed $changed containers, not 10: $out" >&2; exit 1; }
        slow=$(jq '[.containers[].seconds] | max * 1000 | floor' <<<"$out")
        OPSH_SUM[$op]=$(( OPSH_SUM[$op] + $(ms "$t0" "$t1") ))
        SLOW_SUM[$op]=$(( SLOW_SUM[$op] + slow ))
    done
    for op in pause unpause stop start; do
        t0=$(now)
        docker-compose -f "$FILE" -p "$PROJECT" "$op" >/dev/null 2>&1
        t1=$(now)
        COMPOSE_SUM[$op]=$(( COMPOSE_SUM[$op] + $(ms "$t0" "$t1") ))
    done
    for op in pause unpause stop start; do
        worst=0
        for name in "${NAMES[@]}"; do
            t0=$(now)
            docker "$op" "$name" >/dev/null
            t1=$(now)
            t=$(ms "$t0" "$t1")
            ((t > worst)) && worst=$t
        done
        CLI_SUM[$op]=$(( CLI_SUM[$op] + worst ))
    done
done

printf '10 containers, mean of %d rounds (ms)\n' "$ROUNDS"
printf '%-8s %8s %15s %12s %12s %8s %9s\n' op opsh docker-compose in-opsh-max docker-1-max opsh/dc opsh/1-max
for op in pause unpause stop start; do
    o=$(( OPSH_SUM[$op] / ROUNDS )); c=$(( COMPOSE_SUM[$op] / ROUNDS ))
    s=$(( SLOW_SUM[$op] / ROUNDS )); d=$(( CLI_SUM[$op] / ROUNDS ))
    printf '%-8s %8d %15d %12d %12d %8s %9s\n' "$op" "$o" "$c" "$s" "$d" \
        "$(awk -v a="$o" -v b="$c" 'BEGIN { printf "%.2f", a / b }')" \
        "$(awk -v a="$o" -v b="$d" 'BEGIN { printf "%.2f", a / b }')"
done
