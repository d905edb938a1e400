// Typed errors. Every `error` code of docs/protocol.md has its own class (so an application can
// `instanceof` what it handles, e.g. retry `RateLimitedError` later), and the failures the client
// itself decides (too many pending sends, a connection lost or closed, refused credentials) have
// theirs. All carry a string `code`.

/** The base of every error the client rejects with or reports. */
export class RookeryError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = new.target.name;
  }
}

/** The error codes of the protocol's `error` frame. */
export type ServerErrorCode =
  | "bad_request"
  | "not_joined"
  | "forbidden"
  | "too_large"
  | "rate_limited"
  | "room_limit"
  | "unavailable"
  | "timeout"
  | "not_replicated"
  | "internal";

/** An `error` frame the node answered a request with; the connection stays open. */
export class ServerError extends RookeryError {
  constructor(code: string, message: string) {
    super(code, message);
  }
}

/** Malformed frame, bad room name or id, a field missing or mistyped. */
export class BadRequestError extends ServerError {}
/** `send` to, or `leave` of, a room the session is not in (also raised locally after `leave`). */
export class NotJoinedError extends ServerError {}
/** The token's `rooms` claim does not grant the room. */
export class ForbiddenError extends ServerError {}
/** The body is over the node's `max_body_bytes`. */
export class TooLargeError extends ServerError {}
/** The session's send rate is exhausted; the message was not published. */
export class RateLimitedError extends ServerError {}
/** The session is already in the node's `max_rooms` rooms. */
export class RoomLimitError extends ServerError {}
/** The node cannot store or read right now; the message was not published. */
export class UnavailableError extends ServerError {}
/** The node asked its engine and got no answer in time: the message may have been stored. A
 * `send` answered so is retried with the same key (stored once) before it rejects with this. */
export class TimeoutError extends ServerError {}
/** The message WAS stored (and may be delivered), but fewer Redis replicas than the node asks for
 * (`ROOKERY_REDIS_MIN_REPLICAS`) confirmed it in time: a Redis failover may lose it. A `send`
 * answered so is retried with the same key (which stores nothing new and is acked with the first
 * id once the replicas have it) before it rejects with this. Sending the body again under a new
 * key would store it twice. */
export class NotReplicatedError extends ServerError {}
/** An unexpected failure on the node. */
export class InternalError extends ServerError {}

const SERVER_ERRORS: Record<ServerErrorCode, new (code: string, message: string) => ServerError> = {
  bad_request: BadRequestError,
  not_joined: NotJoinedError,
  forbidden: ForbiddenError,
  too_large: TooLargeError,
  rate_limited: RateLimitedError,
  room_limit: RoomLimitError,
  unavailable: UnavailableError,
  timeout: TimeoutError,
  not_replicated: NotReplicatedError,
  internal: InternalError,
};

/** The typed error for an `error` frame; a code this client does not know stays a `ServerError`. */
export function serverError(code: string, message: string): ServerError {
  const Class = (SERVER_ERRORS as Record<string, typeof ServerError | undefined>)[code] ?? ServerError;
  return new Class(code, message);
}

/** `send` was called while `maxPendingSends` sends were still waiting for their `ack`. */
export class PendingLimitError extends RookeryError {
  constructor(readonly limit: number) {
    super("pending_limit", `${limit} sends are already waiting for an ack`);
  }
}

/** A request that does not survive a reconnect (`history`, `leave`) met a lost connection. */
export class DisconnectedError extends RookeryError {
  constructor(message = "not connected") {
    super("disconnected", message);
  }
}

/** The client is closed for good: `close()` was called, or the server closed it with a code
 * that forbids reconnecting (`closeCode`, `reason` say which). */
export class ClosedError extends RookeryError {
  constructor(
    message: string,
    readonly closeCode?: number,
    readonly reason?: string,
  ) {
    super("closed", message);
  }
}

/** The node refused the credentials (HTTP 401/403 at the handshake, where the WebSocket
 * implementation reports it) or closed the session on policy (1008, e.g. an expired token). */
export class AuthError extends ClosedError {
  constructor(message: string, closeCode?: number, reason?: string) {
    super(message, closeCode, reason);
    (this as { code: string }).code = "auth";
  }
}
