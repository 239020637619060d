#!/usr/bin/env python3
"""Benchmark: reset_stuck of 100,000 stuck jobs among 1,000,000 processing_jobs rows, and jobs::counts.

Contenders, side by side on the same data:
  (a) the original deployment's approach: SQLAlchemy ORM loads the stuck jobs, changes each, commits;
  (b) the floor: the same row change as one bare UPDATE typed into psql (\\timing);
  (c) opsh: jobs::reset_stuck(#{older_than: "1h", reason: "bench", max_retries: 3});
  (d) the floor for counts: SELECT job_type, status, count(*) ... GROUP BY 1, 2 in psql (\\timing),
      next to opsh's jobs::counts().

Run it through benches/reset_stuck.sh, which provides the virtualenv (SQLAlchemy, psycopg2-binary):
  DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres benches/reset_stuck.sh [--skip-opsh]

The URL must be a superuser's (the script creates and drops the databases opsh_bench_seed and
opsh_bench_run, and runs CHECKPOINT). Every timed run starts from a fresh copy of the seed database
(CREATE DATABASE ... TEMPLATE), vacuumed, analysed, read once and checkpointed, and every run's effect
is verified row by row against the seed: exactly the 100,000 stuck jobs changed, nothing else.
"""

import argparse
import glob
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from urllib.parse import urlsplit, urlunsplit

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SEED_DB = "opsh_bench_seed"
RUN_DB = "opsh_bench_run"

TOTAL_JOBS = 1_000_000
STUCK_JOBS = 100_000      # ids with id % 10 = 0: processing, started 2h-2h30m before seeding
RECENT_JOBS = 20_000      # ids with id % 50 = 1: processing, started 5-6 minutes before seeding
CONTENT_ROWS = 10_000
MAX_RETRIES = 3
REASON = "bench"
# The recent jobs become stuck themselves one hour after seeding; reseed well before that.
MAX_SEED_AGE_S = 40 * 60

# The statement jobs::reset_stuck runs, typed bare: same predicate (the expression the partial
# index idx_processing_jobs_stuck is built on), same SET list, no RETURNING.
FLOOR_UPDATE = """UPDATE processing_jobs SET status = CASE WHEN retry_count >= 3 THEN 'failed' ELSE 'pending' END,
  started_at = NULL, retry_count = retry_count + 1, error_message = 'bench', updated_at = LOCALTIMESTAMP
WHERE status = 'processing'
  AND COALESCE(GREATEST(started_at, updated_at, completed_at), created_at) < LOCALTIMESTAMP - interval '1 hour';"""

FLOOR_COUNTS = "SELECT job_type, status, count(*) FROM processing_jobs GROUP BY 1, 2;"

# db::ping() opens the connection first: psql's \timing, the floor, does not count connecting either
# (the whole-process time, connection included, is reported beside it).
OPSH_RESET = ('db::ping(); let t = timestamp(); '
              'let r = jobs::reset_stuck(#{older_than: "1h", reason: "bench", max_retries: 3}); '
              '#{ms: t.elapsed * 1000.0, reset: r.reset, failed: r.failed}')
OPSH_COUNTS = ('db::ping(); let t = timestamp(); let c = jobs::counts(); '
               '#{ms: t.elapsed * 1000.0, total: c.total}')

# The seed. Row kinds are a function of the id, so the verification can recompute what each row must
# look like; stuck jobs are spread over the whole table (every tenth row), as in a real queue.
SEED_SQL = f"""
SET TIME ZONE 'UTC';
INSERT INTO channels (name, url, platform, category, description, language, created_at, updated_at)
VALUES ('opsh bench', 'https://www.youtube.com/@opsh-bench', 'youtube', 'bench', 'benchmark data', 'ko',
        now() - interval '90 days', now() - interval '90 days');

INSERT INTO content (channel_id, external_id, title, url, description, duration, publish_date, views_count,
                     transcript_available, transcript_type, language, is_podcast, processed_at,
                     vector_stored, created_at, updated_at)
SELECT (SELECT id FROM channels WHERE url = 'https://www.youtube.com/@opsh-bench'),
       'bench-' || i, 'Bench video ' || i, 'https://www.youtube.com/watch?v=bench-' || i,
       'seeded by benches/reset_stuck.py', 300 + i % 3600, now() - make_interval(hours => i),
       i * 37 % 100000, i % 4 <> 0, CASE WHEN i % 4 <> 0 THEN 'whisper' END, 'ko', i % 7 = 0,
       CASE WHEN i % 4 <> 0 THEN now() - make_interval(hours => i) + interval '1 hour' END,
       i % 4 <> 0, now() - make_interval(hours => i), now() - make_interval(hours => i)
FROM generate_series(1, {CONTENT_ROWS}) AS i;

WITH kinds AS (
    SELECT i,
           CASE WHEN i % 10 = 0 THEN 'stuck'
                WHEN i % 50 = 1 THEN 'recent'
                WHEN i % 50 BETWEEN 2 AND 7 THEN 'pending'
                WHEN i % 50 IN (8, 9, 11) THEN 'failed'
                ELSE 'completed' END AS kind
    FROM generate_series(1, {TOTAL_JOBS}) AS i
), created AS (
    SELECT i, kind,
           CASE kind
               WHEN 'stuck'   THEN now() - interval '3 hours' - make_interval(secs => i % 3600)
               WHEN 'recent'  THEN now() - interval '10 minutes' - make_interval(secs => i % 240)
               WHEN 'pending' THEN now() - interval '10 minutes' - make_interval(secs => i % 86400)
               ELSE now() - interval '1 day' - make_interval(secs => (i::bigint * 7919) % 2592000)
           END AS created_at
    FROM kinds
), started AS (
    SELECT i, kind, created_at,
           CASE kind
               WHEN 'stuck'   THEN now() - interval '2 hours' - make_interval(secs => i % 1800)
               WHEN 'recent'  THEN now() - interval '5 minutes' - make_interval(secs => i % 60)
               WHEN 'pending' THEN NULL
               ELSE created_at + make_interval(secs => 5 + i % 300)
           END AS started_at
    FROM created
)
INSERT INTO processing_jobs (id, job_type, content_id, status, priority, error_message, started_at,
                             completed_at, created_at, retry_count, updated_at)
SELECT i,
       (ARRAY['extract_transcript', 'process_audio', 'vectorize'])[i % 3 + 1],
       (i - 1) % {CONTENT_ROWS} + 1,
       CASE WHEN kind IN ('stuck', 'recent') THEN 'processing' ELSE kind END,
       i % 5,
       CASE WHEN kind = 'failed' THEN 'seed: worker exited with status 1' END,
       started_at,
       CASE WHEN kind = 'completed' THEN started_at + make_interval(secs => 30 + i % 1800) END,
       created_at,
       CASE kind WHEN 'stuck' THEN (i / 10) % 5 WHEN 'failed' THEN 3 WHEN 'completed' THEN 0
                 ELSE (i / 50) % 3 END,
       CASE WHEN kind = 'stuck' AND i % 20 = 0 THEN NULL          -- rows older than the updated_at column
            WHEN kind = 'pending' THEN created_at
            WHEN kind = 'failed' THEN started_at + interval '5 minutes'
            WHEN kind = 'completed' THEN started_at + make_interval(secs => 30 + i % 1800)
            ELSE started_at END
FROM started;

SELECT setval(pg_get_serial_sequence('processing_jobs', 'id'), {TOTAL_JOBS});
"""

# Everything but the stuck jobs must be byte-for-byte what the seed holds: compared by a checksum.
UNTOUCHED_CHECKSUM = """SELECT count(*), coalesce(sum(hashtextextended(j::text, 0)::numeric), 0)::text
FROM processing_jobs AS j WHERE id % 10 <> 0"""

# What the stuck jobs must look like after a reset (the seed gave them retry_count = (id / 10) % 5).
VERIFY_SQL = f"""SELECT
  count(*),
  count(*) FILTER (WHERE id % 10 = 0
                     AND started_at IS NULL
                     AND retry_count = (id / 10) % 5 + 1
                     AND status = CASE WHEN (id / 10) % 5 >= {MAX_RETRIES} THEN 'failed' ELSE 'pending' END
                     AND error_message LIKE '%{REASON}%'
                     AND updated_at > now() - interval '1 hour'),
  count(*) FILTER (WHERE id % 10 = 0 AND status = 'pending'),
  count(*) FILTER (WHERE id % 10 = 0 AND status = 'failed'),
  count(*) FILTER (WHERE id % 50 = 1 AND status = 'processing' AND error_message IS NULL
                     AND started_at > now() - interval '1 hour')
FROM processing_jobs"""

EXPECT_FAILED = sum(1 for i in range(10, TOTAL_JOBS + 1, 10) if (i // 10) % 5 >= MAX_RETRIES)
EXPECT_RESET = STUCK_JOBS - EXPECT_FAILED


class BenchError(Exception):
    pass


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def with_db(url, dbname):
    """The URL with its database replaced."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + dbname, parts.query, parts.fragment))


def redact(url):
    parts = urlsplit(url)
    host = parts.hostname or "(socket)"
    return f"{parts.scheme}://{parts.username or ''}@{host}:{parts.port or 5432}{parts.path}"


def connect(url):
    import psycopg2
    conn = psycopg2.connect(url)
    conn.autocommit = True
    return conn


def scalar(conn, sql):
    with conn.cursor() as cur:
        cur.execute(sql)
        return cur.fetchone()[0]


# ---------------------------------------------------------------------------------------------------
# Data


class Data:
    """The seed and run databases."""

    def __init__(self, admin_url, opsh):
        self.admin_url = admin_url
        self.seed_url = with_db(admin_url, SEED_DB)
        self.run_url = with_db(admin_url, RUN_DB)
        self.opsh = opsh
        self.checksum = None
        admin = connect(admin_url)
        try:
            self.server_version_num = int(scalar(admin, "SHOW server_version_num"))
            if not scalar(admin, "SELECT rolsuper FROM pg_roles WHERE rolname = current_user"):
                raise BenchError("the database URL must be a superuser's (CREATE DATABASE, CHECKPOINT)")
        finally:
            admin.close()

    def drop(self, dbname):
        force = " WITH (FORCE)" if self.server_version_num >= 130000 else ""
        admin = connect(self.admin_url)
        try:
            with admin.cursor() as cur:
                cur.execute(f"DROP DATABASE IF EXISTS {dbname}{force}")
        finally:
            admin.close()

    def seed_age_s(self):
        """Seconds since seeding (the age of the oldest recent job), None if there is no usable seed."""
        admin = connect(self.admin_url)
        try:
            if not scalar(admin, f"SELECT count(*) FROM pg_database WHERE datname = '{SEED_DB}'"):
                return None
        finally:
            admin.close()
        conn = connect(self.seed_url)
        try:
            with conn.cursor() as cur:
                # The seed started the recent jobs at (seeding time - 5 min - id % 60 s).
                cur.execute("SELECT count(*), extract(epoch FROM now() - max(started_at + "
                            "interval '5 minutes' + make_interval(secs => id % 60))) "
                            "FROM processing_jobs WHERE id % 50 = 1 AND status = 'processing'")
                n, age = cur.fetchone()
            if n != RECENT_JOBS or scalar(conn, "SELECT count(*) FROM processing_jobs") != TOTAL_JOBS:
                return None
            if self.checksum is None:
                self.checksum = self._checksum(conn)
            return float(age)
        except Exception:
            return None
        finally:
            conn.close()

    def ensure_seed(self, reuse=False):
        age = self.seed_age_s() if reuse or self.checksum is not None else None
        if age is not None and age < MAX_SEED_AGE_S:
            return
        if age is not None:
            log(f"seed is {age / 60:.0f} min old; its recent jobs would soon count as stuck: reseeding")
        self.seed()

    def seed(self):
        self.drop(RUN_DB)
        self.drop(SEED_DB)
        admin = connect(self.admin_url)
        try:
            with admin.cursor() as cur:
                cur.execute(f"CREATE DATABASE {SEED_DB}")
        finally:
            admin.close()
        # The schema as users get it: `opsh migrate` on the empty database.
        log("schema: opsh migrate")
        with tempfile.TemporaryDirectory(prefix="opsh-bench-") as cwd:
            rc, out, err, _, _ = run_child([self.opsh, "--json", "migrate"],
                                           env=opsh_env(self.seed_url), cwd=cwd, timeout=600)
        if rc != 0:
            raise BenchError(f"opsh migrate exited {rc}:\n{err.strip()}\n{out.strip()}")
        conn = connect(self.seed_url)
        try:
            conn.autocommit = False
            with conn.cursor() as cur:
                log(f"seeding {TOTAL_JOBS:,} processing_jobs, {CONTENT_ROWS:,} content, 1 channel")
                t = time.perf_counter()
                cur.execute(SEED_SQL)
                conn.commit()
                log(f"seeded in {time.perf_counter() - t:.1f} s")
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute("VACUUM ANALYZE")
                cur.execute("SELECT status, count(*) FROM processing_jobs GROUP BY 1 ORDER BY 1")
                log("seed: " + ", ".join(f"{s} {n:,}" for s, n in cur.fetchall()))
            self.checksum = self._checksum(conn)
        finally:
            conn.close()

    @staticmethod
    def _checksum(conn):
        with conn.cursor() as cur:
            cur.execute(UNTOUCHED_CHECKSUM)
            return tuple(cur.fetchone())

    def fresh_run_db(self):
        """A new opsh_bench_run from the seed, vacuumed, analysed, read once and checkpointed."""
        self.ensure_seed()
        self.drop(RUN_DB)
        admin = connect(self.admin_url)
        try:
            with admin.cursor() as cur:
                cur.execute(f"CREATE DATABASE {RUN_DB} TEMPLATE {SEED_DB}")
        finally:
            admin.close()
        conn = connect(self.run_url)
        try:
            with conn.cursor() as cur:
                cur.execute("VACUUM ANALYZE")
                cur.execute("SELECT count(*) FROM processing_jobs")
                cur.fetchone()
                cur.execute("CHECKPOINT")
        finally:
            conn.close()

    def verify_reset(self, who):
        """Asserts that exactly the 100,000 stuck jobs changed, as reset_stuck must change them."""
        conn = connect(self.run_url)
        try:
            with conn.cursor() as cur:
                cur.execute("SET TIME ZONE 'UTC'")
                cur.execute(VERIFY_SQL)
                total, done, pending, failed, recent = cur.fetchone()
            untouched = self._checksum(conn)
        finally:
            conn.close()
        problems = []
        if total != TOTAL_JOBS:
            problems.append(f"{total:,} rows in processing_jobs, expected {TOTAL_JOBS:,}")
        if done != STUCK_JOBS:
            problems.append(f"{done:,} of the {STUCK_JOBS:,} stuck jobs were reset as required")
        if (pending, failed) != (EXPECT_RESET, EXPECT_FAILED):
            problems.append(f"stuck jobs now pending {pending:,} / failed {failed:,}, "
                            f"expected {EXPECT_RESET:,} / {EXPECT_FAILED:,}")
        if recent != RECENT_JOBS:
            problems.append(f"{recent:,} of the {RECENT_JOBS:,} recently started jobs left alone")
        if untouched != self.checksum:
            problems.append("rows other than the stuck jobs changed (checksum differs from the seed)")
        if problems:
            raise BenchError(f"{who}: verification failed: " + "; ".join(problems))
        return done

    def verify_counts_total(self):
        conn = connect(self.run_url)
        try:
            return scalar(conn, "SELECT count(*) FROM processing_jobs")
        finally:
            conn.close()


# ---------------------------------------------------------------------------------------------------
# Contenders


def run_child(argv, env=None, cwd=None, timeout=None):
    """Runs a child; returns (returncode, stdout, stderr, wall_s, peak RSS in KiB of that child alone)."""
    # /usr/bin/time is the child's parent: a child forked from this (large) Python process would
    # report Python's peak RSS as its own, since Linux carries the high-water mark across fork.
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, \
            tempfile.NamedTemporaryFile("r") as rss_file:
        argv = ["/usr/bin/time", "-f", "%M", "-o", rss_file.name, *argv]
        t = time.perf_counter()
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env, cwd=cwd)
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            pid, status, rusage = os.wait4(proc.pid, os.WNOHANG if deadline else 0)
            if pid:
                break
            if time.monotonic() > deadline:
                proc.kill()
                pid, status, rusage = os.wait4(proc.pid, 0)
                raise BenchError(f"{argv[0]} timed out after {timeout} s")
            time.sleep(0.01)
        wall = time.perf_counter() - t
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        rss_lines = rss_file.read().strip().splitlines()
        rss = int(rss_lines[-1]) if rss_lines and rss_lines[-1].isdigit() else None
        return (proc.returncode, out.read().decode("utf-8", "replace"),
                err.read().decode("utf-8", "replace"), wall, rss)


def psql_timed(psql, url, sql):
    """Runs one statement in psql with \\timing on; returns (ms, stdout)."""
    rc, out, err, _, _ = run_child([psql, "-X", "-v", "ON_ERROR_STOP=1", "-d", url,
                                    "-c", "\\timing on", "-c", sql])
    if rc != 0:
        raise BenchError(f"psql failed ({rc}): {err.strip()}")
    m = re.search(r"^Time: ([0-9.]+) ms", out, re.M)
    if not m:
        raise BenchError(f"no 'Time: X ms' in psql's output: {out!r}")
    return float(m.group(1)), out


def contender_floor_reset(args, data):
    ms, out = psql_timed(args.psql, data.run_url, FLOOR_UPDATE)
    m = re.search(r"^UPDATE (\d+)$", out, re.M)
    reported = int(m.group(1)) if m else None
    if reported != STUCK_JOBS:
        raise BenchError(f"(b) psql reported UPDATE {reported}, expected {STUCK_JOBS:,}")
    return {"ms": ms, "rows": data.verify_reset("(b) psql UPDATE")}


def contender_floor_counts(args, data):
    ms, out = psql_timed(args.psql, data.run_url, FLOOR_COUNTS)
    m = re.search(r"^\((\d+) rows?\)$", out, re.M)
    groups = int(m.group(1)) if m else None
    # 3 job types: completed, pending, failed, processing each.
    if groups != 12:
        raise BenchError(f"(d) expected 12 (job_type, status) groups, psql printed {groups}")
    total = sum(int(n) for n in re.findall(r"\|\s*(\d+)\s*$", out, re.M))
    if total != TOTAL_JOBS:
        raise BenchError(f"(d) the groups sum to {total:,}, expected {TOTAL_JOBS:,}")
    return {"ms": ms, "rows": total}


def contender_orm(args, data):
    """(a) in a child interpreter, so that its peak RSS is its own."""
    rc, out, err, wall, rss = run_child([sys.executable, os.path.abspath(__file__), "--orm-worker",
                                         "--database-url", data.run_url])
    if rc != 0:
        raise BenchError(f"(a) ORM worker failed ({rc}):\n{err.strip()}")
    res = json.loads(out)
    if res["loaded"] != STUCK_JOBS:
        raise BenchError(f"(a) the ORM loaded {res['loaded']:,} stuck jobs, expected {STUCK_JOBS:,}")
    res["rows"] = data.verify_reset("(a) SQLAlchemy ORM")
    res["rss_kib"] = rss
    res["wall_s"] = wall
    return res


def opsh_env(url):
    env = dict(os.environ)
    env["DATABASE_URL"] = url
    return env


def run_opsh(args, data, code):
    # A neutral working directory, so that no opsh.toml or .env of the checkout is read.
    with tempfile.TemporaryDirectory(prefix="opsh-bench-") as cwd:
        rc, out, err, wall, rss = run_child([args.opsh, *args.opsh_arg, "--json", "-e", code],
                                            env=opsh_env(data.run_url), cwd=cwd, timeout=600)
    if rc != 0:
        raise BenchError(f"opsh exited {rc}:\n{err.strip()}\n{out.strip()}")
    try:
        res = json.loads(out)
    except ValueError:
        raise BenchError(f"opsh printed no single JSON document on stdout: {out!r}")
    if isinstance(res, dict) and "ms" not in res:  # tolerate a wrapper object around the value
        for key in ("result", "value"):
            if isinstance(res.get(key), dict) and "ms" in res[key]:
                res = res[key]
                break
    if not isinstance(res, dict) or "ms" not in res:
        raise BenchError(f"opsh's JSON has no 'ms': {out!r}")
    res["rss_kib"] = rss
    res["wall_s"] = wall
    return res


def contender_opsh_reset(args, data):
    res = run_opsh(args, data, OPSH_RESET)
    if (res.get("reset"), res.get("failed")) != (EXPECT_RESET, EXPECT_FAILED):
        raise BenchError(f"(c) opsh reported reset {res.get('reset')}, failed {res.get('failed')}; "
                         f"expected {EXPECT_RESET:,} + {EXPECT_FAILED:,} = {STUCK_JOBS:,}")
    res["rows"] = data.verify_reset("(c) opsh jobs::reset_stuck")
    return res


def contender_opsh_counts(args, data):
    res = run_opsh(args, data, OPSH_COUNTS)
    if res.get("total") != TOTAL_JOBS:
        raise BenchError(f"opsh jobs::counts total {res.get('total')}, expected {TOTAL_JOBS:,}")
    res["rows"] = res["total"]
    return res


# ---------------------------------------------------------------------------------------------------
# (a) itself: the original deployment's code on a declarative SQLAlchemy 2.x model of processing_jobs


def orm_worker(url):
    from datetime import datetime, timezone
    from typing import Optional

    from sqlalchemy import (Boolean, DateTime, Float, ForeignKey, Integer, String, Text, create_engine,
                            func, text)
    from sqlalchemy.engine import make_url
    from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

    def utcnow():  # the sessions run in UTC, and the columns are TIMESTAMP WITHOUT TIME ZONE
        return datetime.now(timezone.utc).replace(tzinfo=None)

    class Base(DeclarativeBase):
        pass

    class Channel(Base):
        __tablename__ = "channels"
        id: Mapped[int] = mapped_column(Integer, primary_key=True)
        name: Mapped[str] = mapped_column(String(255))
        url: Mapped[str] = mapped_column(String(500), unique=True)
        platform: Mapped[str] = mapped_column(String(50))
        category: Mapped[Optional[str]] = mapped_column(String(100))
        description: Mapped[Optional[str]] = mapped_column(Text)
        language: Mapped[Optional[str]] = mapped_column(String(10), server_default="ko")
        is_active: Mapped[Optional[bool]] = mapped_column(Boolean, server_default=text("true"))
        created_at: Mapped[Optional[datetime]] = mapped_column(DateTime, server_default=func.now())
        updated_at: Mapped[Optional[datetime]] = mapped_column(DateTime, server_default=func.now())

    class Content(Base):
        __tablename__ = "content"
        id: Mapped[int] = mapped_column(Integer, primary_key=True)
        channel_id: Mapped[Optional[int]] = mapped_column(ForeignKey("channels.id"))
        external_id: Mapped[str] = mapped_column(String(255))
        title: Mapped[str] = mapped_column(String(500))
        url: Mapped[str] = mapped_column(String(500))
        description: Mapped[Optional[str]] = mapped_column(Text)
        duration: Mapped[Optional[int]] = mapped_column(Integer)
        publish_date: Mapped[Optional[datetime]] = mapped_column(DateTime)
        views_count: Mapped[Optional[int]] = mapped_column(Integer, server_default=text("0"))
        transcript_available: Mapped[Optional[bool]] = mapped_column(Boolean, server_default=text("false"))
        transcript_type: Mapped[Optional[str]] = mapped_column(String(50))
        language: Mapped[Optional[str]] = mapped_column(String(10))
        is_podcast: Mapped[Optional[bool]] = mapped_column(Boolean, server_default=text("false"))
        processed_at: Mapped[Optional[datetime]] = mapped_column(DateTime)
        vector_stored: Mapped[Optional[bool]] = mapped_column(Boolean, server_default=text("false"))
        created_at: Mapped[Optional[datetime]] = mapped_column(DateTime, server_default=func.now())
        updated_at: Mapped[Optional[datetime]] = mapped_column(DateTime, server_default=func.now())

    class ProcessingJob(Base):
        __tablename__ = "processing_jobs"
        id: Mapped[int] = mapped_column(Integer, primary_key=True)
        job_type: Mapped[str] = mapped_column(String(50))
        content_id: Mapped[Optional[int]] = mapped_column(ForeignKey("content.id"))
        status: Mapped[Optional[str]] = mapped_column(String(20), server_default="pending")
        priority: Mapped[Optional[int]] = mapped_column(Integer, server_default=text("0"))
        error_message: Mapped[Optional[str]] = mapped_column(Text)
        started_at: Mapped[Optional[datetime]] = mapped_column(DateTime)
        completed_at: Mapped[Optional[datetime]] = mapped_column(DateTime)
        created_at: Mapped[Optional[datetime]] = mapped_column(DateTime, server_default=func.now())
        retry_count: Mapped[int] = mapped_column(Integer, server_default=text("0"))
        updated_at: Mapped[Optional[datetime]] = mapped_column(DateTime, server_default=func.now(),
                                                               onupdate=utcnow)

    del Channel, Content  # mapped for the foreign keys only
    engine = create_engine(make_url(url).set(drivername="postgresql+psycopg2"),
                           connect_args={"options": "-c timezone=UTC"})
    # The same "stuck" predicate as opsh and the floor (last sign of life older than an hour), so that
    # all three change the same rows; the ORM's way of loading and writing them is what is compared.
    last_sign = func.coalesce(func.greatest(ProcessingJob.started_at, ProcessingJob.updated_at,
                                            ProcessingJob.completed_at),
                              ProcessingJob.created_at)
    cutoff = func.localtimestamp() - text("interval '1 hour'")
    with Session(engine) as session:
        t0 = time.perf_counter()
        processing_jobs = (session.query(ProcessingJob)
                           .filter(ProcessingJob.status == "processing", last_sign < cutoff)
                           .all())
        t1 = time.perf_counter()
        for job in processing_jobs:
            job.status = "failed" if job.retry_count >= MAX_RETRIES else "pending"
            job.started_at = None
            job.retry_count += 1
            job.error_message = REASON
        t2 = time.perf_counter()
        session.commit()
        t3 = time.perf_counter()
    engine.dispose()
    json.dump({"ms": (t3 - t0) * 1000, "load_ms": (t1 - t0) * 1000, "change_ms": (t2 - t1) * 1000,
               "commit_ms": (t3 - t2) * 1000, "loaded": len(processing_jobs)}, sys.stdout)


# ---------------------------------------------------------------------------------------------------
# Report


def fmt_ms(ms):
    if ms is None:
        return "—"
    if ms >= 10_000:
        return f"{ms / 1000:.1f} s"
    if ms >= 1000:
        return f"{ms / 1000:.2f} s"
    if ms >= 100:
        return f"{ms:.0f} ms"
    return f"{ms:.1f} ms"


def fmt_rss(kib):
    return "—" if kib is None else f"{kib / 1024:.0f} MiB"


def machine_info(data):
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    mem = int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    conn = connect(data.admin_url)
    try:
        settings = {}
        for name in ("server_version", "shared_buffers", "synchronous_commit", "fsync",
                     "full_page_writes", "max_parallel_workers_per_gather"):
            settings[name] = scalar(conn, f"SHOW {name}")
    finally:
        conn.close()
    host = urlsplit(data.admin_url).hostname or "local socket"
    return {"nproc": os.cpu_count(), "cpu": cpu, "mem_gib": mem, "postgres": settings, "pg_host": host,
            "loadavg_end": os.getloadavg()[0]}


def summarize(results):
    ms = [r["ms"] for r in results]
    rss = [r["rss_kib"] for r in results if r.get("rss_kib") is not None]
    return {"runs": len(ms), "median_ms": statistics.median(ms), "min_ms": min(ms),
            "rows": results[0]["rows"], "rss_kib": max(rss) if rss else None}


def report(args, data, results, elapsed):
    info = machine_info(data)
    s = {k: summarize(v) for k, v in results.items() if v}
    pg = info["postgres"]
    lines = []
    lines.append(f"Machine: {info['nproc']} CPUs ({info['cpu']}), "
                 + (f"{info['mem_gib']:.0f} GiB RAM, " if info["mem_gib"] else "")
                 + f"PostgreSQL {pg['server_version']} on {info['pg_host']} (shared_buffers {pg['shared_buffers']}, "
                 f"fsync {pg['fsync']}, synchronous_commit {pg['synchronous_commit']}, "
                 f"full_page_writes {pg['full_page_writes']}); 1-minute load average "
                 f"{args.loadavg_start:.2f} before, {info['loadavg_end']:.2f} after.")
    lines.append(f"Data: {TOTAL_JOBS:,} processing_jobs, {STUCK_JOBS:,} stuck (processing, started 2 h ago), "
                 f"{RECENT_JOBS:,} processing started 5 min ago (must stay), the rest completed/pending/failed; "
                 f"each run on a fresh copy, vacuumed, analysed, read once, checkpointed.")
    lines.append("")
    lines.append("| Operation | Contender | Runs | Median | Min | Rows | Peak RSS |")
    lines.append("|---|---|---:|---:|---:|---:|---:|")
    names = [
        ("orm", "reset_stuck, 100,000 of 1,000,000", "(a) SQLAlchemy ORM: load, change each, commit"),
        ("floor_reset", "", "(b) one bare UPDATE in psql (floor)"),
        ("opsh_reset", "", "(c) opsh `jobs::reset_stuck`"),
        ("floor_counts", "counts, 1,000,000 rows", "(d) `GROUP BY job_type, status` in psql (floor)"),
        ("opsh_counts", "", "opsh `jobs::counts`"),
    ]
    for key, op, label in names:
        if key in s:
            r = s[key]
            lines.append(f"| {op} | {label} | {r['runs']} | {fmt_ms(r['median_ms'])} | {fmt_ms(r['min_ms'])} "
                         f"| {r['rows']:,} | {fmt_rss(r['rss_kib'])} |")
        else:
            lines.append(f"| {op} | {label} | skipped | | | | |")
    lines.append("")
    verdicts = []

    def ratio(line, num, den, limit, better_when_above):
        if num in s and den in s:
            x = s[num]["median_ms"] / s[den]["median_ms"]
            ok = x >= limit if better_when_above else x <= limit
            verdicts.append(ok)
            lines.append(f"- {line}: **{x:.1f}×** (required {'≥' if better_when_above else '≤'} {limit}×) "
                         f"{'PASS' if ok else 'FAIL'}")
        else:
            lines.append(f"- {line}: not measured")

    ratio("(a) / (c), ORM time over opsh time", "orm", "opsh_reset", 20, True)
    if "opsh_reset" in s and "floor_reset" in s:
        x = s["opsh_reset"]["median_ms"] / s["floor_reset"]["median_ms"]
        ok = x <= 1.3
        verdicts.append(ok)
        lines.append(f"- (c) / (b), opsh time over the floor: **{x:.2f}×** (required ≤ 1.3×) "
                     f"{'PASS' if ok else 'FAIL'}")
    else:
        lines.append("- (c) / (b), opsh time over the floor: not measured")
    if "orm" in s and "floor_reset" in s:
        lines.append(f"- (a) / (b), ORM time over the floor: {s['orm']['median_ms'] / s['floor_reset']['median_ms']:.1f}×")
    if "opsh_counts" in s:
        ok = s["opsh_counts"]["median_ms"] < 300
        verdicts.append(ok)
        lines.append(f"- opsh `jobs::counts` median {fmt_ms(s['opsh_counts']['median_ms'])} "
                     f"(required < 300 ms) {'PASS' if ok else 'FAIL'}")
        if "floor_counts" in s:
            lines.append(f"- opsh `jobs::counts` / (d): "
                         f"{s['opsh_counts']['median_ms'] / s['floor_counts']['median_ms']:.2f}×")
    else:
        lines.append("- opsh `jobs::counts` (< 300 ms required): not measured")
    lines.append("")
    lines.append("Times: (a) from the query to the end of the commit, in the Python process; (b), (d) psql's "
                 "`\\timing`; opsh the call's in-process time (`timestamp().elapsed`). Peak RSS: the "
                 "process's own maximum resident set (/usr/bin/time -f %M, its parent).")
    if "orm" in results and results["orm"]:
        r = results["orm"][0]
        lines.append(f"(a) breakdown, first run: load {fmt_ms(r['load_ms'])}, change {fmt_ms(r['change_ms'])}, "
                     f"commit (flush) {fmt_ms(r['commit_ms'])}.")
    for key in ("opsh_reset", "opsh_counts"):
        if results.get(key):
            walls = [r["wall_s"] * 1000 for r in results[key]]
            lines.append(f"{key}: whole-process wall time median {fmt_ms(statistics.median(walls))} "
                         f"(start-up, connection, JSON output included).")
    lines.append(f"Reproduce: `DATABASE_URL=postgres://postgres@HOST:PORT/postgres benches/reset_stuck.sh"
                 f" --runs {args.runs} --orm-runs {args.orm_runs}` after `cargo build --release` "
                 f"(benchmark took {elapsed / 60:.1f} min).")
    print("\n".join(lines))
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump({"machine": info, "summary": s, "runs": results}, f, indent=2, default=str)
    return all(verdicts)


# ---------------------------------------------------------------------------------------------------


def find_psql():
    found = shutil.which("psql")
    if found:
        return found
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/psql"),
                        key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else 0)
    return candidates[-1] if candidates else "psql"


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--database-url", default=os.environ.get("DATABASE_URL"),
                   help="a superuser's URL, e.g. postgres://postgres@127.0.0.1:5432/postgres "
                        "(default: $DATABASE_URL)")
    p.add_argument("--opsh", default=os.path.join(ROOT, "target", "release", "opsh"),
                   help="the opsh binary (default: target/release/opsh)")
    p.add_argument("--opsh-arg", action="append", default=[], metavar="ARG",
                   help="an extra argument for opsh before --json (repeatable), e.g. --opsh-arg=--yes")
    p.add_argument("--skip-opsh", action="store_true", help="measure (a), (b), (d) only")
    p.add_argument("--skip-orm", action="store_true", help="do not run (a)")
    p.add_argument("--runs", type=int, default=3, help="runs of (b), (c), (d) and opsh counts (default 3)")
    p.add_argument("--orm-runs", type=int, default=3, help="runs of (a), the slow one (default 3)")
    p.add_argument("--psql", default=find_psql(), help="the psql binary")
    p.add_argument("--reuse-seed", action="store_true",
                   help="keep an existing, recent, complete opsh_bench_seed instead of seeding anew")
    p.add_argument("--keep", action="store_true", help="do not drop the databases at the end")
    p.add_argument("--json-out", metavar="FILE", help="also write every run's numbers as JSON")
    p.add_argument("--orm-worker", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    # opsh runs in an empty temp dir (no opsh.toml, no .env there), so the path must be absolute.
    args.opsh = os.path.abspath(args.opsh)

    # Everyone (seed, psql, ORM) reads and writes the TIMESTAMP columns in UTC.
    os.environ["PGTZ"] = "UTC"
    if not args.database_url:
        p.error("give --database-url or set DATABASE_URL")
    if args.orm_worker:
        orm_worker(args.database_url)
        return 0
    if not os.access(args.opsh, os.X_OK):
        p.error(f"{args.opsh} is not an executable; build it (cargo build --release) or pass --opsh "
                "(also with --skip-opsh: `opsh migrate` makes the benchmark's schema)")
    if shutil.which(args.psql) is None and not os.access(args.psql, os.X_OK):
        p.error(f"psql not found ({args.psql}); pass --psql")
    try:
        import psycopg2  # noqa: F401
        import sqlalchemy
    except ImportError as e:
        p.error(f"{e}: run this through benches/reset_stuck.sh, which provides the virtualenv")
    if int(sqlalchemy.__version__.split(".")[0]) < 2:
        p.error(f"SQLAlchemy {sqlalchemy.__version__}: need 2.x")

    started = time.perf_counter()
    args.loadavg_start = os.getloadavg()[0]
    data = Data(args.database_url, args.opsh)
    log(f"server {redact(args.database_url)}, PostgreSQL {data.server_version_num}")
    data.ensure_seed(reuse=args.reuse_seed)

    plan = [("floor_reset", args.runs, contender_floor_reset),
            ("orm", 0 if args.skip_orm else args.orm_runs, contender_orm),
            ("opsh_reset", 0 if args.skip_opsh else args.runs, contender_opsh_reset),
            ("floor_counts", args.runs, contender_floor_counts),
            ("opsh_counts", 0 if args.skip_opsh else args.runs, contender_opsh_counts)]
    results = {key: [] for key, _, _ in plan}
    try:
        # Round-robin, so that a drift of the machine over time spreads over all contenders.
        for i in range(max(n for _, n, _ in plan)):
            for key, n, fn in plan:
                if i >= n:
                    continue
                data.fresh_run_db()
                log(f"{key} run {i + 1}/{n} ...")
                r = fn(args, data)
                extra = f", peak RSS {fmt_rss(r['rss_kib'])}" if r.get("rss_kib") else ""
                log(f"{key} run {i + 1}/{n}: {fmt_ms(r['ms'])}, {r['rows']:,} rows{extra}")
                results[key].append(r)
    finally:
        if not args.keep:
            data.drop(RUN_DB)
            data.drop(SEED_DB)
    ok = report(args, data, results, time.perf_counter() - started)
    return 0 if ok else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as e:
        print(f"reset_stuck.py: {e}", file=sys.stderr)
        sys.exit(2)
