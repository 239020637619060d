"""What a real Qdrant spends of its own CPU per scrolled id, by page size and transport.

    python3 benches/scroll_cost.py --qdrant /tmp/qdrant --qdrant-home DIR [--qdrant-ports HTTP,GRPC] \
        --collection bench_content_1000000 [--pages 1000,10000,50000,100000] [--rounds 3] \
        [--transports grpc,rest]

Starts the server from its kept storage (benches/check_data.py --load-only fills it), then for
each page size, a full id scroll of the collection (no payload, no vectors) over gRPC
(target/release/examples/raw_scroll, as any client does it) and over REST (POST
/collections/NAME/points/scroll, one page after another, from this process), each round
interleaved. For each it reads the server's utime+stime from /proc/PID/stat before and after:
the server's CPU seconds per million ids, which no client can take away, beside the wall time.
Needs only the Python standard library and a release build of the raw_scroll example.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from check_data import RAW_SCROLL, qdrant_real, wait_port  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    """utime + stime of the process (all its threads), in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def rest_scroll(base, collection, page):
    count, offset = 0, None
    while True:
        body = {"limit": page, "with_payload": False, "with_vector": False}
        if offset is not None:
            body["offset"] = offset
        req = urllib.request.Request(f"{base}/collections/{collection}/points/scroll",
                                     data=json.dumps(body).encode(), method="POST",
                                     headers={"content-type": "application/json"})
        with urllib.request.urlopen(req) as r:
            result = json.load(r)["result"]
        count += len(result["points"])
        offset = result.get("next_page_offset")
        if offset is None:
            return count


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--qdrant", metavar="PATH", required=True)
    ap.add_argument("--qdrant-home", metavar="DIR", required=True)
    ap.add_argument("--qdrant-ports", metavar="HTTP,GRPC", help="default: free ones")
    ap.add_argument("--collection", required=True)
    ap.add_argument("--pages", default="1000,10000,50000,100000")
    ap.add_argument("--transports", default="grpc,rest")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    ports = tuple(int(p) for p in args.qdrant_ports.split(",")) if args.qdrant_ports else None
    server, grpc, rport = qdrant_real(args.qdrant, None, args.qdrant_home, ports)
    try:
        wait_port(rport, 120)
        wait_port(grpc, 120)
        base = f"http://127.0.0.1:{rport}"
        rest_scroll(base, args.collection, 100000)  # warm the page cache once
        pages = [int(p) for p in args.pages.split(",")]
        transports = args.transports.split(",")
        runs = {(t, p): [] for t in transports for p in pages}
        for _ in range(args.rounds):
            for t in transports:
                for p in pages:
                    before, started = cpu_seconds(server.pid), time.time()
                    if t == "grpc":
                        out = subprocess.run([RAW_SCROLL, f"http://127.0.0.1:{grpc}", args.collection,
                                              str(p)], check=True, capture_output=True, text=True)
                        count = int(out.stdout)
                    else:
                        count = rest_scroll(base, args.collection, p)
                    wall, cpu = time.time() - started, cpu_seconds(server.pid) - before
                    runs[(t, p)].append((wall, cpu, count))
        with open("/proc/loadavg") as f:
            load = " ".join(f.read().split()[:3])
        print(f"{args.collection}: median of {args.rounds} rounds, load average at the end {load}")
        print(f"  {'transport':9} {'page':>7} {'ids':>10} {'wall s':>7} {'Qdrant CPU s':>13}"
              f" {'per M ids':>10}")
        for (t, p), r in runs.items():
            wall = statistics.median(x[0] for x in r)
            cpu = statistics.median(x[1] for x in r)
            count = r[0][2]
            print(f"  {t:9} {p:7} {count:10} {wall:7.2f} {cpu:13.2f} {cpu / count * 1e6:10.2f}")
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
