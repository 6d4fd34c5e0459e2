#!/usr/bin/env python3
"""A webhook receiver for the cookbook's verify scripts: Python's standard library only.

It checks every delivery's Standard Webhooks signature itself (it does not trust the sender),
answers 401 to a bad one and 204 to a good one, drops a message it has already accepted (the
same `webhook-id` on the same path: a retry or a duplicate run), and appends one JSON line per
request to OUT, so the script can compare what arrived with what the app says it sent:

    {"path": "/a", "webhook_id": "…", "verdict": "accepted" | "duplicate" | "rejected",
     "type": "job.succeeded", "job_id": "…", "state": "SUCCEEDED"}

    python3 receiver.py --dir DIR

listens on 127.0.0.1 on a free port, writes the port to DIR/port once it listens, appends to
DIR/received.jsonl, and reads the secret of path `/NAME` from DIR/secrets/NAME at each request
(so a webhook can be registered after the receiver started). `--self-test` checks the
signature code against the Standard Webhooks specification's example and exits.
"""

import argparse
import base64
import hashlib
import hmac
import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# region: verify-signature
# How far `webhook-timestamp` may be from now, either way (replays are refused).
TOLERANCE_SECS = 300


def sign(secret, msg_id, timestamp, body):
    """`v1,` + base64 HMAC-SHA256 of `{id}.{timestamp}.{body}`, keyed by the bytes after whsec_."""
    if not secret.startswith("whsec_"):
        raise ValueError("a Standard Webhooks secret starts with whsec_")
    key = base64.b64decode(secret[len("whsec_"):])
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def verify(secret, headers, body, now):
    """True when one of the `webhook-signature` signatures is valid and the timestamp is fresh."""
    msg_id = headers.get("webhook-id")
    timestamp = headers.get("webhook-timestamp")
    signatures = headers.get("webhook-signature")
    if not (msg_id and timestamp and signatures):
        return False
    try:
        sent_at = int(timestamp)
    except ValueError:
        return False
    if abs(now - sent_at) > TOLERANCE_SECS:
        return False
    expected = sign(secret, msg_id, timestamp, body)
    # Several space-separated signatures may be sent while a secret is rotated.
    return any(hmac.compare_digest(s, expected) for s in signatures.split(" "))
# endregion: verify-signature


def self_test():
    """The example of the Standard Webhooks specification (and of core_web::webhook)."""
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    msg_id, timestamp, body = "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, b'{"test": 2432232314}'
    expected = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    assert sign(secret, msg_id, timestamp, body) == expected, "the signature of the spec's example"
    headers = {"webhook-id": msg_id, "webhook-timestamp": str(timestamp), "webhook-signature": expected}
    assert verify(secret, headers, body, timestamp + 10), "a valid signature is accepted"
    assert not verify(secret, headers, b"{}", timestamp), "another body is rejected"
    assert not verify(secret, headers, body, timestamp + 3600), "an old timestamp is rejected"
    print("ok: the receiver's signature check passes the Standard Webhooks example")


class Receiver(BaseHTTPRequestHandler):
    directory = "."
    seen = set()
    lock = threading.Lock()

    def secret(self):
        name = self.path.strip("/").split("?")[0]
        try:
            with open(os.path.join(self.directory, "secrets", name), encoding="utf-8") as f:
                return f.read().strip()
        except OSError:
            return None

    # region: receive
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        secret = self.secret()
        valid = secret is not None and verify(secret, self.headers, body, int(time.time()))
        msg_id = self.headers.get("webhook-id", "")
        line = {"path": self.path, "webhook_id": msg_id}
        if not valid:
            line["verdict"] = "rejected"
            status = 401
        else:
            event = json.loads(body)
            data = event.get("data", {})
            line.update(type=event.get("type"), job_id=data.get("job_id"), state=data.get("state"))
            with self.lock:
                # Receivers de-duplicate on webhook-id: a retry of a message sends the same one.
                first = (self.path, msg_id) not in self.seen
                self.seen.add((self.path, msg_id))
            line["verdict"] = "accepted" if first else "duplicate"
            status = 204
        self.record(line)
        self.send_response(status)
        self.send_header("content-length", "0")
        self.end_headers()
    # endregion: receive

    def record(self, line):
        with self.lock, open(os.path.join(self.directory, "received.jsonl"), "a", encoding="utf-8") as f:
            f.write(json.dumps(line) + "\n")

    def log_message(self, format, *args):  # noqa: A002 (the base class's name)
        pass


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", default=".")
    parser.add_argument("--self-test", action="store_true")
    args = parser.parse_args()
    if args.self_test:
        self_test()
        return
    Receiver.directory = args.dir
    os.makedirs(os.path.join(args.dir, "secrets"), exist_ok=True)
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    port_file = os.path.join(args.dir, "port")
    with open(port_file + ".tmp", "w", encoding="utf-8") as f:
        f.write(str(server.server_address[1]))
    os.replace(port_file + ".tmp", port_file)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    sys.exit(main())
