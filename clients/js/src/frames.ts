// The wire protocol's frames (docs/protocol.md), as the client sends and receives them. Only the
// fields the client reads are typed; the server may add more (unknown fields are ignored).

/** A chat message, as delivered live, replayed on a re-join, or listed by `history`. */
export interface Message {
  /** `<ms>-<seq>`; compare with `compareIds`, not as text. */
  id: string;
  room: string;
  user: string;
  body: string;
  /** Milliseconds since the Unix epoch (the id's `ms`). */
  ts: number;
}

export interface Member {
  user: string;
  sessions: number;
}

/** The limits a node announces in `welcome`. */
export interface Limits {
  max_frame_bytes: number;
  max_body_bytes: number;
  rate_per_sec: number;
  burst: number;
  max_rooms: number;
}

export interface WelcomeFrame {
  type: "welcome";
  session: string;
  user: string;
  node: string;
  heartbeat_ms: number;
  limits: Limits;
}

export interface JoinedFrame {
  type: "joined";
  ref?: string;
  room: string;
  members: Member[];
  member_count: number;
  presence: boolean;
  last_id: string | null;
  recovered?: boolean;
}

export interface MessageFrame extends Message {
  type: "message";
}

export interface PresenceFrame {
  type: "presence";
  room: string;
  event: "join" | "leave";
  user: string;
}

export interface GapFrame {
  type: "gap";
  room: string;
  after: string;
}

export interface AckFrame {
  type: "ack";
  ref?: string;
  room: string;
  id: string;
}

export interface HistoryFrame {
  type: "history";
  ref?: string;
  room: string;
  messages: Message[];
}

export interface ErrorFrame {
  type: "error";
  ref?: string;
  code: string;
  message: string;
}

export type ServerFrame =
  | WelcomeFrame
  | JoinedFrame
  | MessageFrame
  | PresenceFrame
  | GapFrame
  | AckFrame
  | HistoryFrame
  | ErrorFrame
  | { type: "left"; ref?: string; room: string }
  | { type: "pong"; ref?: string };

/** What `history` asks for: ids strictly between `after` and `before`, at most `limit` (1..500). */
export interface HistoryQuery {
  before?: string;
  after?: string;
  limit?: number;
}

export type ClientFrame =
  | { type: "join"; ref: string; room: string; since?: string }
  | { type: "leave"; ref: string; room: string }
  // `key` makes a resend after a reconnect idempotent: the server stores one message per key.
  | { type: "send"; ref: string; room: string; body: string; key: string }
  | ({ type: "history"; ref: string; room: string } & HistoryQuery)
  | { type: "ping"; ref?: string };

/** Parses one text frame; anything that is not a JSON object with a string `type` is `null`. */
export function parseFrame(text: string): ServerFrame | null {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return null;
  }
  if (typeof value !== "object" || value === null || typeof (value as { type?: unknown }).type !== "string") {
    return null;
  }
  return value as ServerFrame;
}
