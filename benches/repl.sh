#!/usr/bin/env bash
# REPL benchmark.
#   1. Keystroke work, in-process (benches/repl_complete.rs): completion, hint, highlighting and
#      the multi-line check, each timed over many calls after the first; live names (job types,
#      tables) come from a throwaway PostgreSQL (tools/with-services) with the managed schema
#      and a few seeded jobs, fetched once. Target: under 10 ms, no fetch per keystroke.
#   2. Exec to prompt on a pty (benches/startup.py --only REPL). Target: under 50 ms.
#
#   benches/repl.sh [calls (1000)] [prompt runs (50)]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
calls=${1:-1000}
runs=${2:-50}
cargo build --release --quiet --bin opsh --bench repl_complete
# shellcheck disable=SC2016 # expanded by the inner shell, under with-services' environment
tools/with-services bash -c '
    set -euo pipefail
    target/release/opsh migrate >/dev/null
    psql -q -v ON_ERROR_STOP=1 -c "INSERT INTO processing_jobs (job_type, status)
        SELECT t, s FROM unnest(ARRAY[\$\$transcribe\$\$, \$\$summarize\$\$, \$\$embed\$\$]) t,
                         unnest(ARRAY[\$\$pending\$\$, \$\$processing\$\$]) s"
    cargo bench --quiet --bench repl_complete -- "$0"
' "$calls"
echo
python3 benches/startup.py --only REPL --runs "$runs"
