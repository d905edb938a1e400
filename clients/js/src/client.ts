// The client: one WebSocket to a node at a time, replaced whenever it is lost. It owns what must
// outlive a connection (the rooms joined, the sends not yet acknowledged) and, on every new
// connection, joins each room again from the last message the application received and resends
// the unacknowledged messages with their idempotency keys. Reconnecting follows the close code
// (close-codes.ts) with backoff (backoff.ts); a silent connection is found by the watchdog. A send
// the node answers `timeout` (its engine did not answer: the message may be stored) or
// `not_replicated` (stored, but not yet on enough Redis replicas) is sent again with the same key
// after a backoff of its own, a bounded number of times, before it rejects.

import { Backoff, DEFAULT_BACKOFF, type BackoffOptions } from "./backoff.js";
import { CLIENT_GAVE_UP, closeVerdict, RECONNECT_CODES, SERVER_RESTARTING } from "./close-codes.js";
import { Emitter } from "./emitter.js";
import {
  AuthError,
  ClosedError,
  DisconnectedError,
  NotJoinedError,
  NotReplicatedError,
  PendingLimitError,
  RookeryError,
  serverError,
  type ServerError,
  TimeoutError,
} from "./errors.js";
import { type ClientFrame, type HistoryQuery, type Limits, type Message, parseFrame, type ServerFrame } from "./frames.js";
import { Watchdog } from "./heartbeat.js";
import { type Ack, newKey, Outbox, type PendingSend } from "./outbox.js";
import { Requests } from "./requests.js";
import { Room, type RoomHost } from "./room.js";
import {
  abandon,
  connectUrl,
  OPEN,
  refusedStatus,
  type WebSocketConstructor,
  type WebSocketLike,
  webSocketImplementation,
} from "./socket.js";

export type State = "connecting" | "open" | "reconnecting" | "closed";

export interface RookeryOptions {
  /** Anonymous mode: the user name (`?user=`). */
  user?: string;
  /** JWT mode: the token, or a function called before every (re)connect for a fresh one. */
  token?: string | (() => string | Promise<string>);
  /** The WebSocket implementation (default: the global one; on Node.js 20, pass `ws`). */
  WebSocket?: WebSocketConstructor;
  /** Reconnect delays: exponential backoff with full jitter (default 1 s doubling to 30 s). */
  reconnect?: Partial<BackoffOptions>;
  /** Close codes after which the client reconnects (default 1001, 1006, 1012, 1013). */
  reconnectCodes?: readonly number[];
  /** Sends waiting for an ack at most; `send` rejects with `PendingLimitError` beyond (default 100). */
  maxPendingSends?: number;
  /** How long a connection may take to open and say `welcome` (default 10 s). */
  connectTimeoutMs?: number;
  /** Liveness interval; default: the node's `heartbeat_ms` (silent for two intervals = dead). */
  heartbeatMs?: number;
  /** How many times a `send` answered `timeout` or `not_replicated` is sent again (same key; the
   * two answers count together) before it rejects with the last answer's error, `TimeoutError` or
   * `NotReplicatedError` (default 5; 0 rejects at the first such answer). */
  timeoutRetries?: number;
  /** Delays before those retries: full jitter under a ceiling of 250 ms doubling to 4 s by default. */
  timeoutBackoff?: Partial<BackoffOptions>;
}

/** The session of the current connection, from its `welcome`. */
export interface Welcome {
  session: string;
  user: string;
  node: string;
  heartbeatMs: number;
  limits: Limits;
}

export type ClientEvents = {
  state: [State];
  /** Each connection's `welcome`: which user, on which node. */
  welcome: [Welcome];
  /** Failures no request is waiting for: an `error` frame without a known ref, a failed token
   * provider, a room that could not be re-joined, and the error the client closed with. */
  error: [RookeryError];
};

interface JoinWaiter {
  resolve(room: Room): void;
  reject(error: RookeryError): void;
}

/** Retry a re-join the node could not serve right now (`unavailable`, `internal`) after this. */
const REJOIN_RETRY_MS = 1000;

/** A `send` answered `timeout` or `not_replicated` is retried this many times by default, then
 * rejected. One budget for both: each means the same key makes a retry safe and may settle it,
 * and a send answered one, then the other, is still bounded by it. */
export const DEFAULT_TIMEOUT_RETRIES = 5;

/** The default delays before those retries: short, since the node is up and only its engine (or a
 * Redis replica) was slow. */
export const DEFAULT_TIMEOUT_BACKOFF: BackoffOptions = { initialDelayMs: 250, maxDelayMs: 4000, factor: 2 };

export class Rookery extends Emitter<ClientEvents> {
  state: State = "connecting";
  /** The current connection's session (`undefined` while not connected). */
  welcome: Welcome | undefined;
  /** Why the client closed, when it did not close on `close()`. */
  closeError: ClosedError | undefined;

  private readonly urls: string[];
  private readonly WebSocket: WebSocketConstructor;
  private readonly backoff: Backoff;
  private readonly outbox: Outbox;
  private readonly requests = new Requests();
  private readonly rooms = new Map<string, Room>();
  private readonly joinWaiters = new Map<string, JoinWaiter[]>();
  // Join frames on this connection: ref -> the room and the `since` it was sent with.
  private readonly joins = new Map<string, { room: string; since: string | undefined }>();
  private socket: WebSocketLike | null = null;
  private watchdog: Watchdog | null = null;
  private connectTimer: ReturnType<typeof setTimeout> | undefined;
  private reconnectTimer: ReturnType<typeof setTimeout> | undefined;
  private urlIndex = 0;
  private attempts = 0;
  private refused: number | undefined;
  private lastRef = 0;
  private stopped = false;
  // What rooms may ask of the client, kept off the client's public surface.
  private readonly host: RoomHost = {
    sendMessage: (room, body) => this.sendMessage(room, body),
    history: (room, query) => this.history(room, query),
    leave: (room) => this.leave(room),
  };

  /** Connects to `url` (or, for failover, to each of several nodes' URLs in turn). */
  constructor(
    url: string | readonly string[],
    private readonly options: RookeryOptions = {},
  ) {
    super();
    this.urls = typeof url === "string" ? [url] : [...url];
    if (this.urls.length === 0) throw new TypeError("at least one URL is needed");
    this.WebSocket = webSocketImplementation(options.WebSocket);
    this.backoff = new Backoff({ ...DEFAULT_BACKOFF, ...options.reconnect });
    this.outbox = new Outbox(options.maxPendingSends ?? 100);
    // Connect after the caller has had the chance to add listeners.
    queueMicrotask(() => void this.connect());
  }

  /** Joins a room; resolves once the node answers `joined`. The room is re-joined after every
   * reconnect until `leave()` or `close()`. */
  join(name: string): Promise<Room> {
    if (this.stopped) return Promise.reject(this.closedError());
    const existing = this.rooms.get(name);
    if (existing?._everJoined()) return Promise.resolve(existing);
    return new Promise<Room>((resolve, reject) => {
      const waiters = this.joinWaiters.get(name) ?? [];
      waiters.push({ resolve, reject });
      this.joinWaiters.set(name, waiters);
      if (existing) return;
      const room = new Room(name, this.host);
      this.rooms.set(name, room);
      if (this.isOpen()) this.sendJoin(room);
    });
  }

  /** Closes the connection for good: no reconnect; what still waits is rejected with `ClosedError`. */
  close(): void {
    if (this.stopped) return;
    const socket = this.socket;
    this.stop(new ClosedError("the client was closed"), true);
    if (socket) {
      socket.onclose = socket.onmessage = socket.onerror = null;
      try {
        socket.close(1000, "client closed");
      } catch {
        // Not open yet: nothing to say goodbye to.
      }
    }
  }

  // --- what a Room asks of its client ---

  private sendMessage(room: string, body: string): Promise<Ack> {
    if (this.stopped) return Promise.reject(this.closedError());
    const joined = this.rooms.get(room);
    if (!joined) return Promise.reject(new NotJoinedError("not_joined", `not in room ${room}`));
    const added = this.outbox.add(room, body, newKey());
    if (added instanceof PendingLimitError) return Promise.reject(added);
    // Not joined on this connection yet: the send goes out right after the (re-)join.
    if (joined.joined && this.isOpen()) this.transmitSend(added.entry);
    return added.acked;
  }

  private history(room: string, query: HistoryQuery): Promise<Message[]> {
    if (!this.isOpen()) return Promise.reject(this.stopped ? this.closedError() : new DisconnectedError());
    const ref = this.ref();
    const answer = this.requests.expect<Message[]>(ref);
    this.transmit({ type: "history", ref, room, ...query });
    return answer;
  }

  private async leave(name: string): Promise<void> {
    const room = this.rooms.get(name);
    if (!room) return;
    this.rooms.delete(name);
    room._disconnected();
    const left = new NotJoinedError("not_joined", `left room ${name}`);
    this.outbox.rejectRoom(name, left);
    for (const waiter of this.joinWaiters.get(name) ?? []) waiter.reject(left);
    this.joinWaiters.delete(name);
    if (!this.isOpen()) return; // the next connection simply does not join it
    const ref = this.ref();
    const answer = this.requests.expect(ref);
    this.transmit({ type: "leave", ref, room: name });
    try {
      await answer;
    } catch (error) {
      // Lost connection or never joined on this one: either way the session is not in the room.
      if (!(error instanceof DisconnectedError || error instanceof NotJoinedError)) throw error;
    }
  }

  // --- connection lifecycle ---

  private async connect(): Promise<void> {
    if (this.stopped) return;
    const attempt = ++this.attempts;
    this.setState(attempt === 1 ? "connecting" : "reconnecting", attempt === 1);
    let token: string | undefined;
    try {
      const source = this.options.token;
      token = typeof source === "function" ? await source() : source;
    } catch (error) {
      if (this.stopped || attempt !== this.attempts) return;
      this.emit("error", new RookeryError("token", `the token provider failed: ${String(error)}`));
      this.retry();
      return;
    }
    if (this.stopped || attempt !== this.attempts) return;
    let socket: WebSocketLike;
    try {
      socket = new this.WebSocket(connectUrl(this.urls[this.urlIndex], this.options.user, token));
    } catch (error) {
      this.stop(new ClosedError(`cannot connect: ${String(error)}`));
      return;
    }
    this.socket = socket;
    this.refused = undefined;
    this.connectTimer = setTimeout(() => this.lost(socket), this.options.connectTimeoutMs ?? 10_000);
    socket.onmessage = (event) => this.receive(socket, event.data);
    socket.onerror = (event) => {
      if (socket === this.socket) this.refused = refusedStatus(event) ?? this.refused;
    };
    socket.onclose = (event) => this.closed(socket, event.code, event.reason);
  }

  /** The client gave up on `socket` (no welcome in time, or silent too long). */
  private lost(socket: WebSocketLike): void {
    if (socket !== this.socket) return;
    abandon(socket, CLIENT_GAVE_UP, "connection lost");
    this.dropped();
    this.retry();
  }

  private closed(socket: WebSocketLike, code: number, reason: string): void {
    if (socket !== this.socket) return;
    this.dropped();
    const status = this.refused;
    if (status === 401 || status === 403) {
      this.stop(new AuthError(`the node refused the credentials (HTTP ${status})`));
    } else if (status === 400 || status === 404) {
      this.stop(new ClosedError(`the node refused the connection (HTTP ${status})`));
    } else {
      const verdict = closeVerdict(
        code,
        reason,
        this.options.reconnectCodes ?? RECONNECT_CODES,
        typeof this.options.token === "function",
      );
      if (verdict === "reconnect") this.retry(code);
      else if (verdict === "auth") this.stop(new AuthError(`closed by the node: ${code} ${reason}`, code, reason));
      else this.stop(new ClosedError(`closed by the node: ${code} ${reason}`, code, reason));
    }
  }

  /** Forgets everything tied to the connection that just ended. */
  private dropped(): void {
    this.socket = null;
    this.welcome = undefined;
    clearTimeout(this.connectTimer);
    this.watchdog?.stop();
    this.watchdog = null;
    this.joins.clear();
    this.outbox.disconnected();
    for (const room of this.rooms.values()) room._disconnected();
    this.requests.rejectAll(new DisconnectedError("the connection was lost"));
  }

  private retry(code?: number): void {
    if (this.stopped) return;
    // The next attempt goes to the next node: the one that failed may be gone for a while.
    this.urlIndex = (this.urlIndex + 1) % this.urls.length;
    // A node that is stopping asked its clients to move now; everyone else backs off.
    const delay =
      code === SERVER_RESTARTING
        ? Math.round(Math.random() * (this.options.reconnect?.initialDelayMs ?? DEFAULT_BACKOFF.initialDelayMs))
        : this.backoff.next();
    this.setState("reconnecting");
    this.reconnectTimer = setTimeout(() => void this.connect(), delay);
  }

  /** Closes for good with `error`, rejecting whatever still waits; an error the application did
   * not cause by `close()` is kept in `closeError` and reported. */
  private stop(error: ClosedError, byUser = false): void {
    if (this.stopped) return;
    this.stopped = true;
    clearTimeout(this.reconnectTimer);
    if (this.socket) this.dropped();
    if (!byUser) this.closeError = error;
    this.outbox.rejectAll(error);
    this.requests.rejectAll(error);
    for (const waiters of this.joinWaiters.values()) for (const waiter of waiters) waiter.reject(error);
    this.joinWaiters.clear();
    this.setState("closed");
    if (!byUser) this.emit("error", error);
  }

  // --- frames ---

  private receive(socket: WebSocketLike, data: unknown): void {
    if (socket !== this.socket) return;
    this.watchdog?.heard();
    const frame = parseFrame(String(data));
    if (frame) this.handle(socket, frame);
  }

  private handle(socket: WebSocketLike, frame: ServerFrame): void {
    switch (frame.type) {
      case "welcome": {
        clearTimeout(this.connectTimer);
        this.backoff.reset();
        const heartbeatMs = this.options.heartbeatMs ?? frame.heartbeat_ms;
        this.welcome = { session: frame.session, user: frame.user, node: frame.node, heartbeatMs, limits: frame.limits };
        this.watchdog = new Watchdog(
          heartbeatMs,
          () => this.transmit({ type: "ping" }),
          () => this.lost(socket),
        );
        this.setState("open");
        this.emit("welcome", this.welcome);
        for (const room of this.rooms.values()) this.sendJoin(room);
        break;
      }
      case "joined":
        this.joined(frame);
        break;
      case "message":
        this.rooms.get(frame.room)?._message(frame);
        break;
      case "presence":
        this.rooms.get(frame.room)?._presence(frame);
        break;
      case "gap":
        this.rooms.get(frame.room)?._gap(frame);
        break;
      case "ack":
        if (frame.ref !== undefined) this.outbox.ack(frame.ref, frame.id);
        break;
      case "history":
        if (frame.ref !== undefined) this.requests.resolve(frame.ref, frame.messages);
        break;
      case "left":
        if (frame.ref !== undefined) this.requests.resolve(frame.ref, frame);
        break;
      case "error":
        this.failed(frame.ref, serverError(frame.code, frame.message));
        break;
      default:
        // `pong` (the watchdog has already heard it) and frame types of later protocol versions.
        break;
    }
  }

  private joined(frame: Extract<ServerFrame, { type: "joined" }>): void {
    const sent = frame.ref !== undefined ? this.joins.get(frame.ref) : undefined;
    if (frame.ref !== undefined) this.joins.delete(frame.ref);
    const room = this.rooms.get(frame.room);
    if (!room) return; // left while the join was on its way
    room._joined(frame, sent?.since);
    for (const waiter of this.joinWaiters.get(frame.room) ?? []) waiter.resolve(room);
    this.joinWaiters.delete(frame.room);
    // What was sent but not acknowledged before the reconnect goes out again, in order.
    for (const entry of this.outbox.forRoom(frame.room)) {
      if (entry.ref === undefined) this.transmitSend(entry);
    }
  }

  /** An `error` frame: it rejects the request it answers, if any is waiting (a send answered
   * `timeout` or `not_replicated` is retried first, see `retryUnsettled`). */
  private failed(ref: string | undefined, error: ServerError): void {
    if (ref !== undefined) {
      const unsettled = error instanceof TimeoutError || error instanceof NotReplicatedError;
      if (unsettled && this.retryUnsettled(ref)) return;
      if (this.outbox.fail(ref, error) || this.requests.reject(ref, error)) return;
      const join = this.joins.get(ref);
      if (join) {
        this.joins.delete(ref);
        this.joinFailed(join.room, error);
        return;
      }
    }
    this.emit("error", error);
  }

  /** The send that went out with `ref` was answered `timeout` (the node may have stored it) or
   * `not_replicated` (it did, but a Redis failover may lose it). Unless it has used up its
   * retries, it stays pending and goes out again with the same key after a jittered delay (the
   * node answers a key it has stored with that message's ack, once its replicas have it), or at
   * its room's re-join if the connection drops meanwhile. False when `ref` is no such send. */
  private retryUnsettled(ref: string): boolean {
    const entry = this.outbox.byReference(ref);
    if (!entry || entry.retries >= (this.options.timeoutRetries ?? DEFAULT_TIMEOUT_RETRIES)) return false;
    entry.retries += 1;
    this.outbox.detach(entry);
    entry.backoff ??= new Backoff({ ...DEFAULT_TIMEOUT_BACKOFF, ...this.options.timeoutBackoff });
    entry.retryTimer = setTimeout(() => {
      entry.retryTimer = undefined;
      if (!this.outbox.isPending(entry) || entry.ref !== undefined) return;
      // Not joined on this connection: the room's re-join sends it.
      if (this.rooms.get(entry.room)?.joined && this.isOpen()) this.transmitSend(entry);
    }, entry.backoff.next());
    return true;
  }

  private joinFailed(name: string, error: ServerError): void {
    const room = this.rooms.get(name);
    if (!room) return;
    const waiters = this.joinWaiters.get(name);
    if (!waiters && (error.code === "unavailable" || error.code === "internal")) {
      // A re-join the node could not serve now: keep the room and ask again.
      const socket = this.socket;
      setTimeout(() => {
        if (socket === this.socket && this.rooms.get(name) === room && !room.joined) this.sendJoin(room);
      }, REJOIN_RETRY_MS);
      return;
    }
    this.rooms.delete(name);
    this.joinWaiters.delete(name);
    this.outbox.rejectRoom(name, error);
    if (waiters) for (const waiter of waiters) waiter.reject(error);
    else this.emit("error", error);
  }

  private sendJoin(room: Room): void {
    const ref = this.ref();
    const since = room._since();
    this.joins.set(ref, { room: room.name, since });
    this.transmit(since === undefined ? { type: "join", ref, room: room.name } : { type: "join", ref, room: room.name, since });
  }

  private transmitSend(entry: PendingSend): void {
    const ref = this.ref();
    this.outbox.sent(entry, ref);
    this.transmit({ type: "send", ref, room: entry.room, body: entry.body, key: entry.key });
  }

  private transmit(frame: ClientFrame): void {
    if (this.socket?.readyState === OPEN) this.socket.send(JSON.stringify(frame));
  }

  private isOpen(): boolean {
    return this.welcome !== undefined && this.socket?.readyState === OPEN;
  }

  private ref(): string {
    this.lastRef += 1;
    return `r${this.lastRef}`;
  }

  private closedError(): ClosedError {
    return this.closeError ?? new ClosedError("the client was closed");
  }

  private setState(state: State, always = false): void {
    if (state === this.state && !always) return;
    this.state = state;
    this.emit("state", state);
  }
}
