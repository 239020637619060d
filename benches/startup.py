#!/usr/bin/env python3
"""Start-up benchmark: wall time and peak RSS of `opsh -e '1+1'`, `opsh run` of a trivial
script, and the time until the REPL shows its prompt on a terminal (a pty).

    benches/startup.sh [--opsh target/release/opsh] [--runs 50] [--only REPL]

No backend is reachable or needed: opsh connects to nothing a script does not call.
"""
import argparse
import os
import pty
import select
import statistics
import subprocess
import sys
import tempfile
import time


def peak_rss_mib(cmd, cwd, stdin=subprocess.DEVNULL):
    """opsh's own peak RSS. A child forked from this Python process would report Python's peak
    as its own (Linux carries the high-water mark across fork), so /usr/bin/time, a small
    parent, runs it and reports the child alone."""
    with tempfile.NamedTemporaryFile("r") as out:
        subprocess.run(["/usr/bin/time", "-f", "%M", "-o", out.name, *cmd], cwd=cwd, check=True,
                       stdin=stdin, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return int(out.read().strip().splitlines()[-1]) / 1024


def run_once(cmd, cwd):
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            stdin=subprocess.DEVNULL)
    _, status, _ = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"{cmd} failed")
    return wall * 1000, peak_rss_mib(cmd, cwd)  # ms, MiB


def prompt_once(opsh, cwd):
    """Milliseconds from exec to the prompt appearing on the terminal."""
    start = time.perf_counter()
    pid, fd = pty.fork()
    if pid == 0:
        os.chdir(cwd)
        os.environ["HOME"] = cwd  # the REPL's history goes to the temp dir, not the operator's
        os.environ.pop("XDG_STATE_HOME", None)
        os.execv(opsh, [opsh])
    seen = b""
    while b"opsh> " not in seen:
        ready, _, _ = select.select([fd], [], [], 5)
        if not ready:
            sys.exit("no prompt within 5 s")
        seen += os.read(fd, 1024)
    took = (time.perf_counter() - start) * 1000
    os.write(fd, b":quit\r")
    os.wait4(pid, 0)
    os.close(fd)
    # The REPL reading ":quit" from a pipe: the same start-up, measured without this process.
    return took, peak_rss_mib([opsh], cwd, stdin=subprocess.PIPE)


def summary(samples):
    walls = [s[0] for s in samples]
    rss = max(s[1] for s in samples)
    return statistics.median(walls), min(walls), max(walls), rss


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--opsh", default="target/release/opsh")
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--only", help="run only the cases whose name contains this (e.g. REPL)")
    args = ap.parse_args()
    opsh = os.path.abspath(args.opsh)
    with tempfile.TemporaryDirectory() as cwd:
        with open(os.path.join(cwd, "trivial.rhai"), "w") as f:
            f.write("// trivial\nlet r = report::new(\"t\"); r.ok(\"x\", \"y\"); r\n")
        env_note = "no opsh.toml, no .env, no backend reachable"
        cases = [
            ("opsh -e '1+1'", lambda: run_once([opsh, "-e", "1+1"], cwd)),
            ("opsh run trivial.rhai", lambda: run_once([opsh, "run", "trivial.rhai"], cwd)),
            ("REPL: exec to prompt (pty)", lambda: prompt_once(opsh, cwd)),
        ]
        if args.only:
            cases = [c for c in cases if args.only in c[0]]
        rows = []
        for name, fn in cases:
            fn()  # warm the page cache
            samples = [fn() for _ in range(args.runs)]
            rows.append((name, *summary(samples)))
    print(f"opsh start-up, {args.runs} runs each, {os.cpu_count()} cores ({env_note})\n")
    print("| what | median | min | max | peak RSS |")
    print("|---|---:|---:|---:|---:|")
    for name, med, lo, hi, rss in rows:
        print(f"| {name} | {med:.1f} ms | {lo:.1f} ms | {hi:.1f} ms | {rss:.1f} MiB |")


if __name__ == "__main__":
    main()
