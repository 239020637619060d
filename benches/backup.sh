#!/usr/bin/env bash
# Backup and restore benchmark: `opsh backup-all` against pg_dump alone, `opsh db-restore`
# against pg_restore alone, on a scratch database of about BENCH_MB MB generated with SQL.
#
#   tools/with-services benches/backup.sh                    # throwaway PostgreSQL + Redis
#   BENCH_MB=100 RUNS=3 tools/with-services benches/backup.sh
#
# Needs DATABASE_URL (a role that may CREATE DATABASE), REDIS_URL, pg_dump, pg_restore, psql,
# and target/release/opsh (built when missing; OPSH=path to use another). Disk: about 3x
# BENCH_MB in a temp dir and the scratch database, both removed at exit.
#
# What is compared (median of RUNS, wall time):
#   pg_dump -Fc                        vs  opsh backup-all verify=false (dump + row counts in the
#                                          dump's snapshot + sha256 + Redis BGSAVE + manifest)
#   pg_restore --single-transaction    vs  opsh --yes db-restore file=<folder> (sha256 check +
#     --clean --if-exists --no-owner       pg_restore --list + the same pg_restore + row counts)
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
MB=${BENCH_MB:-500}
RUNS=${RUNS:-3}
OPSH=${OPSH:-$root/target/release/opsh}
: "${DATABASE_URL:?set DATABASE_URL (tools/with-services does)}"
: "${REDIS_URL:?set REDIS_URL (tools/with-services does)}"

if [[ ! -x $OPSH ]]; then
    echo "backup.sh: building $OPSH" >&2
    (cd "$root" && cargo build --release --locked >&2)
fi

db=opsh_bench_backup_$$
bench_url=$(python3 -c 'import sys, urllib.parse as u; p = u.urlparse(sys.argv[1]); print(p._replace(path="/" + sys.argv[2]).geturl())' "$DATABASE_URL" "$db")
work=$(mktemp -d)
cleanup() {
    psql -X -q "$DATABASE_URL" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

# Connection options for the plain tools, the password in PGPASSWORD as opsh passes it.
read -r host port user pass < <(python3 -c 'import sys, urllib.parse as u; p = u.urlparse(sys.argv[1]); print(p.hostname, p.port or 5432, p.username, u.unquote(p.password or ""))' "$DATABASE_URL")
pgopts=(--host="$host" --port="$port" --username="$user")
export PGPASSWORD=$pass

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }
median() { tr ' ' '\n' | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

echo "backup.sh: generating ~${MB} MB in database $db" >&2
psql -X -q "$DATABASE_URL" -c "CREATE DATABASE $db"
DATABASE_URL=$bench_url "$OPSH" -q migrate >/dev/null
t_rows=$((MB * 1800))
v_rows=$((MB * 800))
start=$(now)
psql -X -q "$bench_url" -v ON_ERROR_STOP=1 <<SQL
INSERT INTO channels (name, url, platform) SELECT 'channel ' || i, 'https://youtube.com/c/' || i, 'youtube' FROM generate_series(1, 50) i;
INSERT INTO content (channel_id, external_id, title, url, description, vector_stored)
  SELECT 1 + i % 50, 'v' || i, 'title ' || md5(i::text), 'https://youtube.com/watch?v=' || i, md5(i::text) || md5((i + 1)::text), i % 3 = 0
  FROM generate_series(1, 20000) i;
INSERT INTO transcripts (content_id, text, start_time, end_time, speaker, confidence, segment_order)
  SELECT 1 + i % 20000,
         md5(i::text) || ' ' || md5((i * 7)::text) || ' ' || md5((i * 13)::text) || ' ' || md5((i * 17)::text) || ' '
           || md5((i * 19)::text) || ' ' || md5((i * 23)::text) || ' ' || md5((i * 29)::text),
         i, i + 1, 'speaker ' || i % 3, 0.9, i
  FROM generate_series(1, $t_rows) i;
INSERT INTO processing_jobs (job_type, content_id, status)
  SELECT (ARRAY['extract_transcript', 'process_audio', 'vectorize'])[1 + i % 3], 1 + i % 20000,
         (ARRAY['pending', 'processing', 'completed', 'failed'])[1 + i % 4]
  FROM generate_series(1, 60000) i;
INSERT INTO vector_mappings (content_id, chunk_id, vector_collection, chunk_text, chunk_order, chunk_metadata)
  SELECT 1 + i % 20000, md5(i::text), 'youtube_content',
         md5((i * 3)::text) || md5((i * 5)::text) || md5((i * 11)::text) || md5((i * 31)::text) || md5((i * 37)::text),
         i % 40, jsonb_build_object('chunk_index', i % 40, 'source', 'transcript', 'tokens', i % 512)
  FROM generate_series(1, $v_rows) i;
VACUUM ANALYZE;
SQL
size=$(psql -X -At "$bench_url" -c "SELECT pg_size_pretty(pg_database_size(current_database()))")
echo "backup.sh: generated $size in $(elapsed "$start") s" >&2

declare -a dump_t backup_t db_t restore_t opsh_restore_t
for ((i = 1; i <= RUNS; i++)); do
    rm -rf "$work"/*
    s=$(now); pg_dump "${pgopts[@]}" --format=custom --file="$work/alone.dump" "$db"; dump_t+=("$(elapsed "$s")")
    s=$(now); DATABASE_URL=$bench_url "$OPSH" -q backup-all dir="$work/b" verify=false >/dev/null || [[ $? == 1 ]]; backup_t+=("$(elapsed "$s")")
    s=$(now); DATABASE_URL=$bench_url "$OPSH" -q db-backup dir="$work/d" >/dev/null; db_t+=("$(elapsed "$s")")
    folder=$(ls -d "$work"/b/opsh-backup-*)
    s=$(now)
    pg_restore "${pgopts[@]}" --dbname="$db" --single-transaction --clean --if-exists --no-owner --exit-on-error "$work/alone.dump"
    restore_t+=("$(elapsed "$s")")
    # Exit 1 is a warning: without Qdrant here, the integrity check after the restore warns.
    s=$(now); DATABASE_URL=$bench_url "$OPSH" -q --yes db-restore file="$folder" >/dev/null || [[ $? == 1 ]]; opsh_restore_t+=("$(elapsed "$s")")
    echo "backup.sh: run $i: pg_dump ${dump_t[-1]} s, backup-all ${backup_t[-1]} s, db-backup ${db_t[-1]} s, pg_restore ${restore_t[-1]} s, db-restore ${opsh_restore_t[-1]} s" >&2
done
dump_size=$(stat -c %s "$work/alone.dump")

m_dump=$(echo "${dump_t[*]}" | median)
m_backup=$(echo "${backup_t[*]}" | median)
m_db=$(echo "${db_t[*]}" | median)
m_restore=$(echo "${restore_t[*]}" | median)
m_opsh_restore=$(echo "${opsh_restore_t[*]}" | median)
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a / b }'; }
cat <<EOF
database: $size ($t_rows transcripts, $v_rows vector_mappings); dump $((dump_size / 1048576)) MiB; median of $RUNS runs
pg_dump -Fc alone             $m_dump s
opsh backup-all verify=false  $m_backup s  ($(ratio "$m_backup" "$m_dump") x pg_dump)
opsh db-backup                $m_db s  ($(ratio "$m_db" "$m_dump") x pg_dump)
pg_restore alone (1 tx)       $m_restore s
opsh db-restore               $m_opsh_restore s  ($(ratio "$m_opsh_restore" "$m_restore") x pg_restore)
EOF
