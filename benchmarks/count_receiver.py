"""A loopback log intake for the throughput benchmarks, in its own process: it accepts Splunk HEC
(``/services/collector/...``) and Datadog (``/api/v2/logs``) requests, decompresses each body and
counts its events, nothing else, so the exporter is what the benchmark measures.

    python benchmarks/count_receiver.py PORT      # GET /count answers the events so far

An event is counted by its ``"event_id":"`` key: both sinks put one in every event, and inside a
JSON string the quotes would be escaped, so a log line cannot fake one.
"""

from __future__ import annotations

import gzip
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MARK = b'"event_id":"'
COUNT = [0]
LOCK = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # The headers and the body are two writes: with Nagle's algorithm the body waits for the
    # client's delayed ACK (40 ms on Linux) and every request took ~50 ms (17k lines/s at
    # max_in_flight 1). Real intakes do not stall so; nor does this receiver any more.
    disable_nagle_algorithm = True

    def log_message(self, *args: object) -> None:
        pass

    def reply(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        with LOCK:
            self.reply(200, str(COUNT[0]).encode())

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if (self.headers.get("Content-Encoding") or "").lower() == "gzip":
            body = gzip.decompress(body)
        with LOCK:
            COUNT[0] += body.count(MARK)
        if self.path.startswith("/services/collector"):
            self.reply(200, b'{"text":"Success","code":0}')
        else:
            self.reply(202, b"{}")


if __name__ == "__main__":
    server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler)
    server.daemon_threads = True
    server.serve_forever()
