//! `rookery chat`: a terminal client, handy for trying a node and for scripts.
//!
//! `rookery chat ws://host:8080/ws --user bob --room lobby` joins, prints messages and presence
//! as they come (`[room] user: body`; status lines start with `* `, errors with `! `), and sends
//! each line typed on stdin to the current room (the last one joined). Commands: `/join R`,
//! `/leave R`, `/history`, `/quit`. When the connection drops it reconnects with backoff and
//! rejoins every room with `since`, so nothing is missed. Every message goes with an idempotency
//! key: one not acknowledged when the connection dropped is sent again after the rejoin, and one
//! answered `timeout` (it may have been stored) or `not_replicated` (stored, not yet on enough
//! Redis replicas) is sent again a few times, all with the same key, so each is stored once. At the end of stdin it waits for its messages to be acknowledged, then
//! exits.

use std::{collections::HashMap, process::ExitCode, time::Duration};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader, Lines, Stdin};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async, tungstenite::Message};

type Socket = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

const FIRST_RETRY: Duration = Duration::from_millis(500);
const LAST_RETRY: Duration = Duration::from_secs(10);
/// How many times a message answered `timeout` or `not_replicated` is sent again before the
/// client gives up on it.
const RETRIES: u32 = 5;

/// What `rookery chat` was asked for.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct ChatArgs {
    /// The node's WebSocket URL, e.g. ws://localhost:8080/ws
    #[arg(value_name = "URL", value_parser = websocket_url)]
    pub url: String,
    /// The user to connect as (anonymous mode; without it the node picks a name like anon-1a2b3c4d)
    #[arg(long, value_name = "NAME")]
    pub user: Option<String>,
    /// A room to join; repeat it for more (what you type goes to the last one joined)
    #[arg(long = "room", value_name = "ROOM", default_value = "lobby")]
    pub rooms: Vec<String>,
    /// A JWT, for a node with ROOKERY_AUTH=jwt
    #[arg(long, value_name = "JWT")]
    pub token: Option<String>,
}

fn websocket_url(url: &str) -> Result<String, String> {
    if url.starts_with("ws://") || url.starts_with("wss://") {
        Ok(url.to_owned())
    } else {
        Err("expected a ws:// or wss:// URL".to_owned())
    }
}

/// Runs the client until `/quit` or the end of stdin.
pub fn run(args: ChatArgs) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("rookery chat: {error}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(Chat::new(args).run())
}

/// Why a connection ended.
enum End {
    /// `/quit`, or stdin ended and everything sent was acknowledged.
    Quit,
    Dropped(String),
}

/// A message waiting for its ack.
struct Unacked {
    /// The `send` frame, key included, exactly as it goes out again.
    frame: Value,
    /// How many times it was answered `timeout` or `not_replicated`.
    retries: u32,
}

struct Chat {
    args: ChatArgs,
    rooms: Vec<String>,
    /// The newest message id seen per room: where a rejoin resumes.
    last_ids: HashMap<String, String>,
    /// Messages sent and not yet answered by an ack or a final error, by their ref (`s<n>`).
    unacked: HashMap<String, Unacked>,
    /// Joins sent on this connection and not yet answered: the end of input waits for them too,
    /// so piped input is never sent before its room was joined.
    joining: usize,
    sent: u64,
    stdin_done: bool,
}

impl Chat {
    fn new(args: ChatArgs) -> Self {
        let rooms = args.rooms.clone();
        Self { args, rooms, last_ids: HashMap::new(), unacked: HashMap::new(), joining: 0, sent: 0, stdin_done: false }
    }

    fn current_room(&self) -> Option<&String> {
        self.rooms.last()
    }

    async fn run(mut self) -> ExitCode {
        let mut stdin = BufReader::new(tokio::io::stdin()).lines();
        let mut pause = FIRST_RETRY;
        loop {
            match self.connect().await {
                Ok(socket) => {
                    pause = FIRST_RETRY;
                    match self.session(socket, &mut stdin).await {
                        End::Quit => return ExitCode::SUCCESS,
                        End::Dropped(why) => println!("* disconnected ({why}); reconnecting"),
                    }
                }
                Err(why) => println!("* cannot connect ({why}); retrying in {} ms", pause.as_millis()),
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(LAST_RETRY);
        }
    }

    async fn connect(&self) -> Result<Socket, String> {
        let mut query = Vec::new();
        if let Some(user) = &self.args.user {
            query.push(format!("user={user}"));
        }
        if let Some(token) = &self.args.token {
            query.push(format!("token={token}"));
        }
        let separator = if self.args.url.contains('?') { '&' } else { '?' };
        let url = if query.is_empty() {
            self.args.url.clone()
        } else {
            format!("{}{separator}{}", self.args.url, query.join("&"))
        };
        let (socket, _) = connect_async(url).await.map_err(|e| e.to_string())?;
        Ok(socket)
    }

    async fn session(&mut self, mut socket: Socket, stdin: &mut Lines<BufReader<Stdin>>) -> End {
        // Joins of a dropped connection will not be answered.
        self.joining = 0;
        for room in self.rooms.clone() {
            if let Err(error) = self.join(&mut socket, &room).await {
                return End::Dropped(error);
            }
        }
        // Sends of a dropped connection may or may not have been stored: the same keys make the
        // node store each once.
        let resend: Vec<Value> = self.unacked.values().map(|unacked| unacked.frame.clone()).collect();
        for frame in resend {
            if let Err(error) = Self::send(&mut socket, frame).await {
                return End::Dropped(error);
            }
        }
        loop {
            if self.stdin_done && self.unacked.is_empty() && self.joining == 0 {
                let _ = socket.close(None).await;
                return End::Quit;
            }
            tokio::select! {
                frame = socket.next() => match frame {
                    Some(Ok(Message::Text(text))) => {
                        if let Some(again) = self.show(&text)
                            && let Err(error) = Self::send(&mut socket, again).await
                        {
                            return End::Dropped(error);
                        }
                    }
                    Some(Ok(Message::Close(reason))) => return End::Dropped(reason.map_or("closed".into(), |r| format!("{} {}", r.code, r.reason))),
                    Some(Ok(_)) => {}
                    Some(Err(error)) => return End::Dropped(error.to_string()),
                    None => return End::Dropped("closed".into()),
                },
                line = stdin.next_line(), if !self.stdin_done => match line {
                    Ok(Some(line)) => match self.command(&mut socket, line.trim()).await {
                        Ok(true) => {}
                        Ok(false) => {
                            let _ = socket.close(None).await;
                            return End::Quit;
                        }
                        Err(error) => return End::Dropped(error),
                    },
                    Ok(None) | Err(_) => self.stdin_done = true,
                },
            }
        }
    }

    async fn send(socket: &mut Socket, frame: Value) -> Result<(), String> {
        socket.send(Message::text(frame.to_string())).await.map_err(|e| e.to_string())
    }

    async fn join(&mut self, socket: &mut Socket, room: &str) -> Result<(), String> {
        self.joining += 1;
        let mut frame = json!({"type":"join","room":room,"ref":"join"});
        if let Some(since) = self.last_ids.get(room) {
            frame["since"] = json!(since);
        }
        Self::send(socket, frame).await
    }

    /// Runs one line of input; `Ok(false)` for `/quit`.
    async fn command(&mut self, socket: &mut Socket, line: &str) -> Result<bool, String> {
        let (command, argument) = line.split_once(' ').map_or((line, ""), |(c, a)| (c, a.trim()));
        match command {
            "" => {}
            "/quit" => return Ok(false),
            "/join" if !argument.is_empty() => {
                self.rooms.retain(|room| room != argument);
                self.rooms.push(argument.to_owned());
                self.join(socket, argument).await?;
            }
            "/leave" if !argument.is_empty() => {
                self.rooms.retain(|room| room != argument);
                Self::send(socket, json!({"type":"leave","room":argument})).await?;
            }
            "/history" => match self.current_room() {
                Some(room) => Self::send(socket, json!({"type":"history","room":room})).await?,
                None => println!("! join a room first"),
            },
            command if command.starts_with('/') => println!("! commands: /join ROOM, /leave ROOM, /history, /quit"),
            _ => match self.current_room().cloned() {
                Some(room) => {
                    self.sent += 1;
                    let reference = format!("s{}", self.sent);
                    let key = uuid::Uuid::new_v4().simple().to_string();
                    let frame = json!({"type":"send","room":room,"body":line,"ref":reference,"key":key});
                    self.unacked.insert(reference, Unacked { frame: frame.clone(), retries: 0 });
                    Self::send(socket, frame).await?;
                }
                None => println!("! join a room first"),
            },
        }
        Ok(true)
    }

    /// Prints a server frame; returns a `send` to make again (it was answered `timeout` or
    /// `not_replicated`).
    fn show(&mut self, text: &str) -> Option<Value> {
        let Ok(frame) = serde_json::from_str::<Value>(text) else { return None };
        let field = |name: &str| frame[name].as_str().unwrap_or_default().to_owned();
        match frame["type"].as_str().unwrap_or_default() {
            "welcome" => println!("* connected to {} as {}", field("node"), field("user")),
            "joined" => {
                self.joining = self.joining.saturating_sub(1);
                let members: Vec<&str> =
                    frame["members"].as_array().into_iter().flatten().filter_map(|m| m["user"].as_str()).collect();
                if frame["presence"] == Value::Bool(false) {
                    println!("* joined {} ({} users)", field("room"), frame["member_count"]);
                } else {
                    println!("* joined {} ({})", field("room"), members.join(", "));
                }
            }
            "message" => {
                self.last_ids.insert(field("room"), field("id"));
                println!("[{}] {}: {}", field("room"), field("user"), field("body"));
            }
            "history" => {
                let messages = frame["messages"].as_array().map_or(0, Vec::len);
                println!("* history of {}: {messages} messages", field("room"));
                for message in frame["messages"].as_array().into_iter().flatten() {
                    let get = |name: &str| message[name].as_str().unwrap_or_default();
                    println!("[{}] {}: {} (history)", field("room"), get("user"), get("body"));
                }
            }
            "presence" => println!(
                "* {} {} {}",
                field("user"),
                if field("event") == "join" { "joined" } else { "left" },
                field("room")
            ),
            "left" => println!("* left {}", field("room")),
            "gap" => println!("* messages of {} after {} were lost", field("room"), field("after")),
            "ack" => {
                self.unacked.remove(&field("ref"));
            }
            "error" => {
                if field("ref") == "join" {
                    self.joining = self.joining.saturating_sub(1);
                }
                if let Some(unacked) = self.unacked.get_mut(&field("ref")) {
                    let why = match field("code").as_str() {
                        "timeout" => Some("no answer in time"),
                        "not_replicated" => Some("not on enough replicas in time"),
                        _ => None,
                    };
                    if let Some(why) = why
                        && unacked.retries < RETRIES
                    {
                        unacked.retries += 1;
                        println!("* {why}; sending again with the same key");
                        return Some(unacked.frame.clone());
                    }
                    self.unacked.remove(&field("ref"));
                }
                println!("! {}: {}", field("code"), field("message"));
            }
            _ => {}
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use crate::cli::{Cli, Command};

    use super::*;

    fn args(line: &str) -> Result<ChatArgs, clap::Error> {
        let cli = Cli::try_parse_from(["rookery", "chat"].into_iter().chain(line.split_whitespace()))?;
        match cli.command {
            Some(Command::Chat(args)) => Ok(args),
            other => panic!("not chat: {other:?}"),
        }
    }

    #[test]
    fn parses_url_user_and_rooms() {
        let parsed = args("ws://h:8080/ws --user bob --room a --room b").unwrap();
        assert_eq!((parsed.url.as_str(), parsed.user.as_deref()), ("ws://h:8080/ws", Some("bob")));
        assert_eq!(parsed.rooms, ["a", "b"]);
        assert_eq!(args("ws://h/ws").unwrap().rooms, ["lobby"]);
        assert!(args("--user bob").unwrap_err().to_string().contains("<URL>"));
        assert!(args("http://h/ws").unwrap_err().to_string().contains("ws:// or wss://"));
        assert_eq!(args("ws://h/ws --what").unwrap_err().exit_code(), 2);
    }
}
