#!/usr/bin/env python3
"""What Redis spends per request at a paced rate: a bare PING, the publish function
(`rookery_v1_publish`, rooms served by the publishing node only), and the four commands the
function makes for such a room sent without Lua (XADD, XLEN, INCR, HKEYS: what the function
costs beyond its commands), one at a time or several in one write. It starts a redis-server of its own on a free port, loads migrations/, and reads
Redis's CPU from /proc. Standard library only.

    scripts/bench-redis-requests.py                       # 5,000 requests/s over 4 connections
    scripts/bench-redis-requests.py --rate 2000 --batches 1,2

The publish's arguments follow the v1 function (see migrations/0001_rookery_v1.lua)."""

import argparse
import os
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ROOMS = 1000
SHARDS = 1


def encode(*args):
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg if isinstance(arg, bytes) else str(arg).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


def reply_end(buf, at):
    """Where the RESP reply starting at `at` ends, or None while it is incomplete."""
    line_end = buf.find(b"\r\n", at)
    if line_end < 0:
        return None
    kind, head = buf[at:at + 1], buf[at + 1:line_end]
    after = line_end + 2
    if kind in (b"+", b"-", b":"):
        return after
    if kind == b"$":
        size = int(head)
        return after if size < 0 else (after + size + 2 if len(buf) >= after + size + 2 else None)
    if kind == b"*":
        for _ in range(max(int(head), 0)):
            after = reply_end(buf, after)
            if after is None:
                return None
        return after
    raise ValueError(f"unexpected reply {buf[at:at + 40]!r}")


class Connection:
    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def call(self, *commands):
        """Writes the commands at once and reads as many replies."""
        self.sock.sendall(b"".join(commands))
        replies, at = [], 0
        while len(replies) < len(commands):
            end = reply_end(self.buf, at) if at < len(self.buf) else None
            if end is None:
                self.buf += self.sock.recv(65536)
                continue
            replies.append(self.buf[at:end])
            at = end
        self.buf = self.buf[at:]
        for reply in replies:
            if reply.startswith(b"-"):
                raise RuntimeError(reply.decode(errors="replace").strip())
        return replies


def room_keys(n):
    room = f"room{n % ROOMS}"
    tag = "{s0}"
    return room, tag, [f"rookery:{tag}:{kind}:{room}" for kind in ("history", "trimmed", "nodes", "events")]


def plain(n):
    """The commands `publish` makes for a room only the publishing node serves, without Lua."""
    _, _, keys = room_keys(n)
    history, nodes, events = keys[0], keys[2], keys[3]
    return [
        encode("XADD", history, "*", "user", "alice", "body", "hello there"),
        encode("XLEN", history),
        encode("INCR", events),
        encode("HKEYS", nodes),
    ]


def publish(n):
    room, tag, keys = room_keys(n)
    # room, user, body, history_len, retention_ms, trace, inbox prefix, trim step, publishing node
    args = [room, "alice", "hello there", 1000, 600000, "", f"rookery:{tag}:inbox:", 64, "node-a"]
    return encode("FCALL", "rookery_v1_publish", len(keys), *keys, *args)


def cpu_seconds(pid):
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run(port, pid, mode, batch, rate, connections, seconds):
    sent, failures = [0] * connections, []

    def sender(k):
        try:
            send(k)
        except (OSError, RuntimeError) as failure:
            failures.append(failure)

    def send(k):
        conn, per_second, n = Connection(port), rate / connections, 0
        start = time.monotonic()
        while time.monotonic() - start < seconds:
            if mode == "ping":
                conn.call(*[encode("PING")] * batch)
            elif mode == "plain":
                conn.call(*[command for j in range(batch) for command in plain((n + j) * connections + k)])
            else:
                conn.call(*[publish((n + j) * connections + k) for j in range(batch)])
            n += batch
            wait = start + n / per_second - time.monotonic()
            if wait > 0:
                time.sleep(wait)
        sent[k] = n

    before = cpu_seconds(pid)
    threads = [threading.Thread(target=sender, args=(k,)) for k in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise SystemExit(f"{mode}: {failures[0]}")
    used = cpu_seconds(pid) - before
    total = sum(sent)
    print(f"| {mode} | {batch} | {total} | {used * 1000:.0f} ms | {used * 1e6 / total:.1f} us |", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=int, default=5000, help="requests per second in all")
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--batches", default="1,2,4,8", help="requests per write, comma-separated")
    options = parser.parse_args()
    batches = [int(b) for b in options.batches.split(",")]
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with tempfile.TemporaryDirectory() as workdir:
        server = subprocess.Popen(
            ["redis-server", "--port", str(port), "--save", "", "--appendonly", "no", "--dir", workdir],
            stdout=subprocess.DEVNULL,
        )
        try:
            for _ in range(100):
                try:
                    setup = Connection(port)
                    break
                except OSError:
                    time.sleep(0.05)
            else:
                raise SystemExit("redis-server did not start")
            for migration in sorted((ROOT / "migrations").glob("*.lua")):
                setup.call(encode("FUNCTION", "LOAD", "REPLACE", migration.read_bytes()))
            # Every room is served by the publishing node only, as with pairs on one node.
            for n in range(ROOMS):
                setup.call(encode("HSET", f"rookery:{{s0}}:nodes:room{n}", "node-a", 1))
            print(f"{options.rate} requests/s over {options.connections} connections, {options.seconds:g} s each")
            print("| request | per write | requests | Redis CPU | per request (a plain one: its four commands) |")
            print("|---|---|---|---|---|")
            for mode in ("ping", "publish", "plain"):
                for batch in batches:
                    run(port, server.pid, mode, batch, options.rate, options.connections, options.seconds)
        finally:
            server.terminate()
            server.wait()


if __name__ == "__main__":
    main()
