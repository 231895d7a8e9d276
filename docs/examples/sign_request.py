#!/usr/bin/env python3
"""Signs a bank's request to paygate: the same Paygate-Signature value as `paygate sign`.

    PAYGATE_SIGN_SECRET=bsk_... python3 sign_request.py --kid kid_... [--timestamp T] < body.json
    PAYGATE_SIGN_SECRET=bsk_... python3 sign_request.py --kid kid_... \
        --post http://127.0.0.1:8080/v1/banks/VCB/inquiry < body.json

Without --post it prints the header value. With --post it sends the body, byte for byte as
signed, and prints the HTTP status and paygate's answer. Standard library only.
"""
import argparse, hashlib, hmac, os, sys, time, urllib.error, urllib.request


def sign(secret, kid, body, timestamp=None):
    """`t=<unix seconds>,kid=<key id>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>`."""
    t = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode("utf-8"), str(t).encode() + b"." + body, hashlib.sha256)
    return f"t={t},kid={kid},v1={mac.hexdigest()}"


def post(url, secret, kid, body, timestamp=None):
    """Signs just before sending (a retry signs again) and returns (status, answer bytes)."""
    signature = sign(secret, kid, body, timestamp)
    request = urllib.request.Request(url, data=body, method="POST", headers={
        "Content-Type": "application/json", "Paygate-Signature": signature})
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as error:  # 4xx and 5xx answers carry a problem document
        return error.code, error.read()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kid", required=True, help="the key id (key_id) to name in the header")
    parser.add_argument("--timestamp", type=int, help="Unix seconds to sign with (default: now)")
    parser.add_argument("--post", metavar="URL", help="send the signed body to this URL")
    args = parser.parse_args()
    secret = os.environ["PAYGATE_SIGN_SECRET"]  # not on the command line, where ps shows it
    body = sys.stdin.buffer.read()  # sign the exact bytes that go on the wire
    if args.post:
        status, answer = post(args.post, secret, args.kid, body, args.timestamp)
        print(status, answer.decode("utf-8"))
    else:
        print(sign(secret, args.kid, body, args.timestamp))
