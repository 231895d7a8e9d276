#!/usr/bin/env python3
"""A paygate notification receiver that answers 2xx only to a notification it has verified.

    PAYGATE_AGENCY=000.00.00.H12 PAYGATE_NOTIFY_SECRETS=nsk_new,nsk_old \
        python3 verify_notification.py [PORT]

PAYGATE_NOTIFY_SECRETS: the notify secrets you accept now (after a rotation, new and old).
Each new verified event is printed as one JSON line on stdout, standing in for storing it.
"""
import hashlib, hmac, json, os, sys, time
from http.server import BaseHTTPRequestHandler, HTTPServer

TOLERANCE_S = 300
AGENCY = os.environ["PAYGATE_AGENCY"]
SECRETS = [s for s in os.environ["PAYGATE_NOTIFY_SECRETS"].split(",") if s]
seen = set()  # ids of the events already processed: keep them in your database instead


def fields(header):
    parsed = {}
    for part in header.split(","):
        name, sep, value = part.strip().partition("=")
        if not sep or name in parsed or name not in ("t", "kid", "v1"):
            return None
        parsed[name] = value.strip()
    ok = len(parsed) == 3 and parsed["t"].isascii() and parsed["t"].isdigit()
    return parsed if ok else None


def verified(headers, body):
    """Paygate-Signature (or, after a rotation, Paygate-Signature-Previous) over the raw body."""
    for name in ("Paygate-Signature", "Paygate-Signature-Previous"):
        f = fields(headers.get(name) or "")
        if f is None or f["kid"] != AGENCY or abs(time.time() - int(f["t"])) > TOLERANCE_S:
            continue
        for secret in SECRETS:
            mac = hmac.new(secret.encode(), f["t"].encode() + b"." + body, hashlib.sha256)
            if hmac.compare_digest(mac.hexdigest().encode(), f["v1"].encode()):
                return True
    return False


class Receiver(BaseHTTPRequestHandler):
    def do_POST(self):
        length = self.headers.get("Content-Length", "")
        body = self.rfile.read(int(length)) if length.isdigit() and int(length) <= 1 << 20 else b""
        if not verified(self.headers, body):  # verify the raw bytes before parsing them
            self.send_response(401)
        else:
            event = json.loads(body)
            if event["id"] not in seen:  # at-least-once delivery: process each event id once
                print(json.dumps(event, ensure_ascii=False), flush=True)
                seen.add(event["id"])
            self.send_response(204)  # any 2xx acknowledges; answer it only once stored
        self.end_headers()


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8000
    HTTPServer(("127.0.0.1", port), Receiver).serve_forever()
