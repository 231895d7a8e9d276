-- Seeds a database migrated by paygate for bench/callback.pgbench: the agency BENCH.AGENCY,
-- the bank BENCH with the key bench_key, the sequence bench_seq that hands each pgbench
-- transaction its own order, and :n more pending orders bench_<i> (mixed obligations; amount
-- and obligation follow from i, so the script can send the right ones without reading them).
--
--   psql -v n=1000000 -f bench/seed.sql "postgresql:///paygate?host=$PGDATA_DIR&user=postgres"
--
-- It may run again: it appends :n orders after the last one, and the sequence carries on, so
-- every order is paid at most once. Each transaction of the script pays one order: seed more
-- than the run will pay (transactions per second x seconds), or clients stop with an error.

\set ON_ERROR_STOP on
\if :{?n}
\else
  \echo 'usage: psql -v n=<orders> -f bench/seed.sql <connection>'
  \quit
\endif

BEGIN;

INSERT INTO agencies (code, name, notify_secret)
VALUES ('BENCH.AGENCY', 'Benchmark agency', 'nsk_bench_not_a_secret_0123456789abcdef')
ON CONFLICT (code) DO NOTHING;

INSERT INTO banks (code, name) VALUES ('BENCH', 'Benchmark bank')
ON CONFLICT (code) DO NOTHING;

INSERT INTO bank_keys (key_id, bank_code, secret)
VALUES ('bench_key', 'BENCH', 'bsk_bench_not_a_secret_0123456789abcdef')
ON CONFLICT (key_id) DO NOTHING;

CREATE SEQUENCE IF NOT EXISTS bench_seq;

SELECT coalesce(max(substr(id, 7)::bigint), 0) AS base
FROM payments WHERE agency_code = 'BENCH.AGENCY' AND id LIKE 'bench\_%' \gset

-- amount = (10 + i % 990) * 1000 and obligation = [...][i % 6 + 1]: callback.pgbench uses the
-- same two formulas.
INSERT INTO payments (id, agency_code, obligation, reference, amount, currency, description,
                      payer_name, payer_id_number, details, status, created_at, expires_at)
SELECT 'bench_' || i, 'BENCH.AGENCY',
       (ARRAY['fee', 'tax', 'social_insurance', 'fine', 'electricity', 'court_advance'])[i % 6 + 1],
       'bench_' || i,
       (10 + i % 990) * 1000, 'VND',
       (ARRAY['Lệ phí cấp đổi giấy phép lái xe', 'Nộp thuế thu nhập cá nhân',
              'Đóng bảo hiểm xã hội tự nguyện', 'Nộp phạt vi phạm hành chính giao thông',
              'Thanh toán tiền điện', 'Tạm ứng án phí dân sự sơ thẩm'])[i % 6 + 1],
       (ARRAY['Nguyễn Văn An', 'Trần Thị Bình', 'Lê Hoàng Cường', 'Phạm Thu Dung'])[i % 4 + 1],
       lpad((i % 1000000000000)::text, 12, '0'),
       CASE i % 6
           WHEN 0 THEN json_build_object('procedure_code', '1.002804', 'dossier_code', 'BENCH-' || i)
           WHEN 1 THEN json_build_object('tax_code', lpad((i % 10000000000)::text, 10, '0'))
           WHEN 2 THEN json_build_object('insurance_code', lpad((i % 10000000000)::text, 10, '0'),
                                         'period', '2026-10')
           WHEN 3 THEN json_build_object('decision_number', i || '/QĐ-XPHC')
           WHEN 4 THEN json_build_object('customer_code', 'PD' || lpad((i % 100000000000)::text, 11, '0'),
                                         'billing_period', '2026-10')
           ELSE json_build_object('case_number', i || '/2026/DS-ST', 'court_code', 'TAND.HN')
       END,
       'pending', now(), now() + interval '30 days'
FROM generate_series(:base + 1, :base + :n) AS i;

COMMIT;

ANALYZE payments;

SELECT count(*) AS pending_bench_orders FROM payments
WHERE agency_code = 'BENCH.AGENCY' AND status = 'pending';
