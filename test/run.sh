#!/usr/bin/env bash
# Run the dvfs test suite (compiled JS under dist/test) with tap.
#
#   bash test/run.sh                              # every dist/test/**/*.test.js
#   bash test/run.sh dist/test/encfs/names.test.js  # only the given files
#
# Arguments are passed to tap as test-file filters; a test/**/*.ts source path
# is mapped to its compiled dist/test/**/*.js file. The raw TAP stream is
# tee'd to a log file. The last line printed is always
#   "N passed, N failed, N skipped"
# computed from the TAP stream itself. Exit status is non-zero if anything
# failed or if no test ran.
#
# Environment: DVFS_TEST_TIMEOUT (seconds per test file, default 600),
#              DVFS_TEST_JOBS (parallel test files, default: tap's choice),
#              DVFS_TEST_LOG_DIR (where tap.log goes, default: fresh temp dir),
#              DVFS_TEST_TOTAL_TIMEOUT (seconds for the whole tap run, default:
#              unlimited; on expiry tap is killed and the results so far are
#              counted, plus one failure).
set -uo pipefail

REPO_ROOT="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)"
cd "$REPO_ROOT" || exit 2

say() { printf 'run: %s\n' "$*"; }

LOG_DIR="${DVFS_TEST_LOG_DIR:-}"
if [[ -z "$LOG_DIR" ]]; then
  LOG_DIR="$(mktemp -d "${TMPDIR:-/tmp}/dvfs-test-run.XXXXXX")"
fi
mkdir -p "$LOG_DIR"
LOG="$LOG_DIR/tap.log"

files=()
if (($# > 0)); then
  for arg in "$@"; do
    if [[ "$arg" == test/*.ts && ! -e "dist/$arg" ]]; then
      mapped="dist/${arg%.ts}.js"
      say "mapping $arg -> $mapped"
      arg="$mapped"
    fi
    files+=("$arg")
  done
else
  if ! find dist/test -name '*.test.js' -print -quit 2>/dev/null | grep -q .; then
    say "no compiled test files under dist/test (run 'npm run build' or 'bash test/setup.sh' first)"
    echo "0 passed, 0 failed, 0 skipped"
    exit 1
  fi
  # quoted: tap expands the glob itself
  files=('dist/test/**/*.test.js')
fi

tap_args=(--disable-coverage --reporter=tap --no-color --timeout="${DVFS_TEST_TIMEOUT:-600}")
if [[ -n "${DVFS_TEST_JOBS:-}" ]]; then
  tap_args+=(--jobs="$DVFS_TEST_JOBS")
fi

limit=()
if [[ -n "${DVFS_TEST_TOTAL_TIMEOUT:-}" ]]; then
  limit=(timeout -k 30 "$DVFS_TEST_TOTAL_TIMEOUT")
fi

say "tap ${tap_args[*]} ${files[*]}"
say "raw log: $LOG"
"${limit[@]}" npx tap "${tap_args[@]}" "${files[@]}" 2>&1 | tee "$LOG"
tap_rc=${PIPESTATUS[0]}

# Walk the TAP 14 stream. Subtests appear as "# Subtest: NAME" followed by
# their points indented 4 more spaces and closed by a point at the header's
# indentation. A point counts as one result if it is a leaf (not closing a
# subtest that had its own points), or if it is a failing subtest none of
# whose descendants failed (e.g. plan mismatch, crash, non-zero exit).
# YAML diagnostics (--- ... ...) are skipped. Outputs "K<TAB>..." records.
parse() {
  awk '
  function ind(s) { match(s, /^ */); return RLENGTH }
  function path(lvl,   p, i) {
    p = ""
    for (i = 0; i < lvl; i++) p = p name[i] " > "
    return p
  }
  BEGIN { inyaml = 0; lastpt = -1 }
  {
    line = $0; sub(/\r$/, "", line)
    d = ind(line); body = substr(line, d + 1)
    if (inyaml) { if (d == yind && body ~ /^\.\.\.[ \t]*$/) inyaml = 0; next }
    if (body ~ /^---[ \t]*$/ && lastpt >= 0 && d == lastpt + 2) { inyaml = 1; yind = d; next }
    if (body == "") next
    lastpt = -1
    if (d == 0 && body ~ /^# \{ total: /) { print "T\t" body; next }
    if (d == 0 && body ~ /^Bail out!/) { print "B\t" body; next }
    if (body ~ /^# Subtest: /) {
      L = int(d / 4)
      name[L] = substr(body, 12); open[L] = 1
      npts[L + 1] = 0; nfail[L + 1] = 0
      next
    }
    if (body !~ /^(not )?ok([ \t]|$)/) next
    lastpt = d
    L = int(d / 4)
    isok = (body ~ /^ok/)
    desc = body
    sub(/^(not )?ok[ \t]*[0-9]*[ \t]*(- )?/, "", desc)
    directive = ""; reason = ""
    if (match(desc, /[ \t]#[ \t]*(SKIP|skip|Skip|TODO|todo|Todo)[A-Za-z]*/)) {
      directive = toupper(substr(desc, RSTART, RLENGTH))
      directive = (directive ~ /SKIP/) ? "SKIP" : "TODO"
      reason = substr(desc, RSTART + RLENGTH)
      sub(/^[ \t]+/, "", reason); sub(/[ \t]*#[ \t]*time=.*$/, "", reason)
      desc = substr(desc, 1, RSTART - 1)
    }
    sub(/[ \t]*#[ \t]*time=[^ ]*[ \t]*$/, "", desc)
    gsub(/\\#/, "#", desc)
    closes = open[L]; kids = npts[L + 1]; kidfails = nfail[L + 1]
    open[L] = 0
    npts[L]++
    full = path(L) desc
    if (directive == "SKIP") { print "S\t" full "\t" reason; next }
    if (directive == "TODO") { print "D\t" full "\t" reason; next }
    if (isok) { if (!(closes && kids > 0)) print "P\t" full; next }
    # not ok
    nfail[L]++
    if (closes && kids > 0 && kidfails > 0) next
    if (closes && kids > 0) print "F\t" full "\t(subtest failed without a failing assertion; see its diagnostics in the log)"
    else print "F\t" full "\t"
  }
  ' "$1"
}

records="$(parse "$LOG")"
count() { printf '%s\n' "$records" | grep -c "^$1	" || true; }
passed=$(count P)
failed=$(count F)
skipped=$(count S)
todo=$(count D)
tap_summary="$(printf '%s\n' "$records" | sed -n 's/^T\t//p' | tail -n 1)"

echo
say "================================ summary ================================"
if [[ -n "$tap_summary" ]]; then
  say "tap's own count: $tap_summary"
else
  say "tap printed no final count (runner interrupted or crashed?)"
fi
if ((${#limit[@]} > 0 && (tap_rc == 124 || tap_rc == 137))); then
  say "!!! the test run exceeded DVFS_TEST_TOTAL_TIMEOUT=${DVFS_TEST_TOTAL_TIMEOUT}s and was killed"
fi
if printf '%s\n' "$records" | grep -q '^B	'; then
  say "$(printf '%s\n' "$records" | sed -n 's/^B\t//p' | head -n 1)"
fi
if ((skipped + todo > 0)); then
  say "!!! $skipped SKIPPED and $todo TODO test(s) did NOT run:"
  printf '%s\n' "$records" | awk -F'\t' '
    $1 == "S" { printf "run:   SKIP  %s -- %s\n", $2, ($3 == "" ? "(no reason given)" : $3) }
    $1 == "D" { printf "run:   TODO  %s -- %s\n", $2, ($3 == "" ? "(no reason given)" : $3) }'
fi
if ((failed > 0)); then
  say "!!! $failed FAILED:"
  printf '%s\n' "$records" | awk -F'\t' '$1 == "F" { printf "run:   FAIL  %s%s\n", $2, ($3 == "" ? "" : " " $3) }'
fi
if ((tap_rc != 0 && failed == 0)); then
  say "!!! tap exited with status $tap_rc but no failing test was found in its output; counting 1 failure"
  failed=1
fi
status=0
if ((failed > 0)); then
  status=1
elif ((passed == 0)); then
  say "!!! no test ran"
  status=1
fi
say "raw log: $LOG"
echo "$passed passed, $failed failed, $((skipped + todo)) skipped"
exit "$status"
