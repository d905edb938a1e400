// rookery-client: a client for the rookery chat server (docs/protocol.md) that reconnects,
// re-joins every room from the last message received, and resends what was not acknowledged.

export {
  Rookery,
  type RookeryOptions,
  type State,
  type Welcome,
  type ClientEvents,
  DEFAULT_TIMEOUT_BACKOFF,
  DEFAULT_TIMEOUT_RETRIES,
} from "./client.js";
export { Room, type RoomEvents, type Gap, type JoinInfo, type PresenceEvent } from "./room.js";
export type { Message, Member, Limits, HistoryQuery } from "./frames.js";
export type { Ack } from "./outbox.js";
export type { BackoffOptions } from "./backoff.js";
export { Backoff, DEFAULT_BACKOFF } from "./backoff.js";
export { RECONNECT_CODES } from "./close-codes.js";
export { compareIds } from "./message-id.js";
export type { WebSocketConstructor, WebSocketLike } from "./socket.js";
export {
  RookeryError,
  ServerError,
  type ServerErrorCode,
  BadRequestError,
  NotJoinedError,
  ForbiddenError,
  TooLargeError,
  RateLimitedError,
  RoomLimitError,
  UnavailableError,
  TimeoutError,
  NotReplicatedError,
  InternalError,
  PendingLimitError,
  DisconnectedError,
  ClosedError,
  AuthError,
} from "./errors.js";
