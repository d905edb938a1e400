// One room the application joined. It outlives connections: the client re-joins it after every
// reconnect with `since` = `lastId`, and the room hands the application each message once, in id
// order, whatever the node replays. It keeps the member list current from `joined` and
// `presence`, and turns both kinds of loss the protocol reports (`gap`, `recovered: false`) into
// one `gap` event.

import { Emitter } from "./emitter.js";
import type { GapFrame, HistoryQuery, JoinedFrame, Message, PresenceFrame } from "./frames.js";
import { isAfter, ORIGIN_ID } from "./message-id.js";
import type { Ack } from "./outbox.js";

/** What a room needs of its client. */
export interface RoomHost {
  sendMessage(room: string, body: string): Promise<Ack>;
  history(room: string, query: HistoryQuery): Promise<Message[]>;
  leave(room: string): Promise<void>;
}

export interface PresenceEvent {
  room: string;
  event: "join" | "leave";
  user: string;
}

/** Messages of the room may be missing between `after` and what comes next. */
export interface Gap {
  room: string;
  /** The last id known to be delivered before the loss (`null`: none). */
  after: string | null;
  /** `server`: the node sent `gap` (it fell behind); `trimmed`: a resume found the history trimmed. */
  cause: "server" | "trimmed";
}

/** Every `joined` of the room: the first join and each re-join after a reconnect. */
export interface JoinInfo {
  room: string;
  /** `true` on the first join; on a re-join, whether everything missed was replayed. */
  recovered: boolean;
  resumed: boolean;
  lastId: string | null;
}

export type RoomEvents = {
  message: [Message];
  presence: [PresenceEvent];
  /** The member list changed (a presence event, or a re-join refreshed it). */
  members: [ReadonlyMap<string, number>];
  gap: [Gap];
  joined: [JoinInfo];
};

export class Room extends Emitter<RoomEvents> {
  /** Users in the room and their session counts (empty when the room is too large for presence). */
  readonly members = new Map<string, number>();
  /** How many users are in the room, as of the last `joined` (presence events keep it current). */
  memberCount = 0;
  /** `false` when the room is too large to list members and announce joins and leaves. */
  presence = true;
  /** The newest message id handed to the application (or the room's newest at the first join). */
  lastId: string | null = null;
  /** Whether the room is joined on the current connection. */
  joined = false;
  private joinedOnce = false;

  constructor(
    readonly name: string,
    private readonly host: RoomHost,
  ) {
    super();
  }

  /** Sends a message; resolves with its id once stored, across reconnects if need be. */
  send(body: string): Promise<Ack> {
    return this.host.sendMessage(this.name, body);
  }

  /** A page of the room's stored messages, in id order (by default the newest 50). */
  history(query: HistoryQuery = {}): Promise<Message[]> {
    return this.host.history(this.name, query);
  }

  /** Leaves the room: it is no longer re-joined, and its unacknowledged sends are rejected. */
  leave(): Promise<void> {
    return this.host.leave(this.name);
  }

  /** Whether the node has answered a join of this room once. @internal */
  _everJoined(): boolean {
    return this.joinedOnce;
  }

  /** The `since` of the next join: nothing on the first, afterwards the last id delivered.
   * @internal */
  _since(): string | undefined {
    return this.joinedOnce ? (this.lastId ?? ORIGIN_ID) : undefined;
  }

  /** @internal */
  _joined(frame: JoinedFrame, since: string | undefined): void {
    const resumed = this.joinedOnce;
    this.joined = true;
    if (!this.joinedOnce) {
      this.joinedOnce = true;
      // Resume from the room's newest message at the first join (or from the origin when it
      // was empty): a reconnect then replays everything that came after, even if the
      // application saw no message in between.
      if (this.lastId === null || (frame.last_id !== null && isAfter(frame.last_id, this.lastId))) {
        this.lastId = frame.last_id ?? ORIGIN_ID;
      }
    }
    this.presence = frame.presence;
    this.memberCount = frame.member_count;
    this.members.clear();
    for (const member of frame.members) this.members.set(member.user, member.sessions);
    const recovered = frame.recovered !== false;
    if (!recovered) this.emit("gap", { room: this.name, after: since ?? null, cause: "trimmed" });
    this.emit("joined", { room: this.name, recovered, resumed, lastId: this.lastId });
    this.emit("members", this.members);
  }

  /** @internal */
  _message(message: Message): void {
    // A replay after a reconnect may overlap what was delivered live; the id order tells.
    if (!isAfter(message.id, this.lastId)) return;
    this.lastId = message.id;
    this.emit("message", message);
  }

  /** @internal */
  _presence(frame: PresenceFrame): void {
    if (frame.event === "join") {
      if (!this.members.has(frame.user)) this.memberCount += 1;
      this.members.set(frame.user, this.members.get(frame.user) ?? 1);
    } else if (this.members.delete(frame.user)) {
      this.memberCount -= 1;
    }
    this.emit("presence", { room: this.name, event: frame.event, user: frame.user });
    this.emit("members", this.members);
  }

  /** @internal */
  _gap(frame: GapFrame): void {
    this.emit("gap", { room: this.name, after: frame.after, cause: "server" });
  }

  /** @internal */
  _disconnected(): void {
    this.joined = false;
  }
}
