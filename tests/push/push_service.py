#!/usr/bin/env python3
"""A local push service for Parley's push tests: no vendor, the real protocol.

Web Push (RFC 8030/8291/8292): POST /push/<id> must carry a VAPID JWT
(ES256 signature checked with the key in `k`, which must be the server's;
`aud` must be this service's origin *with its port*; `exp` in the future and
at most 24 h ahead; `sub` mailto: or https:), `Content-Encoding: aes128gcm`,
and a body that decrypts (http_ece) with the subscription's private key and
auth secret. Every attempt is recorded with its headers and plaintext.

FCM HTTP v1: POST /fcm/token exchanges a service-account assertion (RS256
JWT, checked against the key made by /_fcm) for an access token; POST
/fcm/v1/projects/<p>/messages:send needs that bearer token and records the
message.

Control (JSON): POST /_subscribe {"vapid_key"} -> {"id","endpoint","p256dh",
"auth"}; POST /_script/<id> [201, 410, [503, "1"], ...] answers the next
attempts; GET /_received/<id> -> {"attempts":[...]}; POST /_fcm -> {"key_pem"}.

Prints "listening <port>" and serves until killed or --max-seconds pass.
"""

import argparse
import base64
import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

import http_ece
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

LOCK = threading.Lock()
SUBS = {}  # id -> {"key", "auth", "vapid", "script", "attempts"}
FCM = {"key": None, "tokens": set(), "messages": [], "script": []}


def b64d(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def b64e(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwt_parts(token):
    header, claims, signature = token.split(".")
    return (json.loads(b64d(header)), json.loads(b64d(claims)),
            (header + "." + claims).encode(), b64d(signature))


def check_vapid(authorization, expected_key, origin):
    """Returns None when the VAPID header is valid, else why not."""
    if not authorization.startswith("vapid "):
        return "no vapid authorization"
    fields = dict(p.strip().split("=", 1) for p in authorization[6:].split(","))
    if fields.get("k") != expected_key:
        return "k is not the server's VAPID key"
    header, claims, signed, signature = jwt_parts(fields["t"])
    if header.get("alg") != "ES256" or len(signature) != 64:
        return "not ES256"
    public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b64d(fields["k"]))
    der = encode_dss_signature(int.from_bytes(signature[:32], "big"),
                               int.from_bytes(signature[32:], "big"))
    try:
        public.verify(der, signed, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return "bad signature"
    if claims.get("aud") != origin:
        return "aud %r is not %r" % (claims.get("aud"), origin)
    now = time.time()
    exp = claims.get("exp")
    if not isinstance(exp, int) or exp <= now or exp > now + 86400:
        return "exp %r is not within 24 h" % (exp,)
    if not str(claims.get("sub", "")).startswith(("mailto:", "https:")):
        return "bad sub"
    return None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def body(self):
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def answer(self, status, value=None, headers=()):
        data = b"" if value is None else json.dumps(value).encode()
        self.send_response(status)
        for name, text in headers:
            self.send_header(name, text)
        self.send_header("Content-Length", str(len(data)))
        if data:
            self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(data)

    def origin(self):
        return "http://127.0.0.1:%d" % self.server.server_address[1]

    def do_GET(self):
        if self.path.startswith("/_received/"):
            sub = self.path.split("/")[2]
            with LOCK:
                attempts = list(SUBS.get(sub, {}).get("attempts", []))
            return self.answer(200, {"attempts": attempts})
        if self.path == "/_fcm/received":
            with LOCK:
                return self.answer(200, {"messages": list(FCM["messages"])})
        self.answer(404)

    def do_POST(self):
        body = self.body()
        parts = self.path.split("/")
        if self.path == "/_subscribe":
            request = json.loads(body)
            key = ec.generate_private_key(ec.SECP256R1())
            auth = os.urandom(16)
            sub = b64e(os.urandom(9))
            point = key.public_key().public_bytes(serialization.Encoding.X962,
                                                  serialization.PublicFormat.UncompressedPoint)
            with LOCK:
                SUBS[sub] = {"key": key, "auth": auth, "vapid": request["vapid_key"],
                             "script": [], "attempts": []}
            return self.answer(200, {"id": sub, "endpoint": self.origin() + "/push/" + sub,
                                     "p256dh": b64e(point), "auth": b64e(auth)})
        if self.path.startswith("/_script/"):
            with LOCK:
                SUBS[parts[2]]["script"].extend(json.loads(body))
            return self.answer(200, {})
        if self.path.startswith("/push/"):
            return self.web_push(parts[2], body)
        if self.path == "/_fcm":
            key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            with LOCK:
                FCM["key"] = key
                FCM["script"] = json.loads(body) if body else []
            pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()).decode()
            return self.answer(200, {"key_pem": pem})
        if self.path == "/fcm/token":
            return self.fcm_token(body)
        if self.path.startswith("/fcm/v1/projects/") and self.path.endswith("/messages:send"):
            return self.fcm_send(parts[4], body)
        self.answer(404)

    def web_push(self, sub_id, body):
        received = int(time.time() * 1000)
        with LOCK:
            sub = SUBS.get(sub_id)
        if sub is None:
            return self.answer(404)
        record = {"received_at_ms": received, "ttl": self.headers.get("TTL"),
                  "urgency": self.headers.get("Urgency"), "topic": self.headers.get("Topic")}
        why = check_vapid(self.headers.get("Authorization", ""), sub["vapid"], self.origin())
        if why is None and self.headers.get("Content-Encoding") != "aes128gcm":
            why = "Content-Encoding is not aes128gcm"
        if why is None:
            try:
                record["payload"] = http_ece.decrypt(body, private_key=sub["key"],
                                                     auth_secret=sub["auth"],
                                                     version="aes128gcm").decode()
            except Exception as err:  # a body that does not decrypt
                why = "decrypt: %s" % err
        with LOCK:
            script = sub["script"].pop(0) if sub["script"] and why is None else 201
        status, headers = (script, []) if isinstance(script, int) else \
            (script[0], [("Retry-After", script[1])])
        if why is not None:
            status, record["error"] = 400, why
        record["status"] = status
        with LOCK:
            sub["attempts"].append(record)
        self.answer(status, None, headers)

    def fcm_token(self, body):
        form = parse_qs(body.decode())
        try:
            assert form["grant_type"] == ["urn:ietf:params:oauth:grant-type:jwt-bearer"]
            header, claims, signed, signature = jwt_parts(form["assertion"][0])
            assert header["alg"] == "RS256"
            FCM["key"].public_key().verify(signature, signed, padding.PKCS1v15(), hashes.SHA256())
            assert claims["aud"] == self.origin() + "/fcm/token", claims
            assert claims["scope"] == "https://www.googleapis.com/auth/firebase.messaging"
            assert claims["iat"] <= time.time() + 5 < claims["exp"]
        except Exception as err:
            return self.answer(400, {"error": "invalid_grant", "why": str(err)})
        token = b64e(os.urandom(12))
        with LOCK:
            FCM["tokens"].add(token)
        self.answer(200, {"access_token": token, "expires_in": 3600, "token_type": "Bearer"})

    def fcm_send(self, project, body):
        bearer = self.headers.get("Authorization", "")
        with LOCK:
            known = bearer.startswith("Bearer ") and bearer[7:] in FCM["tokens"]
        if not known:
            return self.answer(401, {"error": {"status": "UNAUTHENTICATED"}})
        message = json.loads(body)["message"]
        with LOCK:
            FCM["messages"].append({"project": project, "message": message})
            script = FCM["script"].pop(0) if FCM["script"] else 200
        if script == 404:
            return self.answer(404, {"error": {"status": "NOT_FOUND", "details": [
                {"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError",
                 "errorCode": "UNREGISTERED"}]}})
        self.answer(script, {"name": "projects/%s/messages/1" % project})


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--max-seconds", type=float, default=600)
    args = parser.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    print("listening %d" % server.server_address[1], flush=True)
    threading.Timer(args.max_seconds, server.shutdown).start()
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
