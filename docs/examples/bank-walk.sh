#!/usr/bin/env bash
# A bank's rehearsal in the sandbox, end to end: a sandbox bank and a sandbox agency (made with
# an admin key), then every step of the bank's checklist: a signed inquiry, a failed attempt, a
# callback refused for its amount and corrected, the accepted callback, its redelivery, a
# conflicting reuse of a bank_txn_id, a bad and an expired signature, a key rotation, a refund
# result, and the checklist itself. Each answer is checked; the script stops at the first
# surprise. docs/integrators-guide.md explains every step.
#
#   PAYGATE=http://127.0.0.1:8080 ADMIN_KEY=pgk_... bash docs/examples/bank-walk.sh
#
# Needs curl and jq, and the paygate binary for `paygate sign`: on PATH, or named by PAYGATE_BIN
# (PAYGATE_BIN=target/release/paygate, or PAYGATE_BIN="cargo run --release -q --").
set -euo pipefail
PAYGATE=${PAYGATE:-http://127.0.0.1:8080}
: "${ADMIN_KEY:?set ADMIN_KEY to an admin API key}"
PAYGATE_BIN=${PAYGATE_BIN:-paygate}
RUN=$(date +%s)                      # makes the codes and ids of each run new
BANK=${BANK:-SBX-VCB-$RUN}
AGENCY=${AGENCY:-000.00.00.H12-BW-$RUN}

# sign SECRET KID [T] < body: the Paygate-Signature value (paygate sign; see sign_request.py)
sign() { PAYGATE_SIGN_SECRET="$1" $PAYGATE_BIN sign --kid "$2" ${3:+--timestamp "$3"}; }
# signed PATH BODY SECRET KID [T]: POSTs BODY, signed, to PATH; sets STATUS and ANSWER
signed() {
  local signature; signature=$(printf '%s' "$2" | sign "$3" "$4" "${5:-}")
  ANSWER=$(curl -s -w '\n%{http_code}' -X POST "$PAYGATE$1" -H 'Content-Type: application/json' \
    -H "Paygate-Signature: $signature" --data-binary "$2")
  STATUS=${ANSWER##*$'\n'}; ANSWER=${ANSWER%$'\n'*}
}
# api METHOD PATH KEY [BODY [HEADER]]: an API-key request; sets STATUS and ANSWER
api() {
  ANSWER=$(curl -s -w '\n%{http_code}' -X "$1" "$PAYGATE$2" -H "Authorization: Bearer $3" \
    -H 'Content-Type: application/json' ${5:+-H "$5"} ${4:+--data-binary "$4"})
  STATUS=${ANSWER##*$'\n'}; ANSWER=${ANSWER%$'\n'*}
}
# expect STATUS JQ-TEST: stops unless the last answer has that status and passes the test
expect() {
  if [ "$STATUS" != "$1" ] || ! jq -e "$2" >/dev/null <<<"$ANSWER"; then
    echo "unexpected answer: $STATUS $ANSWER" >&2; exit 1
  fi
  echo "   -> $STATUS $(jq -c . <<<"$ANSWER")"
}

echo "0. An admin creates a sandbox bank and a sandbox agency (with a second key, to approve refunds)"
api POST /v1/banks "$ADMIN_KEY" "{\"code\": \"$BANK\", \"name\": \"Ngân hàng thử nghiệm\", \"sandbox\": true}"
expect 201 '.secret | startswith("bsk_")'
KID=$(jq -r .key_id <<<"$ANSWER"); SECRET=$(jq -r .secret <<<"$ANSWER")
api POST /v1/agencies "$ADMIN_KEY" "{\"code\": \"$AGENCY\", \"name\": \"Sở Tư pháp (thử nghiệm)\", \"sandbox\": true}"
expect 201 '.api_key | startswith("pgk_")'
AGENCY_KEY=$(jq -r .api_key <<<"$ANSWER")
api POST "/v1/agencies/$AGENCY/keys" "$ADMIN_KEY" '{"label": "Lãnh đạo phòng"}'
expect 201 '.api_key | startswith("pgk_")'
APPROVER_KEY=$(jq -r .api_key <<<"$ANSWER")

echo "1. The agency creates an order for the bank to pay"
api POST /v1/payments "$AGENCY_KEY" '{"obligation": "fee", "reference": "H12.99-BW-'"$RUN"'",
  "amount": "150000", "description": "Lệ phí cấp đổi giấy phép lái xe",
  "payer": {"name": "Nguyễn Văn A"},
  "details": {"procedure_code": "1.002804", "dossier_code": "H12.99-BW-'"$RUN"'"}}' "Idempotency-Key: bw-$RUN"
expect 201 '.status == "pending"'
PAYMENT_ID=$(jq -r .id <<<"$ANSWER")

echo "2. Inquiry: what is due (collect money only for a pending order)"
signed "/v1/banks/$BANK/inquiry" "{\"payment_id\": \"$PAYMENT_ID\"}" "$SECRET" "$KID"
expect 200 '.status == "pending" and .amount == "150000"'

echo "3. A failed attempt (the payer's balance was too low): accepted, the order is unchanged"
signed "/v1/banks/$BANK/callbacks" "{\"bank_txn_id\": \"FT$RUN-1\", \"payment_id\": \"$PAYMENT_ID\",
  \"amount\": \"150000\", \"status\": \"failed\", \"failure_reason\": \"Số dư không đủ\"}" "$SECRET" "$KID"
expect 200 '.result == "accepted" and .payment_status == "pending"'

echo "4. A callback with the wrong amount: 422, which reserves nothing..."
PAID_AT=$(date -u +%Y-%m-%dT%H:%M:%SZ)
CALLBACK="{\"bank_txn_id\": \"FT$RUN-2\", \"payment_id\": \"$PAYMENT_ID\", \"amount\": \"15000\",
  \"currency\": \"VND\", \"status\": \"succeeded\", \"paid_at\": \"$PAID_AT\"}"
signed "/v1/banks/$BANK/callbacks" "$CALLBACK" "$SECRET" "$KID"
expect 422 '.code == "amount_mismatch"'

echo "5. ...so the corrected callback may use the same bank_txn_id: accepted, the order is paid"
CALLBACK=${CALLBACK/\"15000\"/\"150000\"}
signed "/v1/banks/$BANK/callbacks" "$CALLBACK" "$SECRET" "$KID"
expect 200 '.result == "accepted" and .payment_status == "paid"'

echo "6. The same callback again (signed afresh, as every retry is): duplicate, nothing changes"
signed "/v1/banks/$BANK/callbacks" "$CALLBACK" "$SECRET" "$KID"
expect 200 '.result == "duplicate" and .payment_status == "paid"'

echo "7. The same bank_txn_id with different content: 409 bank_txn_conflict"
signed "/v1/banks/$BANK/callbacks" "${CALLBACK/$PAID_AT/2020-01-01T00:00:00Z}" "$SECRET" "$KID"
expect 409 '.code == "bank_txn_conflict"'

echo "8. A wrong secret: 401 invalid_signature"
signed "/v1/banks/$BANK/inquiry" "{\"payment_id\": \"$PAYMENT_ID\"}" "bsk_not-the-secret" "$KID"
expect 401 '.code == "invalid_signature"'

echo "9. The right secret, signed 10 minutes ago: 401 signature_expired"
signed "/v1/banks/$BANK/inquiry" "{\"payment_id\": \"$PAYMENT_ID\"}" "$SECRET" "$KID" $(($(date +%s) - 600))
expect 401 '.code == "signature_expired"'

echo "10. Key rotation: an admin adds a key, the bank signs with it, then the old key is revoked"
api POST "/v1/banks/$BANK/keys" "$ADMIN_KEY"
expect 201 '.key_id != null'
NEW_KID=$(jq -r .key_id <<<"$ANSWER"); NEW_SECRET=$(jq -r .secret <<<"$ANSWER")
signed "/v1/banks/$BANK/inquiry" "{\"payment_id\": \"$PAYMENT_ID\"}" "$NEW_SECRET" "$NEW_KID"
expect 200 '.status == "paid"'
api DELETE "/v1/banks/$BANK/keys/$KID" "$ADMIN_KEY"
[ "$STATUS" = 204 ] && echo "   -> 204 (old key revoked)"
signed "/v1/banks/$BANK/inquiry" "{\"payment_id\": \"$PAYMENT_ID\"}" "$SECRET" "$KID"
expect 401 '.code == "invalid_signature"'
KID=$NEW_KID; SECRET=$NEW_SECRET

echo "11. A refund: the agency asks, another of its keys approves, the bank reports the result"
api POST "/v1/payments/$PAYMENT_ID/refunds" "$AGENCY_KEY" \
  '{"amount": "50000", "reason": "Hồ sơ bị từ chối, hoàn lệ phí"}' "Idempotency-Key: bw-refund-$RUN"
expect 201 '.status == "pending_approval"'
REFUND_ID=$(jq -r .id <<<"$ANSWER")
api POST "/v1/refunds/$REFUND_ID/approve" "$APPROVER_KEY"
expect 200 '.status == "approved"'
RESULT="{\"status\": \"completed\", \"bank_refund_id\": \"RF$RUN\"}"
signed "/v1/banks/$BANK/refunds/$REFUND_ID/result" "$RESULT" "$SECRET" "$KID"
expect 200 '.result == "accepted" and .refund_status == "completed"'
signed "/v1/banks/$BANK/refunds/$REFUND_ID/result" "$RESULT" "$SECRET" "$KID"
expect 200 '.result == "duplicate"'

echo "12. The bank's checklist: every step done"
api GET "/v1/banks/$BANK/checklist" "$ADMIN_KEY"
expect 200 '.ready == true and .sandbox == true'
jq -r '.steps[] | "   \(.step): done \(.done), first \(.first_at), last \(.last_at)"' <<<"$ANSWER"
