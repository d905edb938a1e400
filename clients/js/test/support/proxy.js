// A TCP proxy between a client and a node, to break the link in ways a real network does:
// drop every connection and refuse new ones for a while (a partition), or swallow what the node
// sends back (an ack lost on the way) while the client's frames still get through.

import { createServer, connect } from "node:net";

export class Proxy {
  constructor(server, port) {
    this.server = server;
    this.port = port;
    this.pairs = new Set();
    this.refusing = false;
    this.swallowing = false;
  }

  /** Listens on a free port and forwards to `targetPort` on loopback. */
  static async start(targetPort) {
    let proxy;
    const server = createServer((client) => proxy.accept(client, targetPort));
    await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
    proxy = new Proxy(server, server.address().port);
    return proxy;
  }

  get ws() {
    return `ws://127.0.0.1:${this.port}/ws`;
  }

  accept(client, targetPort) {
    if (this.refusing) {
      client.destroy();
      return;
    }
    const upstream = connect(targetPort, "127.0.0.1");
    const pair = { client, upstream };
    this.pairs.add(pair);
    client.on("data", (data) => upstream.write(data));
    upstream.on("data", (data) => {
      if (!this.swallowing) client.write(data);
    });
    const end = () => {
      this.pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on("close", end).on("error", end);
    upstream.on("close", end).on("error", end);
  }

  /** Cuts every connection (the client sees 1006) and refuses new ones until `heal()`. */
  partition() {
    this.refusing = true;
    this.cut();
  }

  heal() {
    this.refusing = false;
    this.swallowing = false;
  }

  /** From now on, nothing the node sends reaches the client. */
  swallowReplies() {
    this.swallowing = true;
  }

  /** Cuts every open connection. */
  cut() {
    for (const { client, upstream } of this.pairs) {
      client.destroy();
      upstream.destroy();
    }
    this.pairs.clear();
  }

  close() {
    this.cut();
    return new Promise((resolve) => this.server.close(resolve));
  }
}
