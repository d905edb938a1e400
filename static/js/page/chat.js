// The chat page served at `/` (static/index.html), built on rookery-client: the client does the
// reconnecting, resuming and resending; this file only shows it. Each room has a view: its
// messages in id order (history is loaded on scroll-up), notes where something happened (a gap,
// a join), and the user's own sends still waiting for their ack.
import { Rookery } from "../src/index.js";
const PAGE = 50;
const $ = (id) => document.getElementById(id);
const views = new Map();
let client = null;
let me = null;
let active = null;
// --- connection state ---
const STATE_TEXT = {
    connecting: "connecting…",
    open: "online",
    reconnecting: "reconnecting…",
    closed: "offline",
};
function showState(state) {
    const status = $("status");
    status.dataset.state = state;
    const where = client?.welcome ? ` as ${client.welcome.user} on ${client.welcome.node}` : "";
    const why = state === "closed" && client?.closeError ? `: ${client.closeError.message}` : "";
    status.textContent = STATE_TEXT[state] + (state === "open" ? where : why);
}
function connect(user) {
    const url = new URL("/ws", location.href);
    url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
    const rookery = new Rookery(url.toString(), { user });
    rookery.on("state", showState);
    rookery.on("welcome", (welcome) => {
        me = welcome.user;
        showState("open");
    });
    rookery.on("error", (error) => active && note(active, `error: ${error.message}`, true));
    return rookery;
}
// --- rooms ---
async function open(name) {
    if (!client)
        return;
    active = name;
    if (views.has(name))
        return render();
    let room;
    try {
        room = await client.join(name);
    }
    catch (error) {
        active = null;
        $("status").textContent = `cannot join ${name}: ${error.message}`;
        return;
    }
    const view = { room, entries: [], exhausted: room.lastId === null, loading: false };
    views.set(name, view);
    room.on("message", (message) => insert(view, message));
    room.on("presence", (p) => note(name, `${p.user} ${p.event === "join" ? "joined" : "left"}`, false));
    room.on("members", () => name === active && renderMembers());
    room.on("gap", (gap) => note(name, gapText(gap), true));
    room.on("joined", (info) => info.resumed && note(name, "reconnected", false));
    render();
    if (!view.exhausted)
        void loadOlder(view);
}
function gapText(gap) {
    return gap.cause === "trimmed"
        ? "⚠ some messages were missed while offline and are no longer stored"
        : "⚠ some messages may be missing here";
}
/** Adds a message at its place in id order (a replay or a history page may overlap). */
function insert(view, message) {
    const entries = view.entries;
    let at = entries.length;
    // Own sends waiting for their ack stay last.
    while (at > 0 && entries[at - 1].kind === "pending")
        at--;
    for (let i = at - 1; i >= 0; i--) {
        const entry = entries[i];
        if (entry.kind !== "message")
            continue;
        if (entry.message.id === message.id)
            return;
        if (compare(entry.message.id, message.id) < 0)
            break;
        at = i;
    }
    entries.splice(at, 0, { kind: "message", message });
    if (view.room.name === active)
        renderLog(at === entries.length - 1);
}
function compare(a, b) {
    const [am, as] = a.split("-").map(Number);
    const [bm, bs] = b.split("-").map(Number);
    return am - bm || as - bs;
}
function note(name, text, warn) {
    const view = views.get(name);
    if (!view)
        return;
    let at = view.entries.length;
    while (at > 0 && view.entries[at - 1].kind === "pending")
        at--;
    view.entries.splice(at, 0, { kind: "note", text, warn });
    if (name === active)
        renderLog(true);
}
/** Loads the page of history before the oldest message shown (on join and on scroll-up). */
async function loadOlder(view) {
    if (view.loading || view.exhausted)
        return;
    view.loading = true;
    const oldest = view.entries.find((e) => e.kind === "message");
    const log = $("log");
    const fromBottom = log.scrollHeight - log.scrollTop;
    try {
        const page = await view.room.history(oldest ? { before: oldest.message.id, limit: PAGE } : { limit: PAGE });
        if (page.length < PAGE)
            view.exhausted = true;
        for (const message of page)
            insert(view, message);
    }
    catch {
        // Offline: the next scroll-up asks again.
    }
    finally {
        view.loading = false;
    }
    if (view.room.name === active) {
        renderLog(false);
        log.scrollTop = log.scrollHeight - fromBottom; // keep what the user was reading in place
    }
}
function send(text) {
    const view = active ? views.get(active) : undefined;
    if (!view)
        return;
    const entry = { kind: "pending", body: text };
    view.entries.push(entry);
    renderLog(true);
    view.room.send(text).then(() => {
        view.entries.splice(view.entries.indexOf(entry), 1);
        if (view.room.name === active)
            renderLog(true);
    }, (error) => {
        entry.error = error.message;
        if (view.room.name === active)
            renderLog(true);
    });
}
// --- rendering ---
function render() {
    $("rooms").replaceChildren(...[...views.keys()].map((name) => {
        const button = document.createElement("button");
        button.textContent = `#${name}`;
        button.className = name === active ? "active" : "";
        button.onclick = () => void open(name);
        return button;
    }));
    for (const element of $("composer").elements)
        element.disabled = !active;
    renderLog(true);
    renderMembers();
}
const TIME = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });
function renderLog(stickToBottom) {
    const log = $("log");
    const atBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 40;
    const view = active ? views.get(active) : undefined;
    log.replaceChildren(...(view ? view.entries.map(renderEntry) : []));
    if (stickToBottom && atBottom)
        log.scrollTop = log.scrollHeight;
}
function renderEntry(entry) {
    const div = document.createElement("div");
    if (entry.kind === "note") {
        div.className = entry.warn ? "note warn" : "note";
        div.textContent = entry.text;
        return div;
    }
    const time = document.createElement("time");
    const who = document.createElement("span");
    who.className = "who";
    const body = document.createElement("span");
    body.className = "body";
    if (entry.kind === "pending") {
        div.className = entry.error ? "msg own failed" : "msg own pending";
        time.textContent = entry.error ? "failed" : "sending…";
        who.textContent = me ?? "";
        body.textContent = entry.error ? `${entry.body} (${entry.error})` : entry.body;
    }
    else {
        const { message } = entry;
        const at = new Date(message.ts);
        div.className = message.user === me ? "msg own" : "msg";
        div.dataset.id = message.id;
        time.dateTime = at.toISOString();
        time.title = at.toLocaleString();
        time.textContent = TIME.format(at);
        who.textContent = message.user;
        body.textContent = message.body;
    }
    div.append(time, who, body);
    return div;
}
function renderMembers() {
    const room = active ? views.get(active)?.room : undefined;
    const members = room ? [...room.members].sort(([a], [b]) => a.localeCompare(b)) : [];
    $("member-count").textContent = room ? `${room.memberCount} here` : "";
    $("member-list").replaceChildren(...members.map(([user, sessions]) => {
        const li = document.createElement("li");
        li.textContent = sessions > 1 ? `${user} (${sessions} tabs)` : user;
        if (user === me)
            li.className = "me";
        return li;
    }));
}
// --- wiring ---
$("login").onsubmit = (event) => {
    event.preventDefault();
    const name = $("room").value.trim();
    if (!client) {
        const user = $("user");
        client = connect(user.value.trim());
        user.disabled = true;
    }
    void open(name);
};
$("composer").onsubmit = (event) => {
    event.preventDefault();
    const input = $("text");
    if (!input.value)
        return;
    send(input.value);
    input.value = "";
};
$("log").addEventListener("scroll", () => {
    const view = active ? views.get(active) : undefined;
    if (view && $("log").scrollTop < 40)
        void loadOlder(view);
});
