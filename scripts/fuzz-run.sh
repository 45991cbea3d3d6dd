#!/bin/bash
# fuzz-run: runs libFuzzer targets over the corpus kept in the tree.
#
#   scripts/fuzz-run.sh smoke SECONDS BIN...   (make fuzz, inside make test)
#   scripts/fuzz-run.sh long HOURS JOBS BIN... (make fuzz-long HOURS=N)
#
# smoke: each target runs SECONDS on a copy of tests/fuzz/corpus/<target>/
# in build/fuzz/corpus/<target>/, so the tree is never written.
#
# long: the targets share HOURS CPU-hours equally; each runs its share with
# JOBS parallel jobs (-jobs/-workers, capped by nproc) on a work copy of its
# corpus in build/fuzz/long/<target>/, then `-merge=1` of the kept corpus
# and the work copy picks a minimal set covering both, which replaces
# tests/fuzz/corpus/<target>/ (files already there keep their names; the
# hand-written seed-* and regress-*, the reproducers of fixed bugs, are
# always kept).
# One summary line per target: executions, corpus files before -> after,
# coverage (libFuzzer's cov/ft) at start -> end, crashes.
#
# Either way a crash, leak, timeout or out-of-memory leaves its reproducer
# in build/fuzz/ (<target>-crash-<sha1>, -leak-, -timeout-, -oom-), prints the command that
# reproduces it, and makes the run fail (after the other targets ran).
set -u

FBUILD=build/fuzz
TREE=tests/fuzz/corpus
# Bounded memory and time per input: an input that takes more is a finding.
LIMITS=(-rss_limit_mb=2048 -malloc_limit_mb=1024 -timeout=10)

mode=$1
shift

# Reproducers of an earlier run go to build/fuzz/old/, so that each run
# reports only its own.
set_aside_artifacts() {
  local name=$1 a
  for a in "$FBUILD/$name"-{crash,leak,timeout,oom,slow-unit}-*; do
    [ -e "$a" ] || continue
    mkdir -p "$FBUILD/old"
    mv "$a" "$FBUILD/old/"
  done
}

# Reports the artifacts a run left; 0 (true) if there were any.
report_artifacts() {
  local bin=$1 name=$2 found=0
  for a in "$FBUILD/$name"-{crash,leak,timeout,oom}-*; do
    [ -e "$a" ] || continue
    echo "  FINDING $name: $a"
    echo "    reproduce: $bin $a"
    found=1
  done
  return $((1 - found))
}

# The libFuzzer cov/ft numbers of the first INITED and the last DONE/pulse line of a log.
coverage() {
  local log=$1 first last
  first=$(grep -h -m1 -E '(INITED|INFO: seed corpus).* cov: ' "$log" 2>/dev/null | sed -E 's/.* cov: ([0-9]+) ft: ([0-9]+).*/\1\/\2/')
  last=$(grep -h -E '#[0-9]+.*(DONE|NEW|pulse|REDUCE).* cov: ' "$log" 2>/dev/null | tail -1 |
         sed -E 's/.* cov: ([0-9]+) ft: ([0-9]+).*/\1\/\2/')
  echo "${first:-?} -> ${last:-${first:-?}}"
}

# Sum of stat::number_of_executed_units over the logs given.
executions() {
  grep -h 'stat::number_of_executed_units' "$@" 2>/dev/null | awk '{s += $2} END {print s + 0}'
}

# Replaces the tree's corpus of a target with a minimal set covering it and work/.
merge_back() {
  local bin=$1 name=$2 work=$3
  local tree=$TREE/$name merged=$FBUILD/long/$name/merged
  rm -rf "$merged"
  mkdir -p "$merged" "$tree"
  if ! "$bin" -merge=1 "${LIMITS[@]}" -artifact_prefix="$FBUILD/$name-merge-" "$merged" "$tree" "$work" \
       > "$FBUILD/long/$name/merge.log" 2>&1; then
    echo "  MERGE FAILED for $name (tree corpus left as it was): see $FBUILD/long/$name/merge.log"
    return 1
  fi
  declare -A keep
  for f in "$merged"/*; do
    [ -e "$f" ] && keep[$(basename "$f")]=1
  done
  # Tree files the merge chose keep their names; the others go, but seeds and regressions stay.
  for f in "$tree"/*; do
    [ -e "$f" ] || continue
    local sum
    sum=$(sha1sum < "$f" | cut -d' ' -f1)
    if [ -n "${keep[$sum]:-}" ]; then
      unset "keep[$sum]"
    else
      case $(basename "$f") in seed-* | regress-*) ;; *) rm -f "$f" ;; esac
    fi
  done
  for sum in "${!keep[@]}"; do
    cp "$merged/$sum" "$tree/$sum"
  done
  return 0
}

fail=0
case $mode in
smoke)
  seconds=$1
  shift
  for bin in "$@"; do
    name=$(basename "$bin")
    corpus=$FBUILD/corpus/$name
    set_aside_artifacts "$name"
    mkdir -p "$corpus"
    [ -d "$TREE/$name" ] && cp "$TREE/$name"/* "$corpus"/ 2>/dev/null
    echo "  FUZZ    $name (${seconds}s, $(ls "$corpus" | wc -l) inputs)"
    if ! "$bin" -max_total_time="$seconds" "${LIMITS[@]}" -print_final_stats=0 \
         -artifact_prefix="$FBUILD/$name-" "$corpus" > "$FBUILD/$name.log" 2>&1; then
      tail -40 "$FBUILD/$name.log"
      report_artifacts "$bin" "$name"
      fail=1
    fi
  done
  ;;
long)
  hours=$1 jobs=$2
  shift 2
  ncpu=$(nproc)
  [ "$jobs" -gt "$ncpu" ] && jobs=$ncpu
  [ "$jobs" -lt 1 ] && jobs=1
  share=$(awk -v h="$hours" -v n=$# 'BEGIN {s = int(h * 3600 / n); print s < 1 ? 1 : s}')
  wall=$(( share / jobs ))
  [ "$wall" -lt 1 ] && wall=1
  echo "fuzz-long: $hours CPU-hours over $# targets: ${share}s CPU each, $jobs job(s), ${wall}s wall each"
  summary=()
  for bin in "$@"; do
    name=$(basename "$bin")
    dir=$FBUILD/long/$name
    set_aside_artifacts "$name"
    rm -rf "$dir"
    mkdir -p "$dir/work"
    [ -d "$TREE/$name" ] && cp "$TREE/$name"/* "$dir/work"/ 2>/dev/null
    before=$(ls "$TREE/$name" 2>/dev/null | wc -l)
    echo "  FUZZ    $name (${wall}s x $jobs)"
    started=$(date +%s)
    if [ "$jobs" -gt 1 ]; then
      # Each job writes fuzz-<n>.log in the current directory.
      (cd "$dir" && "$OLDPWD/$bin" -jobs="$jobs" -workers="$jobs" -max_total_time="$wall" "${LIMITS[@]}" \
         -print_final_stats=1 -artifact_prefix="$OLDPWD/$FBUILD/$name-" work > run.log 2>&1)
      rc=$?
      logs=("$dir"/fuzz-*.log)
    else
      "$bin" -max_total_time="$wall" "${LIMITS[@]}" -print_final_stats=1 \
        -artifact_prefix="$FBUILD/$name-" "$dir/work" > "$dir/fuzz-0.log" 2>&1
      rc=$?
      logs=("$dir/fuzz-0.log")
    fi
    crashes=0
    if report_artifacts "$bin" "$name"; then
      crashes=$(ls "$FBUILD/$name"-{crash,leak,timeout,oom}-* 2>/dev/null | wc -l)
      fail=1
    elif [ "$rc" -ne 0 ]; then
      echo "  $name: libFuzzer exited $rc without a reproducer: see ${logs[*]}"
      tail -20 "${logs[0]}"
      fail=1
    fi
    merge_back "$bin" "$name" "$dir/work" || fail=1
    after=$(ls "$TREE/$name" | wc -l)
    line=$(printf '%-22s %6ss %12s execs  corpus %4s -> %-4s  cov/ft %-22s crashes %s' "$name" \
           "$(( $(date +%s) - started ))" "$(executions "${logs[@]}")" "$before" "$after" \
           "$(coverage "${logs[0]}")" "$crashes")
    summary+=("$line")
  done
  echo "fuzz-long summary ($(date -u '+%Y-%m-%d %H:%M UTC'), $hours CPU-hours, $jobs job(s)):"
  printf '  %s\n' "${summary[@]}"
  ;;
*)
  echo "usage: $0 smoke SECONDS BIN... | long HOURS JOBS BIN..." >&2
  exit 2
  ;;
esac
exit $fail
