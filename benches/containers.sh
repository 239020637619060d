#!/usr/bin/env bash
# Container lifecycle benchmark: pause, unpause, stop and start of the 10 containers of one
# Compose project, opsh side by side with docker-compose and with the engine's own API.
#
#   benches/containers.sh [ROUNDS]        (default 5 rounds; needs docker, docker-compose, jq, curl)
#   OPSH=target/release/opsh benches/containers.sh
#   BENCH_SHAPE=stack BENCH_TERM=prompt benches/containers.sh 3
#
# BENCH_SHAPE (what the project is made of):
#   workers  (default) one service scaled to 10 busybox containers on the project's network.
#   stack    10 services named after the deployment's (postgres, redis, qdrant, the workers,
#            the HTTP servers), each publishing one port on 127.0.0.1 (a docker-proxy and NAT
#            rules per container, as the deployment has), postgres/redis/qdrant with a named
#            volume each. Closer to what a start costs the engine in the real stack.
# BENCH_TERM (how a container answers SIGTERM, which is most of what `stop` waits for):
#   loop     (default) `trap 'exit 0' TERM; while true; do sleep 1; done`: the shell runs the
#            trap only when its `sleep 1` ends, so each container exits 0-1 s after SIGTERM.
#   prompt   `sleep 1 & wait $!` in the loop: `wait` is interrupted, the container exits at
#            once, so stop measures the tools and the engine rather than the workload.
#
# Columns, per operation (ms; mean of the rounds, then min-max):
#   opsh         wall time of `opsh -e 'docker::<op>()'` (process start to exit).
#   compose      wall time of `docker-compose <op>` on the same project.
#   api-10       the engine's floor for doing all 10 at once: 10 raw API calls
#                (POST /containers/ID/<op>) sent together by one `curl --parallel` over
#                10 connections to the unix socket.
#   api-1-max    the slowest of the 10 containers' raw API call made alone, one after another:
#                "the slowest single container's operation" without any client's overhead.
#   cli-1-max    the same with the docker CLI (`docker <op> NAME`), what an operator would run.
# The load average is printed before and after; the machine may be shared.
# The project is removed at exit, also on failure or Ctrl-C.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

ROUNDS=${1:-5}
OPSH=${OPSH:-target/release/opsh}
IMAGE=${OPSH_TEST_BUSYBOX_IMAGE:-opsh-test-busybox:latest}
SHAPE=${BENCH_SHAPE:-workers}
TERM_MODE=${BENCH_TERM:-loop}
PROJECT=opshbench$$
DIR=$(mktemp -d)
FILE=$DIR/docker-compose.yml
SOCK=${DOCKER_HOST:-unix:///var/run/docker.sock}
SOCK=${SOCK#unix://}

[[ -x $OPSH ]] || { echo "build opsh first: cargo build --release (or set OPSH)" >&2; exit 1; }
[[ -S $SOCK ]] || { echo "the api columns need the engine's unix socket (DOCKER_HOST=$DOCKER_HOST)" >&2; exit 1; }
cleanup() {
    docker-compose -f "$FILE" -p "$PROJECT" down -v -t 0 >/dev/null 2>&1 || true
    # down once left the project's network behind (the engine kept a stale endpoint): say so.
    local net
    for net in $(docker network ls -q --filter "label=com.docker.compose.project=$PROJECT"); do
        docker network rm "$net" >/dev/null 2>&1 ||
            echo "benches/containers.sh: could not remove network $net of $PROJECT" >&2
    done
    rm -rf "$DIR"
}
trap cleanup EXIT INT TERM

case $TERM_MODE in
    loop) LOOP="trap 'exit 0' TERM; while true; do sleep 1; done" ;;
    prompt) LOOP="trap 'exit 0' TERM; while true; do sleep 1 & wait \$\$!; done" ;;
    *) echo "BENCH_TERM is loop or prompt" >&2; exit 1 ;;
esac
case $SHAPE in
    workers)
        cat >"$FILE" <<YAML
version: "2.4"
services:
  worker:
    image: $IMAGE
    command: ["sh", "-c", "$LOOP"]
    scale: 10
YAML
        ;;
    stack)
        {
            echo 'version: "2.4"'
            echo 'services:'
            port=8000
            for s in postgres redis qdrant data-processor data-collector stt-worker \
                vectorize-worker embedding-server whisper-server agent-service; do
                port=$((port + 1))
                echo "  $s:"
                echo "    image: $IMAGE"
                echo "    command: [\"sh\", \"-c\", \"$LOOP\"]"
                echo "    ports: [\"127.0.0.1::$port\"]"
                case $s in postgres | redis | qdrant) echo "    volumes: [\"${s}_data:/data\"]" ;; esac
            done
            echo 'volumes:'
            for v in postgres redis qdrant; do echo "  ${v}_data: {}"; done
        } >"$FILE"
        ;;
    *) echo "BENCH_SHAPE is workers or stack" >&2; exit 1 ;;
esac
docker-compose -f "$FILE" -p "$PROJECT" up -d >/dev/null 2>&1
export COMPOSE_PROJECT_NAME=$PROJECT COMPOSE_FILE=$FILE

now() { date +%s%N; }
ms() { echo $((($2 - $1) / 1000000)); }
api() { # api ID OP: one raw engine call; fails on an HTTP status other than 204/304
    local q=
    [[ $2 == stop ]] && q='?t=10'
    local code
    code=$(curl -s -o /dev/null -w '%{http_code}' --unix-socket "$SOCK" -X POST "http://docker/containers/$1/$2$q")
    [[ $code == 204 || $code == 304 ]] || { echo "POST /containers/$1/$2: HTTP $code" >&2; return 1; }
}
api10() { # api10 OP: the 10 calls at once from one curl process (no 10 process starts)
    local q= args=() codes
    [[ $1 == stop ]] && q='?t=10'
    for id in "${IDS[@]}"; do args+=(-o /dev/null "http://docker/containers/$id/$1$q"); done
    codes=$(curl -s --no-progress-meter --parallel --parallel-immediate --parallel-max 10 \
        --unix-socket "$SOCK" -X POST -w '%{http_code}\n' "${args[@]}")
    [[ $(grep -cE '^(204|304)$' <<<"$codes") == 10 ]] || { echo "api-10 $1: $codes" >&2; return 1; }
}
mapfile -t IDS < <(docker ps -q --filter "label=com.docker.compose.project=$PROJECT")
((${#IDS[@]} == 10)) || { echo "expected 10 containers, found ${#IDS[@]}" >&2; exit 1; }

OPS=(pause unpause stop start)
COLS=(opsh compose api10 api1 cli1)
declare -A V # V[col.op] = "v1 v2 ..." one value a round
record() { V[$1.$2]+="$3 "; }

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
for ((round = 1; round <= ROUNDS; round++)); do
    for op in "${OPS[@]}"; do
        t0=$(now)
        out=$("$OPSH" -q --json -e "docker::$op()")
        t1=$(now)
        changed=$(jq .changed <<<"$out")
        [[ $changed == 10 ]] || { echo "opsh $op changed $changed containers, not 10: $out" >&2; exit 1; }
        record opsh "$op" "$(ms "$t0" "$t1")"
    done
    for op in "${OPS[@]}"; do
        t0=$(now)
        docker-compose -f "$FILE" -p "$PROJECT" "$op" >/dev/null 2>&1
        t1=$(now)
        record compose "$op" "$(ms "$t0" "$t1")"
    done
    for op in "${OPS[@]}"; do
        t0=$(now)
        api10 "$op"
        t1=$(now)
        record api10 "$op" "$(ms "$t0" "$t1")"
    done
    for col in api1 cli1; do
        for op in "${OPS[@]}"; do
            worst=0
            for id in "${IDS[@]}"; do
                t0=$(now)
                if [[ $col == api1 ]]; then api "$id" "$op"; else docker "$op" "$id" >/dev/null; fi
                t1=$(now)
                t=$(ms "$t0" "$t1")
                ((t > worst)) && worst=$t
            done
            record "$col" "$op" "$worst"
        done
    done
    printf 'round %d done, load %s\n' "$round" "$(cut -d' ' -f1 /proc/loadavg)" >&2
done
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

stat() { # "v1 v2 ..." -> "mean min max"
    tr ' ' '\n' <<<"$1" | awk 'NF { s += $1; n++; if (n == 1 || $1 < lo) lo = $1; if ($1 > hi) hi = $1 }
        END { printf "%d %d %d\n", s / n, lo, hi }'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

printf '10 containers (shape %s, SIGTERM %s), %d rounds; ms: mean (min-max)\n' "$SHAPE" "$TERM_MODE" "$ROUNDS"
printf 'load average before %s, after %s; %s cores\n' "$LOAD_BEFORE" "$LOAD_AFTER" "$(nproc)"
printf '%-8s %17s %17s %17s %17s %17s %8s %8s %8s %8s\n' op opsh compose api-10 api-1-max cli-1-max \
    opsh/dc opsh/a10 opsh/a1 opsh/c1
for op in "${OPS[@]}"; do
    line=$(printf '%-8s' "$op")
    declare -A M=()
    for col in "${COLS[@]}"; do
        read -r mean lo hi < <(stat "${V[$col.$op]}")
        M[$col]=$mean
        line+=$(printf ' %17s' "$mean ($lo-$hi)")
    done
    line+=$(printf ' %8s %8s %8s %8s' "$(ratio "${M[opsh]}" "${M[compose]}")" \
        "$(ratio "${M[opsh]}" "${M[api10]}")" "$(ratio "${M[opsh]}" "${M[api1]}")" \
        "$(ratio "${M[opsh]}" "${M[cli1]}")")
    echo "$line"
done
