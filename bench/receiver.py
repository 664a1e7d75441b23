"""The benchmark's webhook receiver: a threaded HTTP/1.1 server (keep-alive) in its own process, so its
timestamps are not delayed by the load generator's threads.

``python bench/receiver.py [PORT | FIRST-LAST]`` binds the port, or the first free one of the range (in
random order), prints ``PORT <n>`` and serves until killed. Every POST is answered 200 and
recorded as ``[webhook-id, record id, arrival time]`` (``time.monotonic()``, the same clock in every
process on Linux). Control endpoints: ``GET /_count``, ``GET /_hits``, ``GET /_bodies`` (the requests
kept while ``/_keep_bodies`` is on, for the bare-loop comparison), ``POST /_reset``,
``POST /_keep_bodies``, ``POST /_delay`` (body: milliseconds every webhook waits before its answer, to keep
deliveries in flight; ``/_reset`` sets it back to 0).
"""

from __future__ import annotations

import json
import random
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOCK = threading.Lock()
HITS: list[list] = []
BODIES: list[dict] = []
KEEP = {"bodies": False, "delay": 0.0}
REPLY = b'{"ok":true}'


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes: without TCP_NODELAY, Nagle + the client's delayed ACK would
    # add 40 ms to every keep-alive response.
    disable_nagle_algorithm = True

    def log_message(self, *args) -> None:  # quiet
        pass

    def _reply(self, code: int, body: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        arrived = time.monotonic()
        if self.path == "/_reset":
            with LOCK:
                HITS.clear()
                BODIES.clear()
                KEEP["bodies"] = False
                KEEP["delay"] = 0.0
            return self._reply(200, REPLY)
        if self.path == "/_delay":
            KEEP["delay"] = float(body or 0) / 1000
            return self._reply(200, REPLY)
        if self.path == "/_keep_bodies":
            KEEP["bodies"] = True
            return self._reply(200, REPLY)
        if KEEP["delay"]:
            time.sleep(KEEP["delay"])
        try:
            record_id = json.loads(body)["record"]["id"]
        except (ValueError, KeyError, TypeError):
            record_id = None
        with LOCK:
            HITS.append([self.headers.get("webhook-id"), record_id, arrived])
            if KEEP["bodies"]:
                headers = {k: v for k, v in self.headers.items() if k.lower().startswith("webhook-")}
                headers["Content-Type"] = "application/json"
                BODIES.append({"headers": headers, "body": body.decode()})
        self._reply(200, REPLY)

    def do_GET(self) -> None:
        with LOCK:
            if self.path == "/_count":
                payload = {"count": len(HITS)}
            elif self.path == "/_hits":
                payload = {"hits": list(HITS)}
            elif self.path == "/_bodies":
                payload = {"bodies": list(BODIES)}
            else:
                payload = {"ok": True}
        self._reply(200, json.dumps(payload).encode())


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:
        # A client killed mid-request (the take-over phase kill -9s workers) is expected: no traceback.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


def bind(spec: str) -> ThreadingHTTPServer:
    first, _, last = spec.partition("-")
    ports = list(range(int(first), int(last or first) + 1))
    random.shuffle(ports)
    for port in ports:
        try:
            return Server(("127.0.0.1", port), Handler)
        except OSError:
            continue
    raise SystemExit(f"no free port in {spec}")


def main() -> None:
    server = bind(sys.argv[1] if len(sys.argv) > 1 else "0")
    print(f"PORT {server.server_address[1]}", flush=True)
    server.serve_forever(poll_interval=0.1)


if __name__ == "__main__":
    main()
