#!/usr/bin/env python3
"""A stand-in OTLP/HTTP collector for benchmarks: accepts every POST, counts requests and bytes.

Usage: scripts/otlp-sink.py [PORT]   (default 4318); prints the totals every 10 s and on exit
(SIGTERM or Ctrl-C).
Point nodes at it with OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:PORT.
"""
import http.server
import signal
import sys
import threading
import time

totals = {"requests": 0, "bytes": 0}
lock = threading.Lock()


class Sink(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        length = int(self.headers.get("Content-Length", 0))
        self.rfile.read(length)
        with lock:
            totals["requests"] += 1
            totals["bytes"] += length
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def stop(*_):
    raise KeyboardInterrupt


def report():
    while True:
        time.sleep(10)
        with lock:
            print(f"otlp-sink: {totals['requests']} requests, {totals['bytes']} bytes", flush=True)


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 4318
    # SIGTERM stops it like Ctrl-C. Scripts must use it: a shell starts background jobs with
    # SIGINT ignored, and Python then leaves it ignored.
    signal.signal(signal.SIGTERM, stop)
    threading.Thread(target=report, daemon=True).start()
    try:
        http.server.ThreadingHTTPServer(("127.0.0.1", port), Sink).serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        print(f"otlp-sink: {totals['requests']} requests, {totals['bytes']} bytes", flush=True)
