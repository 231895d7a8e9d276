#!/usr/bin/env bash
# An agency's rehearsal in the sandbox, end to end: a sandbox agency (made with an admin key)
# whose notifications go to verify_notification.py, then every step of the agency's checklist:
# an order, its idempotent replay, the refusals (reused key, duplicate reference, validation),
# a sandbox payment and its signed notification, a redelivery, a cancellation, a refund approved
# by a second key, an inquiry case, the day's statement, and the checklist itself. Each answer is
# checked; the script stops at the first surprise. docs/integrators-guide.md explains each step.
#
#   PAYGATE=http://127.0.0.1:8080 ADMIN_KEY=pgk_... bash docs/examples/agency-walk.sh
#
# Needs curl, jq and python3. By default it starts verify_notification.py on 127.0.0.1:8765
# (NOTIFY_PORT), which paygate may call only when it runs with PAYGATE_NOTIFY_ALLOW_PRIVATE=true.
# To have paygate notify a receiver of your own instead, set NOTIFY_URL (the walk then sees your
# receiver's 2xx through GET /v1/events).
set -euo pipefail
PAYGATE=${PAYGATE:-http://127.0.0.1:8080}
: "${ADMIN_KEY:?set ADMIN_KEY to an admin API key}"
RUN=$(date +%s)                      # makes the codes, references and keys of each run new
AGENCY=${AGENCY:-000.00.00.H12-AW-$RUN}
NOTIFY_PORT=${NOTIFY_PORT:-8765}
HERE=$(cd "$(dirname "$0")" && pwd)
HEADERS=$(mktemp); EVENTS=$(mktemp)
trap 'rm -f "$HEADERS" "$EVENTS"; [ -n "${RECEIVER:-}" ] && kill "$RECEIVER"' EXIT

# api METHOD PATH KEY [BODY [HEADER]]: one API request; sets STATUS and ANSWER (headers: $HEADERS)
api() {
  ANSWER=$(curl -s -D "$HEADERS" -w '\n%{http_code}' -X "$1" "$PAYGATE$2" \
    -H "Authorization: Bearer $3" -H 'Content-Type: application/json' \
    ${5:+-H "$5"} ${4:+--data-binary "$4"})
  STATUS=${ANSWER##*$'\n'}; ANSWER=${ANSWER%$'\n'*}
}
# expect STATUS JQ-TEST: stops unless the last answer has that status and passes the test
expect() {
  if [ "$STATUS" != "$1" ] || ! jq -e "$2" >/dev/null <<<"$ANSWER"; then
    echo "unexpected answer: $STATUS $ANSWER" >&2; exit 1
  fi
  echo "   -> $STATUS $(jq -c . <<<"$ANSWER" | cut -c1-300)"
}
# delivered PAYMENT_ID TYPE ATTEMPTS: waits (30 s at most) until that event is delivered after
# at least ATTEMPTS attempts; sets EVENT_ID
delivered() {
  local filter=".items[] | select(.type == \"$2\" and .status == \"delivered\" and .attempts >= $3)"
  for _ in $(seq 30); do
    api GET "/v1/events?payment_id=$1" "$AGENCY_KEY"
    EVENT_ID=$(jq -r "[$filter][0].id // empty" <<<"$ANSWER")
    if [ -n "$EVENT_ID" ]; then echo "   -> $(jq -c "$filter" <<<"$ANSWER")"; return; fi
    sleep 1
  done
  echo "event $2 of $1 not delivered: $ANSWER" >&2; exit 1
}
order() { # order REFERENCE: the body of a fee order
  echo '{"obligation": "fee", "reference": "'"$1"'", "amount": "150000",
    "description": "Lệ phí cấp đổi giấy phép lái xe",
    "payer": {"name": "Nguyễn Văn A", "id_number": "001099012345"},
    "details": {"procedure_code": "1.002804", "dossier_code": "'"$1"'"}}'
}

echo "0. An admin creates the sandbox agency (notify_url set) and a second key for approvals"
URL=${NOTIFY_URL:-http://127.0.0.1:$NOTIFY_PORT/notify}
api POST /v1/agencies "$ADMIN_KEY" "{\"code\": \"$AGENCY\", \"name\": \"Sở Tư pháp (thử nghiệm)\",
  \"notify_url\": \"$URL\", \"sandbox\": true}"
expect 201 '.sandbox == true and (.notify_secret | startswith("nsk_"))'
AGENCY_KEY=$(jq -r .api_key <<<"$ANSWER"); NOTIFY_SECRET=$(jq -r .notify_secret <<<"$ANSWER")
api POST "/v1/agencies/$AGENCY/keys" "$ADMIN_KEY" '{"label": "Lãnh đạo phòng"}'
expect 201 '.api_key | startswith("pgk_")'
APPROVER_KEY=$(jq -r .api_key <<<"$ANSWER")
if [ -z "${NOTIFY_URL:-}" ]; then
  PAYGATE_AGENCY=$AGENCY PAYGATE_NOTIFY_SECRETS=$NOTIFY_SECRET \
    python3 "$HERE/verify_notification.py" "$NOTIFY_PORT" >"$EVENTS" 2>/dev/null &
  RECEIVER=$!
fi

echo "1. Create an order: a fresh Idempotency-Key per order"
REF=H12.99-AW-$RUN-1
api POST /v1/payments "$AGENCY_KEY" "$(order "$REF")" "Idempotency-Key: $REF"
expect 201 '.status == "pending" and .sandbox == true'
PAYMENT_ID=$(jq -r .id <<<"$ANSWER")

echo "2. The same request again (a retry after a timeout): the same answer, nothing created"
api POST /v1/payments "$AGENCY_KEY" "$(order "$REF")" "Idempotency-Key: $REF"
expect 201 ".id == \"$PAYMENT_ID\""
grep -i '^idempotent-replayed: true' "$HEADERS"

echo "3. The same key with another body: 422 idempotency_key_reused"
api POST /v1/payments "$AGENCY_KEY" "$(order "$REF" | sed 's/150000/160000/')" "Idempotency-Key: $REF"
expect 422 '.code == "idempotency_key_reused"'

echo "4. Another key, same reference while the first order is pending: 409 duplicate_reference"
api POST /v1/payments "$AGENCY_KEY" "$(order "$REF")" "Idempotency-Key: $REF-bis"
expect 409 '.code == "duplicate_reference"'

echo "5. An invalid order: 422 validation_failed, every invalid field named"
api POST /v1/payments "$AGENCY_KEY" '{"obligation": "tax", "reference": "H12-AW-'"$RUN"'-x",
  "amount": 150000, "description": "Thuế thu nhập cá nhân", "payer": {"name": "Trần Thị B"},
  "details": {"tax_code": "01012345", "tax_perod": "2026"}}' "Idempotency-Key: $REF-invalid"
expect 422 '.code == "validation_failed" and (.errors | length) == 3'
jq -r '.errors[] | "      \(.field): \(.message)"' <<<"$ANSWER"

echo "6. The sandbox bank pays the order (scenario succeeded)"
api POST "/v1/sandbox/payments/$PAYMENT_ID/pay" "$AGENCY_KEY" '{"scenario": "succeeded"}'
expect 200 '.result == "accepted" and .payment_status == "paid"'

echo "7. payment.paid reaches the receiver, which verified its signature and answered 204"
delivered "$PAYMENT_ID" payment.paid 1
PAID_EVENT=$EVENT_ID

echo "8. Ask for a redelivery: the receiver acknowledges the repeat and processes it once"
api POST "/v1/events/$PAID_EVENT/redeliver" "$AGENCY_KEY"
[ "$STATUS" = 202 ] && echo "   -> 202"
delivered "$PAYMENT_ID" payment.paid 2

echo "9. Cancel another order (payment.cancelled follows); cancelling again answers 200 again"
api POST /v1/payments "$AGENCY_KEY" "$(order "H12.99-AW-$RUN-2")" "Idempotency-Key: H12.99-AW-$RUN-2"
expect 201 '.status == "pending"'
CANCELLED_ID=$(jq -r .id <<<"$ANSWER")
api POST "/v1/payments/$CANCELLED_ID/cancel" "$AGENCY_KEY"
expect 200 '.status == "cancelled"'
api POST "/v1/payments/$CANCELLED_ID/cancel" "$AGENCY_KEY"
expect 200 '.status == "cancelled"'
delivered "$CANCELLED_ID" payment.cancelled 1

echo "10. Refund part of the paid order: one key asks, another approves, the sandbox bank completes"
api POST "/v1/payments/$PAYMENT_ID/refunds" "$AGENCY_KEY" \
  '{"amount": "50000", "reason": "Hồ sơ bị từ chối, hoàn lệ phí"}' "Idempotency-Key: refund-$REF"
expect 201 '.status == "pending_approval"'
REFUND_ID=$(jq -r .id <<<"$ANSWER")
api POST "/v1/refunds/$REFUND_ID/approve" "$AGENCY_KEY"
expect 403 '.code == "same_approver"'
api POST "/v1/refunds/$REFUND_ID/approve" "$APPROVER_KEY"
expect 200 '.status == "approved"'
api POST "/v1/sandbox/refunds/$REFUND_ID/result" "$AGENCY_KEY" '{"status": "completed"}'
expect 200 '.result == "accepted" and .refund_status == "completed"'
delivered "$PAYMENT_ID" refund.completed 1

echo "11. A payer says they paid an order that is still pending: open an inquiry case"
api POST /v1/payments "$AGENCY_KEY" "$(order "H12.99-AW-$RUN-3")" "Idempotency-Key: H12.99-AW-$RUN-3"
expect 201 '.status == "pending"'
api POST /v1/cases "$AGENCY_KEY" "{\"payment_id\": \"$(jq -r .id <<<"$ANSWER")\",
  \"message\": \"Người nộp báo đã chuyển khoản lúc 09:15 nhưng hồ sơ vẫn chưa thanh toán.\"}"
expect 201 '.kind == "inquiry" and .status == "open"'

echo "12. Today's statement (Vietnam business day): the payment and the refund"
DAY=$(date -u -d "+7 hours" +%F)
api GET "/v1/statements/daily?date=$DAY" "$AGENCY_KEY"
expect 200 '.totals.payments.amount == "150000" and .totals.refunds.amount == "50000" and .totals.net == "100000"'
curl -s "$PAYGATE/v1/statements/daily.csv?date=$DAY" -H "Authorization: Bearer $AGENCY_KEY"

echo "13. The agency's checklist: every step done"
api GET "/v1/agencies/$AGENCY/checklist" "$AGENCY_KEY"
expect 200 '.ready == true and .sandbox == true'
jq -r '.steps[] | "   \(.step): done \(.done), first \(.first_at), last \(.last_at)"' <<<"$ANSWER"
if [ -s "$EVENTS" ]; then echo "Events the receiver processed:"; cat "$EVENTS"; fi
