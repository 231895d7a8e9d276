#!/bin/sh
# One loadgen run on a fresh embedded cluster; prints one summary line.
#
#   bench/loadgen-run.sh BIN_DIR LABEL CONCURRENCY ORDERS
#
# BIN_DIR holds release builds of paygate and loadgen (target/release). Extra settings for
# paygate come from the environment (e.g. PAYGATE_CALLBACK_LANES=2). The cluster lives in a
# fresh directory under /var/tmp that the postgres account can enter, and is removed afterwards.
# The line gives orders/s and callbacks/s with their p50/p99 ms, the share of the run's CPU
# time the hypervisor stole (a run with much steal is not comparable), the database's size and
# the WAL written per order (its creation and its callback).
set -eu
bin=$1 label=$2 concurrency=$3 orders=$4
port=$((18000 + $$ % 1000))
dir=$(mktemp -d /var/tmp/paygate-bench.XXXXXX)
chmod 755 "$dir"
PAYGATE_DATA_DIR=$dir PAYGATE_LISTEN=127.0.0.1:$port "$bin/paygate" serve >"$dir/serve.log" 2>&1 &
serve=$!
trap 'kill -TERM $serve 2>/dev/null; wait $serve; rm -rf "$dir"' EXIT
until curl -sf "http://127.0.0.1:$port/readyz" >/dev/null; do sleep 0.2; done
key=$(PAYGATE_DATA_DIR=$dir "$bin/paygate" admin create-key --role admin | tail -n 1)
url="postgresql:///paygate?host=$dir/postgres&user=postgres"
wal1=$(psql -Atc "SELECT pg_current_wal_lsn()" "$url")
# /proc/stat's cpu line: user nice system idle iowait irq softirq steal
read -r _ u1 n1 s1 i1 w1 q1 sq1 st1 _ </proc/stat
"$bin/loadgen" --admin-key "$key" --orders "$orders" --concurrency "$concurrency" \
    --base-url "http://127.0.0.1:$port" >"$dir/loadgen.txt"
read -r _ u2 n2 s2 i2 w2 q2 sq2 st2 _ </proc/stat
# What the run wrote (WAL) and left in the database (orders, callbacks, ledger, events, keys,
# audit), per order.
wal=$(psql -Atc "SELECT pg_current_wal_lsn() - '$wal1'" "$url")
bytes=$(psql -Atc "SELECT pg_database_size(current_database())" "$url")
busy=$(( (u2 + n2 + s2 + q2 + sq2) - (u1 + n1 + s1 + q1 + sq1) ))
steal=$(( st2 - st1 ))
total=$(( busy + steal + (i2 + w2) - (i1 + w1) ))
awk -v label="$label" -v c="$concurrency" -v bytes="$bytes" -v wal="$wal" -v orders="$orders" -v steal="$steal" -v total="$total" '
    /^orders:/ { phase = "orders" } /^callbacks:/ { phase = "callbacks" }
    /throughput/ { rate[phase] = $2 }
    /latency ms/ { p50[phase] = $4; p99[phase] = $8 }
    /ledger verify/ { verify = $3 }
    END { printf "%s c=%s orders/s %s (p50 %s p99 %s) callbacks/s %s (p50 %s p99 %s) %s steal %.0f%% database %.0f MB WAL %.0f KB/order\n",
          label, c, rate["orders"], p50["orders"], p99["orders"],
          rate["callbacks"], p50["callbacks"], p99["callbacks"], verify, 100 * steal / total,
          bytes / 1048576, wal / 1024 / orders }
' "$dir/loadgen.txt"
