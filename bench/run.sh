#!/bin/sh
# `make bench`: tern vs Postfix side by side (bench/bench.py says what and how;
# docs/PERFORMANCE.md has the figures and the analysis).
# Needs root (a private Postfix instance is started with `postfix -c DIR start`),
# build/tern, and Debian's postfix package for smtp-source and, for the relay
# runs, smtp-sink (make deps-test); for the mailauth part unbound and
# unbound-control, and for its Postfix rows Debian's opendkim (without it
# those rows are left out, saying so). BENCH_ONLY=relay (or local, memory,
# mailauth, capture, spool, or a comma-separated list) runs only those parts.
# spool (bench/bench_spool.py, issue 12's targets): tern per queue_sync_method
# in BENCH_SPOOL_METHODS ("syncfs journal"; a method the built tern rejects is
# left out, saying so), Postfix and smtp-sink, alternated, quiet, beside a
# noisy neighbour and right after 3,000 deletes (and, once `make bench-baseline`
# has built it, the tern issue 12 was filed against, as tern-at-filing, for the
# CPU target's "today's"); about 15-20 minutes with the
# defaults. A quick check: BENCH_ONLY=spool BENCH_SPOOL_ROUNDS=1
# BENCH_SPOOL_MSGS=300 BENCH_SPOOL_ONE_MSGS=50 BENCH_SPOOL_LATENCY_MSGS=50.
set -eu
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then
    echo "bench: must run as root (it starts a private Postfix instance)" >&2
    exit 1
fi
# 1,000 idle connections: tern's smtpd holds them all in one process, the
# client holds them too; Postfix needs a descriptor or two per smtpd process.
ulimit -n 65536 2>/dev/null || ulimit -n 8192 2>/dev/null || true
if [ "$(ulimit -n)" -lt 4096 ]; then
    echo "bench: ulimit -n is $(ulimit -n); 1,000 connections need more" >&2
    exit 1
fi
# the code issue 12 was filed against, when make bench-baseline has built it
if [ -z "${BENCH_SPOOL_BASELINE:-}" ] && [ -x build/baseline/tern ]; then
    export BENCH_SPOOL_BASELINE="$PWD/build/baseline/tern"
fi
exec /usr/bin/python3 bench/bench.py "$@"
