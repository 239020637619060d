"""check-data against a Qdrant cluster: 3 shards on 3 peers against the same points on one node.

Run through benches/check_data_cluster.sh. Both are real Qdrant servers run from --qdrant PATH
(e.g. ../shared/tools/qdrant-1.18.3.xz unpacked): three peers in distributed mode (one shard of the
collection on each, replication_factor 1) and one single node, their storage in
.bench/qdrant-cluster/ (wiped each run). The same N points go to both: N vector_mappings rows
(every fifth chunk_id a number, every third of the rest an MD5 hex digest), the points minus 0.1% (missing) plus 0.1% more (orphans),
4-dim vectors. Then `opsh --json check-data` against each, --rounds times interleaved, timed with
/usr/bin/time (wall seconds, peak RSS of opsh); the median shown, and the two reports' pair counts,
which must be equal.
"""
import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.environ.get("CARGO_TARGET_DIR") or os.path.join(ROOT, "target")
OPSH = os.path.join(TARGET, "release/opsh")
RAW_SCROLL = os.path.join(TARGET, "release/examples/raw_scroll")
TIME = "/usr/bin/time"
HOME = os.path.join(ROOT, ".bench/qdrant-cluster")


def rest(base, method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method=method,
                                 headers={"content-type": "application/json"})
    with urllib.request.urlopen(req) as r:
        return json.load(r)


def wait(cond, what, timeout=60):
    end = time.time() + timeout
    while time.time() < end:
        try:
            if cond():
                return
        except (OSError, urllib.error.URLError, KeyError):
            pass
        time.sleep(0.3)
    sys.exit(f"check_data_cluster: {what} never happened")


def start(binary, name, http, grpc, p2p=None, args=()):
    d = os.path.join(HOME, name)
    os.makedirs(d, exist_ok=True)
    env = dict(os.environ, QDRANT__SERVICE__HOST="127.0.0.1", QDRANT__SERVICE__HTTP_PORT=str(http),
               QDRANT__SERVICE__GRPC_PORT=str(grpc), QDRANT__TELEMETRY_DISABLED="true",
               QDRANT__STORAGE__STORAGE_PATH=os.path.join(d, "storage"),
               QDRANT__STORAGE__SNAPSHOTS_PATH=os.path.join(d, "snapshots"))
    if p2p:
        env.update(QDRANT__CLUSTER__ENABLED="true", QDRANT__CLUSTER__P2P__PORT=str(p2p))
    log = open(os.path.join(d, "log"), "ab")
    return subprocess.Popen([os.path.abspath(binary), *args], cwd=d, env=env, stdout=log, stderr=log)


def psql(url, sql):
    subprocess.run(["psql", "-q", "-v", "ON_ERROR_STOP=1", url, "-c", sql], check=True,
                   stdout=subprocess.DEVNULL)


def point_id(i):
    """Row i's point: a number for every fifth, else the UUID of its MD5."""
    return i if i % 5 == 2 else str(uuid.UUID(hashlib.md5(str(i).encode()).hexdigest()))


def load(base, name, n, create):
    rest(base, "PUT", f"/collections/{name}", create)
    ids = [point_id(i) for i in range(n) if i % 1000 != 1]
    ids += [str(uuid.UUID(hashlib.md5(f"orphan-{k}".encode()).hexdigest())) for k in range(n // 1000)]
    for s in range(0, len(ids), 20000):
        rest(base, "PUT", f"/collections/{name}/points?wait=true",
             {"points": [{"id": i, "vector": [1, 0, 0, 0]} for i in ids[s:s + 20000]]})
    wait(lambda: rest(base, "GET", f"/collections/{name}")["result"]["status"] == "green",
         f"{name} green", 600)
    rest(base, "PUT", "/collections/youtube_summaries", {"vectors": {"size": 4, "distance": "Cosine"}})


def timed(cmd, env):
    with tempfile.NamedTemporaryFile("r", suffix=".time") as t:
        run = subprocess.run([TIME, "-o", t.name, "-f", "%e %M"] + cmd, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if run.returncode not in (0, 1):
            sys.exit(f"opsh failed ({run.returncode}): {run.stderr}")
        secs, kib = t.read().split()[-2:]
        return float(secs), int(kib) / 1024, run.stdout


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--qdrant", required=True, metavar="PATH", help="a real Qdrant server binary")
    ap.add_argument("--n", type=int, default=300000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--opsh", default=OPSH, help="the opsh binary (default: the release build)")
    ap.add_argument("--raw-scroll", default=RAW_SCROLL,
                    help="benches/raw_scroll.rs built (default: the release build)")
    ap.add_argument("--port", type=int, default=51333,
                    help="first of the ports: peer i (0..2) HTTP/gRPC/p2p at port+1000i, +1, +2; "
                         "the single node at port+100, +101")
    args = ap.parse_args()
    opsh = args.opsh
    url = os.environ.get("OPSH_TEST_PG_ADMIN_URL") or os.environ.get("DATABASE_URL")
    if not url:
        sys.exit("DATABASE_URL is not set: run under tools/with-services")
    shutil.rmtree(HOME, ignore_errors=True)
    ports = [(args.port + 1000 * i, args.port + 1000 * i + 1, args.port + 1000 * i + 2) for i in range(3)]
    single = (args.port + 100, args.port + 101)
    procs = []
    n = args.n
    dbname = f"opsh_bench_check_data_cluster_{n}"
    try:
        (h, g, p) = ports[0]
        procs.append(start(args.qdrant, "peer0", h, g, p, ["--uri", f"http://127.0.0.1:{p}"]))
        wait(lambda: rest(f"http://127.0.0.1:{h}", "GET", "/cluster")["result"]["raft_info"]["leader"],
             "a leader")
        for i in (1, 2):
            (hi, gi, pi) = ports[i]
            procs.append(start(args.qdrant, f"peer{i}", hi, gi, pi,
                               ["--bootstrap", f"http://127.0.0.1:{p}", "--uri", f"http://127.0.0.1:{pi}"]))
            time.sleep(2)
        for (hi, _, _) in ports:
            wait(lambda: len(rest(f"http://127.0.0.1:{hi}", "GET", "/cluster")["result"]["peers"]) == 3,
                 f"3 peers on {hi}")
        procs.append(start(args.qdrant, "single", *single))
        wait(lambda: rest(f"http://127.0.0.1:{single[0]}", "GET", "/collections"), "the single node")

        psql(url, f"DROP DATABASE IF EXISTS {dbname}")
        psql(url, f"CREATE DATABASE {dbname}")
        u = urllib.parse.urlparse(url)
        db = urllib.parse.urlunparse(u._replace(path="/" + dbname))
        env = dict(os.environ, DATABASE_URL=db, NO_COLOR="1")
        subprocess.run([opsh, "--yes", "migrate"], env=env, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        psql(db, """
            INSERT INTO channels (id, name, url, platform) VALUES (1, 'c', 'u', 'youtube');
            INSERT INTO content (id, channel_id, external_id, title, url) VALUES (1, 1, 'v', 't', 'u');
            INSERT INTO vector_mappings (content_id, chunk_id, vector_collection, chunk_text)
            SELECT 1, CASE WHEN i % 5 = 2 THEN i::text WHEN i % 3 = 0 THEN md5(i::text)
                           ELSE md5(i::text)::uuid::text END,
                   'youtube_content', 'x'
            FROM generate_series(0, """ + str(n - 1) + """) AS i;
            ANALYZE vector_mappings;""")
        started = time.time()
        cluster_base = f"http://127.0.0.1:{ports[0][0]}"
        load(cluster_base, "youtube_content", n,
             {"vectors": {"size": 4, "distance": "Cosine"}, "shard_number": 3, "replication_factor": 1})
        shards = rest(cluster_base, "GET", "/collections/youtube_content/cluster")["result"]
        print(f"loaded the cluster in {time.time() - started:.0f} s; peer {shards['peer_id']} holds "
              f"{[(s['shard_id'], s['points_count']) for s in shards['local_shards']]}, others "
              f"{[(s['shard_id'], s['peer_id']) for s in shards['remote_shards']]}")
        started = time.time()
        load(f"http://127.0.0.1:{single[0]}", "youtube_content", n, {"vectors": {"size": 4, "distance": "Cosine"}})
        print(f"loaded the single node in {time.time() - started:.0f} s")

        # Peer i's REST address by its p2p host would be 127.0.0.1 on one port for all: name them.
        peers = {}
        for (hi, _, _) in ports:
            me = rest(f"http://127.0.0.1:{hi}", "GET", "/cluster")["result"]["peer_id"]
            peers[str(me)] = f"http://127.0.0.1:{hi}"
        targets = {
            "cluster (3 peers, 3 shards)": dict(env, QDRANT_URL=f"http://127.0.0.1:{ports[0][1]}",
                                                OPSH_QDRANT_REST_URL=cluster_base,
                                                OPSH_QDRANT_PEERS=json.dumps(peers)),
            "single node": dict(env, QDRANT_URL=f"http://127.0.0.1:{single[1]}",
                                OPSH_QDRANT_REST_URL=f"http://127.0.0.1:{single[0]}"),
        }
        runs = {name: [] for name in targets}
        # The floor: a full id scroll as any client does it (10,000 per page), and check-data
        # with the scroll split into 3 ranges read at once (qdrant.scroll_partitions).
        grpc = {name: e["QDRANT_URL"] for name, e in targets.items()}
        raw = {name: [] for name in targets}
        split = {name: [] for name in targets}
        for _ in range(args.rounds):
            for name, e in targets.items():
                runs[name].append(timed([opsh, "--json", "check-data"], e))
                raw[name].append(timed([args.raw_scroll, grpc[name], "youtube_content"], e))
                split[name].append(timed([opsh, "--json", "check-data"],
                                         dict(e, OPSH_QDRANT_SCROLL_PARTITIONS="3")))
        print(f"\nN = {n:,} mappings, {n:,} points; {opsh} --json check-data, median of {args.rounds} rounds")
        print(f"  {'':30} {'seconds':>8} {'all runs':>20} {'peak RSS MiB':>13}  chunks pair")
        medians = {}
        samples = {}
        for name, rs in runs.items():
            by_time = sorted(rs, key=lambda r: r[0])
            secs, _, out = by_time[len(rs) // 2]
            medians[name] = secs
            report = json.loads(out)["report"]
            pair = next(p for p in report["data"]["pairs"] if p["name"] == "chunks")
            counts = {k: pair[k] for k in ("rows", "points", "matched", "missing", "orphans", "invalid")}
            samples[name] = {k: pair[k] for k in pair if k.startswith("sample_")}
            print(f"  {name:30} {secs:8.2f} {' '.join(f'{r[0]:.2f}' for r in rs):>20} "
                  f"{max(r[1] for r in rs):13.1f}  {counts} status {report['status']}")
        a, b = samples.values()
        print(f"  the samples of missing and orphan ids (first by Qdrant's order) are {'equal' if a == b else 'DIFFERENT'}")
        a, b = medians.values()
        print(f"  cluster / single node: {a / b:.2f}x")
        for label, table in (("raw scroll (client loop)", raw), ("check-data, scroll_partitions=3", split)):
            m = {}
            for name, rs in table.items():
                by_time = sorted(rs, key=lambda r: r[0])
                m[name] = by_time[len(rs) // 2][0]
                print(f"  {label + ', ' + name:54} {m[name]:8.2f}s  runs {' '.join(f'{r[0]:.2f}' for r in rs)}"
                      f"  peak RSS {max(r[1] for r in rs):.1f} MiB")
            a, b = m.values()
            print(f"  {label}: cluster / single node: {a / b:.2f}x")
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait()
        psql(url, f"DROP DATABASE IF EXISTS {dbname}")


if __name__ == "__main__":
    main()
