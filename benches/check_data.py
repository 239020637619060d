"""check-data at scale: opsh against the two raw streams and the original's Python method.

Run through benches/check_data.sh (it builds release binaries and the virtualenv). For each N:
a fresh database with N vector_mappings rows of youtube_content (every third chunk_id an MD5 hex
digest, the rest hyphenated UUIDs), a fresh qdrant-double process (release build) holding the same
points minus 0.1% (missing vectors) plus 0.1% more (orphans), 4-dim vectors. Then, each timed with
/usr/bin/time (wall seconds, peak RSS of that process alone, its CPU seconds), each contender
--rounds times (default 5, interleaved) and the median shown; the original's method once:

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
OPSH = os.path.join(ROOT, "target/release/opsh")
DOUBLE = os.path.join(ROOT, "target/release/qdrant-double")
RAW_SCROLL = os.path.join(ROOT, "target/release/examples/raw_scroll")
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


def timed(cmd, env):
    """Runs cmd under /usr/bin/time; returns (seconds, peak RSS MiB, CPU seconds, stdout)."""
    with tempfile.NamedTemporaryFile("r", suffix=".time") as t:
        run = subprocess.run(
            [TIME, "-o", t.name, "-f", "%e %M %U %S"] + cmd,
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        if run.returncode not in (0, 1):
            sys.exit(f"{cmd[0]} failed ({run.returncode}): {run.stderr}")
        secs, kib, user, system = t.read().split()[-4:]
        return float(secs), int(kib) / 1024, float(user) + float(system), run.stdout


def median_of(runs):
    """The run of median wall time, with the peak RSS the highest of all runs."""
    runs = sorted(runs, key=lambda r: r[0])
    secs, _, cpu, out = runs[len(runs) // 2]
    return secs, max(r[1] for r in runs), cpu, out, runs[0][0]


def psql(url, sql):
    subprocess.run(["psql", "-q", "-v", "ON_ERROR_STOP=1", url, "-c", sql], check=True,
                   stdout=subprocess.DEVNULL)


def rest(base, method, path, body):
    req = urllib.request.Request(base + path, data=json.dumps(body).encode(), method=method,
                                 headers={"content-type": "application/json"})
    with urllib.request.urlopen(req) as r:
        return json.load(r)


ORIGINAL = r'''
import sys, psycopg2
from qdrant_client import QdrantClient
db, grpc_port = sys.argv[1], int(sys.argv[2])
conn = psycopg2.connect(db)
cur = conn.cursor()
cur.execute("SELECT chunk_id FROM vector_mappings WHERE vector_collection = 'youtube_content'")
pg_ids = set(r[0] for r in cur.fetchall())
client = QdrantClient(host="127.0.0.1", grpc_port=grpc_port, prefer_grpc=True, check_compatibility=False)
q_ids, offset = set(), None
while True:
    points, offset = client.scroll("youtube_content", limit=100, offset=offset, with_payload=False, with_vectors=False)
    q_ids.update(str(p.id) for p in points)
    if offset is None:
        break
print(len(pg_ids - q_ids), len(q_ids - pg_ids))
'''


def bench(n, server_url, skip_python, rounds):
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
    psql(db, f"""
        INSERT INTO vector_mappings (content_id, chunk_id, vector_collection, chunk_text)
        SELECT 1, CASE WHEN i % 3 = 0 THEN md5(i::text) ELSE md5(i::text)::uuid::text END,
               'youtube_content', 'x'
        FROM generate_series(0, {n - 1}) AS i;
        ANALYZE vector_mappings;""")

    grpc, rport = free_port(), free_port()
    double = subprocess.Popen([DOUBLE, "--grpc-port", str(grpc), "--rest-port", str(rport)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(grpc)
        wait_port(rport)
        base = f"http://127.0.0.1:{rport}"
        for c in ("youtube_content", "youtube_summaries"):
            rest(base, "PUT", f"/collections/{c}", {"vectors": {"size": 4, "distance": "Cosine"}})
        ids = [str(uuid.UUID(hashlib.md5(str(i).encode()).hexdigest()))
               for i in range(n) if i % 1000 != 1]
        ids += [str(uuid.UUID(hashlib.md5(f"orphan-{k}".encode()).hexdigest()))
                for k in range(n // 1000)]
        for s in range(0, len(ids), 20000):
            rest(base, "PUT", "/collections/youtube_content/points?wait=true",
                 {"points": [{"id": i, "vector": [1, 0, 0, 0]} for i in ids[s:s + 20000]]})
        del ids
        env.update(QDRANT_URL=f"http://127.0.0.1:{grpc}", OPSH_QDRANT_REST_URL=base)

        chunks = ('#{name: "chunks", table: "vector_mappings", id_column: "chunk_id", '
                  'filter: "vector_collection = \'youtube_content\'", collection: "youtube_content"}')
        check = (f'let c = integrity::check(#{{pairs: [{chunks}]}}); '
                 'let p = c.pairs[0]; [p.rows, p.points, p.matched, p.missing, p.orphans, p.invalid]')
        scroll = ('let c = integrity::check(#{pairs: [#{name: "scroll", table: "vector_mappings", '
                  'id_column: "chunk_id", filter: "false", collection: "youtube_content"}]}); '
                  'c.pairs[0].points')
        raw_copy = ("\\copy (SELECT chunk_id FROM vector_mappings WHERE vector_collection = "
                    "'youtube_content') TO '/dev/null'")
        contenders = {
            "opsh check": [OPSH, "--json", "-e", check],
            "raw postgres (psql \\copy)": ["psql", db, "-Atc", raw_copy],
            "raw scroll (client loop)": [RAW_SCROLL, f"http://127.0.0.1:{grpc}", "youtube_content"],
            "both raw streams at once": [
                "bash", "-c", f'"{RAW_SCROLL}" http://127.0.0.1:{grpc} youtube_content >/dev/null & '
                f'psql "$DATABASE_URL" -Atc "{raw_copy}" >/dev/null & wait'],
            "opsh scroll, no rows": [OPSH, "--json", "-e", scroll],
        }
        # Rounds interleaved, so a passing load shifts every contender alike.
        runs = {name: [] for name in contenders}
        for _ in range(rounds):
            for name, cmd in contenders.items():
                runs[name].append(timed(cmd, env))
        results = {name: median_of(r) for name, r in runs.items()}
        if not skip_python:
            py = os.path.join(ROOT, ".bench/check-data-venv/bin/python")
            results["python original"] = median_of([timed([py, "-c", ORIGINAL, db, str(grpc)], env)])
    finally:
        double.terminate()
        double.wait()
        psql(admin, f"DROP DATABASE IF EXISTS {dbname}")

    print(f"\nN = {n:,} mappings, {n - n // 1000 + n // 1000:,} points; median of {rounds} rounds"
          " (python: one)")
    print(f"  {'':32} {'seconds':>8} {'min':>6} {'CPU s':>6} {'peak RSS MiB':>13}  output")
    for name, (secs, mib, cpu, out, least) in results.items():
        print(f"  {name:32} {secs:8.2f} {least:6.2f} {cpu:6.2f} {mib:13.1f}  {out.strip()[:60]}")
    slower_raw = max(results["raw postgres (psql \\copy)"][0], results["raw scroll (client loop)"][0])
    print(f"  opsh / slower raw stream: {results['opsh check'][0] / slower_raw:.2f}x")
    both = results["both raw streams at once"][0]
    print(f"  both raw streams at once / slower raw stream: {both / slower_raw:.2f}x"
          f" (the floor of any comparison on this machine); opsh / that: {results['opsh check'][0] / both:.2f}x")
    if "python original" in results:
        print(f"  python original / opsh: {results['python original'][0] / results['opsh check'][0]:.1f}x")
    sys.stdout.flush()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", default="100000,1000000", help="comma-separated sizes")
    ap.add_argument("--skip-python", action="store_true", help="skip the original's method")
    ap.add_argument("--rounds", type=int, default=5,
                    help="runs of each contender (interleaved); the median is shown")
    args = ap.parse_args()
    url = os.environ.get("OPSH_TEST_PG_ADMIN_URL") or os.environ.get("DATABASE_URL")
    if not url:
        sys.exit("DATABASE_URL is not set: run under tools/with-services")
    for n in (int(x) for x in args.n.split(",")):
        bench(n, url, args.skip_python, max(1, args.rounds))


if __name__ == "__main__":
    main()
