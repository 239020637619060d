#!/usr/bin/env bash
# `opsh top`: the CPU one refresh costs with every backend up, and how fast a key is answered
# while a backend hangs (its reads wait for top.timeout).
#
#   tools/with-services benches/top.sh [SECONDS]     (default 60; needs tmux, docker, psql)
#   OPSH=target/release/opsh QDRANT_DOUBLE=target/release/qdrant-double tools/with-services benches/top.sh
#
# Set-up: the deployment's schema with the examples' rows (tests/fixtures/examples.sql) in the
# with-services database, the Qdrant double as a process, one busybox container of a Compose
# project of its own, the with-services Redis. `opsh top` runs in a detached tmux session of
# 120×40; every refresh (top.refresh, 2 s) reads all five sources and redraws.
#
# Printed:
#   cpu per refresh   (utime + stime of the opsh process over SECONDS) / (SECONDS / 2 s), in ms:
#                     everything the process does, the readings, the draws, the idle loop.
#   key latency       20 times: `?` sent with tmux send-keys until capture-pane shows the help,
#                     with Qdrant pointed at a listener that accepts and never answers (and
#                     top.timeout 30s), so the vectors pane's reads hang the whole time. Includes
#                     tmux's own delivery and a capture-pane poll every 5 ms.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

SECONDS_RUN=${1:-60}
OPSH=${OPSH:-target/release/opsh}
QDRANT_DOUBLE=${QDRANT_DOUBLE:-target/release/qdrant-double}
IMAGE=${OPSH_TEST_BUSYBOX_IMAGE:-opsh-test-busybox:latest}
PROJECT=opshtopbench$$
SOCKET=opsh-top-bench-$$
[[ -x $OPSH && -x $QDRANT_DOUBLE ]] || {
    echo "build first: cargo build --release -p opsh -p qdrant-double (or set OPSH, QDRANT_DOUBLE)" >&2
    exit 1
}
[[ -n ${DATABASE_URL:-} && -n ${REDIS_URL:-} ]] || { echo "run under tools/with-services" >&2; exit 1; }

pids=()
cleanup() {
    tmux -L "$SOCKET" kill-server 2>/dev/null || true
    docker rm -f "${PROJECT}_web_1" >/dev/null 2>&1 || true
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
}
trap cleanup EXIT INT TERM

psql -q -v ON_ERROR_STOP=1 "$DATABASE_URL" -c 'DROP SCHEMA public CASCADE; CREATE SCHEMA public;' >/dev/null
psql -q -v ON_ERROR_STOP=1 "$DATABASE_URL" -f migrations/deployment/init.sql >/dev/null
# init.sql has rows of its own; the examples' rows that clash with them are skipped.
psql -q "$DATABASE_URL" -f tests/fixtures/examples.sql >/dev/null 2>&1

"$QDRANT_DOUBLE" --grpc-port 56334 --rest-port 56333 >/dev/null 2>&1 &
pids+=($!)
# A listener that accepts and never answers: a Qdrant that hangs.
python3 -c 'import socket,time; s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("127.0.0.1", 56335)); s.listen(64); conns=[]
while True: conns.append(s.accept())' &
pids+=($!)
docker run -d --name "${PROJECT}_web_1" --label "com.docker.compose.project=$PROJECT" \
    --label com.docker.compose.service=web --label com.docker.compose.oneoff=False \
    "$IMAGE" sleep 3600 >/dev/null
sleep 1

start_top() { # session qdrant_url
    tmux -L "$SOCKET" -f /dev/null new-session -d -s "$1" -x 120 -y 40 \
        env NO_COLOR=1 TERM=xterm-256color DATABASE_URL="$DATABASE_URL" REDIS_URL="$REDIS_URL" \
        QDRANT_URL="$2" OPSH_QDRANT_REST_URL=http://127.0.0.1:56333 OPSH_TOP_TIMEOUT=30s \
        COMPOSE_PROJECT_NAME="$PROJECT" "$OPSH" top
}
wait_for() { # session text
    local i
    for ((i = 0; i < 3000; i++)); do
        tmux -L "$SOCKET" capture-pane -p -t "$1" | grep -qF -- "$2" && return 0
        sleep 0.01
    done
    echo "benches/top.sh: $1 never showed: $2" >&2
    exit 1
}

start_top up http://127.0.0.1:56334
wait_for up "stuck (processing > 1h)"
wait_for up "no check-data recorded; counts"
pid=$(tmux -L "$SOCKET" display-message -p -t up '#{pane_pid}')
tck=$(getconf CLK_TCK)
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
before=$(cpu "$pid")
sleep "$SECONDS_RUN"
after=$(cpu "$pid")
refreshes=$((SECONDS_RUN / 2))
awk -v d=$((after - before)) -v t="$tck" -v n="$refreshes" -v s="$SECONDS_RUN" \
    'BEGIN { printf "cpu per refresh: %.1f ms (%.2f s of CPU in %d s, %d refreshes)\n", d * 1000 / t / n, d / t, s, n }'
tmux -L "$SOCKET" kill-session -t up

start_top hang http://127.0.0.1:56335
wait_for hang "stuck (processing > 1h)"
latencies=()
for ((i = 0; i < 20; i++)); do
    t0=$(date +%s%N)
    tmux -L "$SOCKET" send-keys -t hang '?'
    wait_for hang "safe-stop the stack (opsh safe-stop)"
    t1=$(date +%s%N)
    latencies+=($(((t1 - t0) / 1000000)))
    tmux -L "$SOCKET" send-keys -t hang Escape
    sleep 0.2
done
vectors=$(tmux -L "$SOCKET" capture-pane -p -t hang | grep -c "reading…" || true)
printf '%s\n' "${latencies[@]}" | sort -n | awk -v v="$vectors" '{ a[NR] = $1 } END {
    printf "key latency while Qdrant hangs: median %d ms, max %d ms over %d presses (vectors pane still reading: %s)\n", a[int((NR + 1) / 2)], a[NR], NR, (v > 0 ? "yes" : "no") }'
