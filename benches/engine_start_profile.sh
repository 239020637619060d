#!/usr/bin/env bash
# Where a container start's time goes inside the Docker Engine: for N containers on a network
# mode, one raw API start alone and N raw API starts at once (POST /containers/ID/start, one
# `curl --parallel`), each under `perf record -a`: wall time of the starts, the CPU the
# engine's processes used (perf samples by command; `exe` is dockerd run again as
# /proc/self/exe: the libnetwork-setkey hook, netns-create, set-ipv6, setup-resolver), and how
# many processes were started meanwhile (exec events, the harness's own curl and date left out).
# No opsh involved: this is the floor any client meets.
#
#   benches/engine_start_profile.sh [N] [NETWORKS...]    (default 10; user bridge none)
#     user    a user-defined bridge network, as Compose makes for a project
#     bridge  the default bridge
#     none    no network (the container still gets its own network namespace)
#
# Needs root, perf, curl and the busybox test image (tools/with-services imports it). The
# machine may be shared: CPU of other commands is listed as "other" and the load average is
# printed. Containers and networks it makes are removed at exit.
set -euo pipefail
N=${1:-10}
shift || true
NETS=("$@")
((${#NETS[@]})) || NETS=(user bridge none)
IMAGE=${OPSH_TEST_BUSYBOX_IMAGE:-opsh-test-busybox:latest}
SOCK=${DOCKER_HOST:-unix:///var/run/docker.sock}
SOCK=${SOCK#unix://}
HZ=1000
WORK=$(mktemp -d)
IDS=()
NET_MADE=
cleanup() {
    ((${#IDS[@]})) && docker rm -f "${IDS[@]}" >/dev/null 2>&1 || true
    [[ -n $NET_MADE ]] && docker network rm "$NET_MADE" >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT INT TERM
command -v perf >/dev/null || { echo "needs perf (apt-get install linux-perf)" >&2; exit 1; }

# The engine's own processes, as perf names them (comm, 15 characters).
ENGINE='^(dockerd|containerd|containerd-shim|runc|runc:\[.*|exe|fuse-overlayfs|iptables|ip6tables|docker-proxy|docker-init|kworker.*|ksoftirqd.*)$'

starts() { # starts ID...: all at once from one curl process; fails unless each answers 204
    local args=() id
    for id in "$@"; do args+=(-o /dev/null "http://docker/containers/$id/start"); done
    local codes
    codes=$(curl -s --no-progress-meter --parallel --parallel-immediate --parallel-max "$#" \
        --unix-socket "$SOCK" -X POST -w '%{http_code}\n' "${args[@]}")
    [[ $(grep -c '^204$' <<<"$codes") == "$#" ]] || { echo "start: $codes" >&2; return 1; }
}
export -f starts
export SOCK
export WALL=$WORK/wall

profile() { # profile LABEL ID...: perf around the starts; prints one line
    local label=$1
    shift
    local data=$WORK/perf.data
    # The wall time is the starts' own (perf's start-up and write-out are left out).
    perf record -q -a -F $HZ -e cpu-clock -e sched:sched_process_exec -o "$data" -- \
        bash -c 't0=$(date +%s%N); starts "$@"; t1=$(date +%s%N); echo $(((t1 - t0) / 1000000)) >"$WALL"' \
        _ "$@" >/dev/null 2>&1
    perf script -i "$data" -F comm,event 2>/dev/null | awk -v re="$ENGINE" -v hz=$HZ -v n=$# \
        -v label="$label" -v wall="$(cat "$WALL")" -v details="$WORK/details" '
        /cpu-clock/ { c = $0; sub(/[ \t]+cpu-clock.*/, "", c); sub(/^[ \t]+/, "", c)
                      if (c ~ re) { e[c]++; eng++ } else other++ }
        /sched_process_exec/ { c = $0; sub(/[ \t]+sched:.*/, "", c); sub(/^[ \t]+/, "", c)
                               if (c != "curl" && c != "date") execs++ }
        END {
            printf "%-26s wall %5d ms  engine CPU %5d ms (%d ms a start)  other CPU %5d ms  processes started %d\n",
                label, wall, eng * 1000 / hz, eng * 1000 / hz / n, other * 1000 / hz, execs
            for (c in e) if (e[c] * 1000 / hz >= 5) printf "      %-18s %5d ms\n", c, e[c] * 1000 / hz > details
        }'
    sort -k2 -rn "$WORK/details" 2>/dev/null
    rm -f "$WORK/details"
}

printf 'load average %s; %s cores; %d containers per network mode\n' \
    "$(cut -d' ' -f1-3 /proc/loadavg)" "$(nproc)" "$N"
for net in "${NETS[@]}"; do
    case $net in
        user) NET_MADE=opshprofile$$; docker network create "$NET_MADE" >/dev/null; mode=$NET_MADE ;;
        bridge | none) mode=$net ;;
        *) echo "network mode: user, bridge or none" >&2; exit 1 ;;
    esac
    IDS=()
    for ((i = 0; i <= N; i++)); do
        IDS+=("$(docker create --network "$mode" "$IMAGE" sh -c 'sleep 3600')")
    done
    profile "$net: 1 start alone" "${IDS[N]}"
    profile "$net: $N starts at once" "${IDS[@]:0:N}"
    docker rm -f "${IDS[@]}" >/dev/null
    IDS=()
    if [[ -n $NET_MADE ]]; then docker network rm "$NET_MADE" >/dev/null; NET_MADE=; fi
done
