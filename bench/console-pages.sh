#!/usr/bin/env bash
# Times every console page (median and maximum of 20 requests, after 3 to warm up) against a
# seeded database; see BENCHMARKS.md section 7 for the seeding commands. Needs PAYGATE_DATA_DIR
# (the seeded embedded cluster, not in use) and RUN_JSON (the run `paygate reconcile` printed).
set -euo pipefail
R=${R:-target/release}
D=${PAYGATE_DATA_DIR:?set PAYGATE_DATA_DIR to the seeded data directory}
export PAYGATE_DATA_DIR=$D
PORT=18555; BASE=http://127.0.0.1:$PORT
PAYGATE_LISTEN=127.0.0.1:$PORT $R/paygate serve > $D/console-pages.log 2>&1 &
SP=$!
trap "kill $SP 2>/dev/null || true" EXIT
for i in $(seq 1 120); do curl -sf $BASE/readyz >/dev/null 2>&1 && break; sleep 0.5; done
RUN=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["id"])' "${RUN_JSON:-/tmp/run.json}")
K=$($R/paygate admin create-key --role admin 2>/dev/null | tail -n 1)
J=$(mktemp); rm -f $J
FORM=$(curl -s -c $J $BASE/console/sign-in)
CSRF=$(echo "$FORM" | grep -o 'name="csrf" value="[^"]*"' | head -1 | sed 's/.*value="//;s/"//')
curl -s -b $J -c $J -o /dev/null -w "sign-in %{http_code}\n" --data-urlencode "csrf=$CSRF" --data-urlencode "key=$K" $BASE/console/sign-in
for P in /console /console/reconciliation "/console/reconciliation/$RUN" "/console/reconciliation/$RUN?outcome=matched" /console/cases /console/notifications /console/parties /console/audit; do
  for i in 1 2 3; do curl -s -b $J -o /dev/null "$BASE$P"; done
  S=$(curl -s -b $J -o /dev/null -w "%{http_code}" "$BASE$P")
  T=$(for i in $(seq 1 20); do curl -s -b $J -o /dev/null -w "%{time_total}\n" "$BASE$P"; done | sort -n)
  MED=$(echo "$T" | sed -n 10p); MAX=$(echo "$T" | tail -1)
  printf "%-62s %s  median %.1f ms  max %.1f ms\n" "$P" "$S" "$(echo "$MED*1000" | bc -l)" "$(echo "$MAX*1000" | bc -l)"
done
