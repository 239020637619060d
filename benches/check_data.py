"""check-data at scale: opsh against the two raw streams and the original's Python method.

Run through benches/check_data.sh (it builds release binaries and the virtualenv). For each N:
a fresh database with N vector_mappings rows of the content collection (every third chunk_id an
MD5 hex digest, the rest hyphenated UUIDs), and a Qdrant holding the same points minus 0.1%
(missing vectors) plus 0.1% more (orphans), 4-dim vectors. The Qdrant is a fresh qdrant-double
process (release build), or with --qdrant PATH a real Qdrant server run from that binary (its
storage kept in --qdrant-home, default .bench/qdrant-real/, and the collection of each N reused
when it holds the right points; loaded without an HNSW index, which no scroll reads: a million
points take under a minute, ten million about 25 minutes on 2 shared cores; --load-only loads
and stops, so a big N can be loaded ahead); --taskset CPUS pins that server to those CPUs,
--qdrant-ports HTTP,GRPC fixes its ports. Then, each timed with /usr/bin/time (wall seconds, peak
RSS of that process alone, its CPU seconds; with a real server also the server's own CPU seconds
meanwhile, from /proc/PID/stat), each contender --rounds times (default 5, interleaved) and the
median shown; the original's method in the first --python-rounds rounds (default 1);
--contenders keeps only the named ones (prefixes), --page-sizes adds integrity::check with each
page_size:

  opsh check-data the whole report (`opsh --json check-data`): both pairs, the collections, the
                  vector_stored content, stuck jobs; with --k, once per qdrant.scroll_partitions
  opsh check      opsh -e integrity::check(...) of the chunks pair: both streams, merge, counts
  raw postgres    psql \\copy of every chunk_id to /dev/null
  raw scroll      a full id scroll as any client does it (benches/raw_scroll.rs: qdrant-client,
                  10,000 per page, one page after another, counting the ids)
  both at once     the two raw streams run at the same time, doing nothing with the ids: the
                  least any comparison of the two can take on this machine
  opsh scroll     opsh's own scroll of every id (integrity::check of a pair whose table side is
                  empty: same client, same page size, every point an orphan); shown, not used
                  in the ratio
  python original psycopg2 fetchall of the chunk ids, qdrant-client scroll at 100 per page,
                  set difference of the texts (the original's method, which also gets the MD5-hex
                  ids wrong: it counts them as both missing and orphan)
"""
import argparse
import hashlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.environ.get("CARGO_TARGET_DIR") or os.path.join(ROOT, "target")
OPSH = os.path.join(TARGET, "release/opsh")
DOUBLE = os.path.join(TARGET, "release/qdrant-double")
RAW_SCROLL = os.path.join(TARGET, "release/examples/raw_scroll")
TIME = "/usr/bin/time"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(port, timeout=30):
    end = time.time() + timeout
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    sys.exit(f"port {port} never opened")


def chunk_id(i):
    digest = hashlib.md5(str(i).encode()).hexdigest()
    return digest if i % 3 == 0 else str(uuid.UUID(digest))


def server_cpu(pid):
    """The utime + stime of a server process (all its threads) in seconds, 0 without one."""
    if pid is None:
        return 0.0
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def timed(cmd, env, server_pid=None):
    """Runs cmd under /usr/bin/time; returns (seconds, peak RSS MiB, CPU seconds, stdout, the
    Qdrant server's CPU seconds meanwhile)."""
    before = server_cpu(server_pid)
    with tempfile.NamedTemporaryFile("r", suffix=".time") as t:
        run = subprocess.run(
            [TIME, "-o", t.name, "-f", "%e %M %U %S"] + cmd,
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        if run.returncode not in (0, 1):
            sys.exit(f"{cmd[0]} failed ({run.returncode}): {run.stderr}")
        secs, kib, user, system = t.read().split()[-4:]
        return (float(secs), int(kib) / 1024, float(user) + float(system), run.stdout,
                server_cpu(server_pid) - before)


def median_of(runs):
    """The run of median wall time, with the peak RSS the highest of all runs."""
    runs = sorted(runs, key=lambda r: r[0])
    secs, _, cpu, out, server = runs[len(runs) // 2]
    return secs, max(r[1] for r in runs), cpu, out, runs[0][0], server


def psql(url, sql):
    subprocess.run(["psql", "-q", "-v", "ON_ERROR_STOP=1", url, "-c", sql], check=True,
                   stdout=subprocess.DEVNULL)


def rest(base, method, path, body):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method=method,
                                 headers={"content-type": "application/json"})
    with urllib.request.urlopen(req) as r:
        return json.load(r)


ORIGINAL = r'''
import sys, psycopg2
from qdrant_client import QdrantClient
db, grpc_port = sys.argv[1], int(sys.argv[2])
conn = psycopg2.connect(db)
cur = conn.cursor()
cur.execute("SELECT chunk_id FROM vector_mappings WHERE vector_collection = %s", (sys.argv[3],))
pg_ids = set(r[0] for r in cur.fetchall())
client = QdrantClient(host="127.0.0.1", grpc_port=grpc_port, prefer_grpc=True, check_compatibility=False)
q_ids, offset = set(), None
while True:
    points, offset = client.scroll(sys.argv[3], limit=100, offset=offset, with_payload=False, with_vectors=False)
    q_ids.update(str(p.id) for p in points)
    if offset is None:
        break
print(len(pg_ids - q_ids), len(q_ids - pg_ids))
'''


def qdrant_real(binary, taskset, home, ports):
    """A real Qdrant server on the given ports (else free ones), its storage kept in home."""
    os.makedirs(home, exist_ok=True)
    rport, grpc = ports or (free_port(), free_port())
    env = dict(os.environ, QDRANT__SERVICE__HOST="127.0.0.1", QDRANT__SERVICE__HTTP_PORT=str(rport),
               QDRANT__SERVICE__GRPC_PORT=str(grpc), QDRANT__TELEMETRY_DISABLED="true",
               QDRANT__STORAGE__STORAGE_PATH=os.path.join(home, "storage"),
               QDRANT__STORAGE__SNAPSHOTS_PATH=os.path.join(home, "snapshots"))
    cmd = ([os.path.abspath(binary)] if not taskset
           else ["taskset", "-c", taskset, os.path.abspath(binary)])
    log = open(os.path.join(home, "qdrant.log"), "ab")
    proc = subprocess.Popen(cmd, cwd=home, env=env, stdout=log, stderr=log)
    return proc, grpc, rport


def collection_points(base, name):
    """The exact point count of a collection once its optimizers are done, or None if absent."""
    try:
        info = rest(base, "GET", f"/collections/{name}", None)["result"]
    except urllib.error.HTTPError:
        return None
    while info["status"] != "green":
        time.sleep(1)
        info = rest(base, "GET", f"/collections/{name}", None)["result"]
    return rest(base, "POST", f"/collections/{name}/points/count", {"exact": True})["result"]["count"]


def point_ids(n):
    """The collection's point ids: every mapping's but 0.1% (missing), plus 0.1% orphans."""
    for i in range(n):
        if i % 1000 != 1:
            yield str(uuid.UUID(hashlib.md5(str(i).encode()).hexdigest()))
    for k in range(n // 1000):
        yield str(uuid.UUID(hashlib.md5(f"orphan-{k}".encode()).hexdigest()))


BATCH = 20000


def load(base, content, n, real):
    """Makes the collection hold the points of N unless a real server's already does."""
    want = n - n // 1000 + n // 1000
    have = collection_points(base, content) if real else None
    if have == want:
        return
    # A load cut short is taken up again: the batches go in one at a time, each waited for,
    # so a collection holding fewer points holds the first of them (the last batch, perhaps
    # in part, is sent again).
    skip = 0
    if have is not None and have < want:
        skip = have // BATCH * BATCH
        print(f"  (resuming the load of {content} after {skip:,} points)", flush=True)
    else:
        if have is not None:
            rest(base, "DELETE", f"/collections/{content}", None)
        # No HNSW index: a scroll never reads it, and building one over 10M points would take
        # this machine longer than loading them.
        rest(base, "PUT", f"/collections/{content}", {"vectors": {"size": 4, "distance": "Cosine"},
                                                      "optimizers_config": {"indexing_threshold": 0}})
    started, batch = time.time(), []
    for k, i in enumerate(point_ids(n)):
        if k < skip:
            continue
        batch.append({"id": i, "vector": [1, 0, 0, 0]})
        if len(batch) == BATCH:
            rest(base, "PUT", f"/collections/{content}/points?wait=true", {"points": batch})
            batch = []
    if batch:
        rest(base, "PUT", f"/collections/{content}/points?wait=true", {"points": batch})
    if real:
        collection_points(base, content)
        print(f"  (loaded {want:,} points into the real Qdrant in {time.time() - started:.0f} s)",
              flush=True)


def load_only(n, real, taskset, home, ports):
    """--load-only: the real server's collection of N loaded (or found loaded), nothing timed."""
    server, grpc, rport = qdrant_real(real, taskset, home, ports)
    try:
        wait_port(rport, 120)
        load(f"http://127.0.0.1:{rport}", f"bench_content_{n}", n, real)
    finally:
        server.terminate()
        server.wait()


def bench(n, server_url, skip_python, rounds, real, taskset, ks, home, ports, pages, only, python_rounds):
    dbname = f"opsh_bench_check_data_{n}"
    admin = server_url
    psql(admin, f"DROP DATABASE IF EXISTS {dbname}")
    psql(admin, f"CREATE DATABASE {dbname}")
    u = urllib.parse.urlparse(server_url)
    db = urllib.parse.urlunparse(u._replace(path="/" + dbname))
    env = dict(os.environ, DATABASE_URL=db, NO_COLOR="1")
    subprocess.run([OPSH, "--yes", "migrate"], env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    psql(db, """
        INSERT INTO channels (id, name, url, platform) VALUES (1, 'c', 'u', 'youtube');
        INSERT INTO content (id, channel_id, external_id, title, url) VALUES (1, 1, 'v', 't', 'u');""")
    # A real server keeps its collections between runs: one per N.
    content = f"bench_content_{n}" if real else "youtube_content"
    psql(db, f"""
        INSERT INTO vector_mappings (content_id, chunk_id, vector_collection, chunk_text)
        SELECT 1, CASE WHEN i % 3 = 0 THEN md5(i::text) ELSE md5(i::text)::uuid::text END,
               '{content}', 'x'
        FROM generate_series(0, {n - 1}) AS i;
        ANALYZE vector_mappings;""")

    if real:
        server, grpc, rport = qdrant_real(real, taskset, home, ports)
    else:
        grpc, rport = free_port(), free_port()
        server = subprocess.Popen([DOUBLE, "--grpc-port", str(grpc), "--rest-port", str(rport)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(grpc, 120)
        wait_port(rport, 120)
        base = f"http://127.0.0.1:{rport}"
        load(base, content, n, real)
        if not real or collection_points(base, "youtube_summaries") is None:
            rest(base, "PUT", "/collections/youtube_summaries", {"vectors": {"size": 4, "distance": "Cosine"}})
        env.update(QDRANT_URL=f"http://127.0.0.1:{grpc}", OPSH_QDRANT_REST_URL=base,
                   OPSH_QDRANT_CONTENT_COLLECTION=content)

        chunks = ('#{name: "chunks", table: "vector_mappings", id_column: "chunk_id", '
                  f'filter: "vector_collection = \'{content}\'", collection: "{content}"}}')
        check = (f'let c = integrity::check(#{{pairs: [{chunks}]}}); '
                 'let p = c.pairs[0]; [p.rows, p.points, p.matched, p.missing, p.orphans, p.invalid]')
        scroll = ('let c = integrity::check(#{pairs: [#{name: "scroll", table: "vector_mappings", '
                  f'id_column: "chunk_id", filter: "false", collection: "{content}"}}]}}); '
                  'c.pairs[0].points')
        raw_copy = ("\\copy (SELECT chunk_id FROM vector_mappings WHERE vector_collection = "
                    f"'{content}') TO '/dev/null'")
        # Each k its own contender: an environment of its own.
        def with_k(k, cmd):
            return ["env", f"OPSH_QDRANT_SCROLL_PARTITIONS={k}"] + cmd
        whole = [OPSH, "--json", "check-data"]
        contenders = {"opsh check-data": whole}
        for k in ks:
            contenders[f"opsh check-data, k={k}"] = with_k(k, whole)
        contenders.update({
            "opsh check": [OPSH, "--json", "-e", check],
        })
        # integrity::check's page_size, each its own contender (the default is "opsh check").
        for size in pages:
            contenders[f"opsh check, page_size={size}"] = [
                OPSH, "--json", "-e", check.replace("pairs: [", f"page_size: {size}, pairs: [", 1)]
        contenders.update({
            "raw postgres (psql \\copy)": ["psql", db, "-Atc", raw_copy],
            "raw scroll (client loop)": [RAW_SCROLL, f"http://127.0.0.1:{grpc}", content],
            "both raw streams at once": [
                "bash", "-c", f'"{RAW_SCROLL}" http://127.0.0.1:{grpc} {content} >/dev/null & '
                f'psql "$DATABASE_URL" -Atc "{raw_copy}" >/dev/null & wait'],
            "opsh scroll, no rows": [OPSH, "--json", "-e", scroll],
        })
        if only:
            contenders = {k: v for k, v in contenders.items() if any(k.startswith(o) for o in only)}
        if not skip_python:
            py = os.path.join(ROOT, ".bench/check-data-venv/bin/python")
            contenders["python original"] = [py, "-c", ORIGINAL, db, str(grpc), content]
        # Rounds interleaved, so a passing load shifts every contender alike; the Python peer
        # only in the first python_rounds of them.
        runs = {name: [] for name in contenders}
        for r in range(rounds):
            for name, cmd in contenders.items():
                if name != "python original" or r < python_rounds:
                    runs[name].append(timed(cmd, env, server.pid))
        results = {name: median_of(r) for name, r in runs.items() if r}
    finally:
        server.terminate()
        server.wait()
        psql(admin, f"DROP DATABASE IF EXISTS {dbname}")

    where = f"a real Qdrant ({real}{', taskset -c ' + taskset if taskset else ''})" if real else "the qdrant-double"
    print(f"\nN = {n:,} mappings, {n - n // 1000 + n // 1000:,} points in {where}; median of {rounds} rounds"
          f" (python: {'skipped' if skip_python else min(rounds, python_rounds)})")
    print(f"  {'':32} {'seconds':>8} {'min':>6} {'CPU s':>6} {'peak RSS MiB':>13} {'server CPU s':>12}"
          "  output")
    for name, (secs, mib, cpu, out, least, scpu) in results.items():
        print(f"  {name:32} {secs:8.2f} {least:6.2f} {cpu:6.2f} {mib:13.1f} {scpu:12.2f}"
              f"  {out.strip()[:60]}")
    with open("/proc/loadavg") as f:
        print(f"  load average at the end: {' '.join(f.read().split()[:3])}")
    def median_secs(name):
        return results[name][0] if name in results else None
    raw_pg, raw_scroll, both = (median_secs("raw postgres (psql \\copy)"), median_secs("raw scroll (client loop)"),
                                median_secs("both raw streams at once"))
    whole, check = median_secs("opsh check-data"), median_secs("opsh check")
    if whole and raw_scroll:
        print(f"  opsh check-data / raw scroll alone: {whole / raw_scroll:.2f}x")
    if check and raw_pg and raw_scroll:
        slower_raw = max(raw_pg, raw_scroll)
        print(f"  opsh check / slower raw stream: {check / slower_raw:.2f}x")
        if both:
            print(f"  both raw streams at once / slower raw stream: {both / slower_raw:.2f}x"
                  f" (the floor of any comparison on this machine); opsh / that: {check / both:.2f}x")
    if "python original" in results and whole:
        print(f"  python original / opsh check-data: {results['python original'][0] / whole:.1f}x")
    sys.stdout.flush()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", default="100000,1000000", help="comma-separated sizes")
    ap.add_argument("--skip-python", action="store_true", help="skip the original's method")
    ap.add_argument("--rounds", type=int, default=5,
                    help="runs of each contender (interleaved); the median is shown")
    ap.add_argument("--qdrant", metavar="PATH",
                    help="a real Qdrant server binary to run instead of the qdrant-double")
    ap.add_argument("--taskset", metavar="CPUS", help="pin the real Qdrant to these CPUs (taskset -c)")
    ap.add_argument("--k", default="", help="comma-separated qdrant.scroll_partitions to time apart")
    ap.add_argument("--qdrant-home", metavar="DIR", default=os.path.join(ROOT, ".bench/qdrant-real"),
                    help="the real server's working directory and storage, kept between runs"
                    " (default .bench/qdrant-real)")
    ap.add_argument("--qdrant-ports", metavar="HTTP,GRPC",
                    help="the real server's ports (default: free ones)")
    ap.add_argument("--python-rounds", type=int, default=1,
                    help="how many of the rounds the original's method joins (default 1)")
    ap.add_argument("--page-sizes", default="",
                    help="comma-separated integrity::check page_size values to time apart")
    ap.add_argument("--contenders", default="",
                    help="comma-separated names (prefixes) of the only contenders to run")
    ap.add_argument("--load-only", action="store_true",
                    help="only load the real server's collection of each N (no database, no timing)")
    args = ap.parse_args()
    ports = tuple(int(p) for p in args.qdrant_ports.split(",")) if args.qdrant_ports else None
    if args.load_only:
        if not args.qdrant:
            sys.exit("--load-only needs --qdrant PATH")
        for n in (int(x) for x in args.n.split(",")):
            load_only(n, args.qdrant, args.taskset, args.qdrant_home, ports)
        return
    url = os.environ.get("OPSH_TEST_PG_ADMIN_URL") or os.environ.get("DATABASE_URL")
    if not url:
        sys.exit("DATABASE_URL is not set: run under tools/with-services")
    for n in (int(x) for x in args.n.split(",")):
        bench(n, url, args.skip_python, max(1, args.rounds), args.qdrant, args.taskset,
              [int(k) for k in args.k.split(",") if k], args.qdrant_home, ports,
              [int(p) for p in args.page_sizes.split(",") if p],
              [c for c in args.contenders.split(",") if c], args.python_rounds)


if __name__ == "__main__":
    main()
