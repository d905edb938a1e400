// rookery-client: a client for the rookery chat server (docs/protocol.md) that reconnects,
// re-joins every room from the last message received, and resends what was not acknowledged.
export { Rookery, DEFAULT_TIMEOUT_BACKOFF, DEFAULT_TIMEOUT_RETRIES, } from "./client.js";
export { Room } from "./room.js";
export { Backoff, DEFAULT_BACKOFF } from "./backoff.js";
export { RECONNECT_CODES } from "./close-codes.js";
export { compareIds } from "./message-id.js";
export { RookeryError, ServerError, BadRequestError, NotJoinedError, ForbiddenError, TooLargeError, RateLimitedError, RoomLimitError, UnavailableError, TimeoutError, NotReplicatedError, InternalError, PendingLimitError, DisconnectedError, ClosedError, AuthError, } from "./errors.js";
