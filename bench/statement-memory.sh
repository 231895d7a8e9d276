#!/bin/sh
# The CSV of an agency's daily statement for a day of N paid orders, streamed: prints the
# download's time and size and the server's peak resident memory before and during it.
#
#   bench/statement-memory.sh BIN_DIR N
#
# BIN_DIR holds a release build of paygate (target/release). The orders are inserted directly
# (as in the tests' large day), on a fresh embedded cluster under /var/tmp, removed afterwards.
set -eu
bin=$1 n=$2
port=$((19000 + $$ % 1000))
dir=$(mktemp -d /var/tmp/paygate-statement.XXXXXX)
chmod 755 "$dir"
PAYGATE_DATA_DIR=$dir PAYGATE_LISTEN=127.0.0.1:$port "$bin/paygate" serve >"$dir/serve.log" 2>&1 &
serve=$!
trap 'kill -TERM $serve 2>/dev/null; wait $serve; rm -rf "$dir"' EXIT
until curl -sf "http://127.0.0.1:$port/readyz" >/dev/null; do sleep 0.2; done
key=$(PAYGATE_DATA_DIR=$dir "$bin/paygate" admin create-key --role admin | tail -n 1)
url="postgresql:///paygate?host=$dir/postgres&user=postgres"
base=http://127.0.0.1:$port
curl -sf -X POST "$base/v1/agencies" -H "Authorization: Bearer $key" \
    -H 'Content-Type: application/json' -d '{"code": "000.00.00.H12", "name": "Sở Tư pháp"}' >/dev/null
curl -sf -X POST "$base/v1/banks" -H "Authorization: Bearer $key" \
    -H 'Content-Type: application/json' -d '{"code": "VCB", "name": "Vietcombank"}' >/dev/null
day=2026-11-23
psql -q "$url" <<SQL
INSERT INTO payments (id, agency_code, obligation, reference, amount, currency, description,
    payer_name, details, status, created_at, expires_at, paid_at, bank_code, bank_txn_id, closed_at)
SELECT 'pay_m' || i, '000.00.00.H12', 'fee', 'REF-' || i, 150000, 'VND',
       'Lệ phí cấp đổi giấy phép lái xe', 'Nguyễn Văn A',
       '{"procedure_code": "1.002804", "dossier_code": "H12.99-261122-0001"}',
       'paid', at - interval '1 hour', at + interval '1 day', at, 'VCB', 'FT-' || i, at
FROM (SELECT i, '${day}T00:00:00+07:00'::timestamptz + make_interval(secs => (i - 1) * 86400.0 / $n) AS at
      FROM generate_series(1, $n) AS i) AS s;
ANALYZE payments;
SQL
rss() { awk '/VmRSS/ { print $2 }' "/proc/$serve/status"; }
hwm() { awk '/VmHWM/ { print $2 }' "/proc/$serve/status"; }
before=$(rss)
peak_before=$(hwm)
start=$(date +%s.%N)
bytes=$(curl -sf "$base/v1/statements/daily.csv?date=$day&agency=000.00.00.H12" \
    -H "Authorization: Bearer $key" | wc -c)
end=$(date +%s.%N)
echo "orders=$n csv_bytes=$bytes seconds=$(echo "$end - $start" | bc)" \
    "rss_before_kib=$before peak_before_kib=$peak_before peak_after_kib=$(hwm) rss_after_kib=$(rss)"
