//! `rookery chat`, the terminal client, driven through its stdin and stdout like a person (or
//! a script) would, against real nodes.

use std::{
    io::{BufRead, Write},
    process::{Child, ChildStdin, Command, Stdio},
    sync::mpsc::{Receiver, channel},
    time::Duration,
};

use crate::{helpers::Endpoint, node_process::NodeProcess, redis_server::RedisServer};

/// A running `rookery chat` with its output lines arriving on a channel.
struct Terminal {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
}

impl Terminal {
    fn start(url: &str, user: &str, room: &str) -> Terminal {
        let mut child = Command::new(env!("CARGO_BIN_EXE_rookery"))
            .args(["chat", url, "--user", user, "--room", room])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("run rookery chat");
        let stdout = child.stdout.take().expect("stdout");
        let (sender, lines) = channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = sender.send(line);
            }
        });
        Terminal { stdin: child.stdin.take(), child, lines }
    }

    fn type_line(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        writeln!(stdin, "{line}").and_then(|()| stdin.flush()).expect("type a line");
    }

    /// Waits for an output line containing `text`; returns it.
    fn expect(&self, text: &str) -> String {
        loop {
            match self.lines.recv_timeout(Duration::from_secs(10)) {
                Ok(line) if line.contains(text) => return line,
                Ok(_) => continue,
                Err(_) => panic!("no output line containing {text:?}"),
            }
        }
    }

    fn exit_code(&mut self) -> Option<i32> {
        for _ in 0..200 {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        None
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[actix_web::test]
async fn the_terminal_client_chats_runs_commands_and_quits() {
    let node = NodeProcess::start(&[]).await;
    let url = node.ws_url("");
    let mut bob = Terminal::start(&url, "bob", "lobby");
    bob.expect("* joined lobby");
    let mut alice = node.client("alice").await;
    alice.join("lobby").await;
    bob.expect("* alice joined lobby");

    alice.say("lobby", "hi bob").await;
    bob.expect("[lobby] alice: hi bob");
    bob.type_line("hello alice");
    let (message, _) = alice.recv_until("message").await;
    let message = if message["user"] == "alice" { alice.recv_until("message").await.0 } else { message };
    assert_eq!((message["user"].as_str(), message["body"].as_str()), (Some("bob"), Some("hello alice")));

    bob.type_line("/history");
    bob.expect("* history of lobby: 2 messages");
    bob.expect("[lobby] alice: hi bob (history)");
    bob.type_line("/join dev");
    bob.expect("* joined dev");
    bob.type_line("/leave dev");
    bob.expect("* left dev");
    bob.type_line("/quit");
    assert_eq!(bob.exit_code(), Some(0));
}

#[actix_web::test]
async fn at_the_end_of_its_input_the_client_waits_for_acks_then_exits() {
    let node = NodeProcess::start(&[]).await;
    let mut carol = Terminal::start(&node.ws_url(""), "carol", "lobby");
    carol.expect("* joined lobby");
    carol.type_line("one");
    carol.type_line("two");
    carol.stdin = None; // end of input
    assert_eq!(carol.exit_code(), Some(0));
    let mut dave = node.client("dave").await;
    let history = dave.request(serde_json::json!({"type":"history","room":"lobby"})).await;
    let bodies: Vec<&str> =
        history["messages"].as_array().into_iter().flatten().filter_map(|m| m["body"].as_str()).collect();
    assert_eq!(bodies, ["one", "two"], "both lines were stored before it exited");
}

#[actix_web::test]
async fn the_client_reconnects_and_resumes_what_it_missed() {
    let redis = RedisServer::start();
    let url = redis.url();
    let mut a = NodeProcess::start(&[("ROOKERY_REDIS_URL", url.as_str()), ("ROOKERY_NODE_ID", "node-a")]).await;
    let b = NodeProcess::start(&[("ROOKERY_REDIS_URL", url.as_str()), ("ROOKERY_NODE_ID", "node-b")]).await;
    let bob = Terminal::start(&a.ws_url(""), "bob", "lobby");
    bob.expect("* joined lobby");
    let mut alice = b.client("alice").await;
    alice.join("lobby").await;
    alice.say("lobby", "before").await;
    bob.expect("[lobby] alice: before");

    a.kill();
    bob.expect("* disconnected");
    alice.say("lobby", "while you were away").await;
    a.restart().await;
    bob.expect("* connected to node-a");
    bob.expect("[lobby] alice: while you were away");
}

#[actix_web::test]
async fn a_line_answered_timeout_is_sent_again_with_its_key_and_stored_once() {
    let redis = RedisServer::start();
    let url = redis.url();
    let node = NodeProcess::start(&[("ROOKERY_REDIS_URL", url.as_str()), ("ROOKERY_NODE_ID", "node-a")]).await;
    let mut erin = Terminal::start(&node.ws_url(""), "erin", "lobby");
    erin.expect("* joined lobby");
    redis.pause();
    erin.type_line("through the freeze");
    erin.expect("* no answer in time; sending again with the same key");
    redis.resume();
    erin.expect("[lobby] erin: through the freeze");
    erin.stdin = None; // end of input: exits once every line is acknowledged
    assert_eq!(erin.exit_code(), Some(0));
    let mut frank = node.client("frank").await;
    let history = frank.request(serde_json::json!({"type":"history","room":"lobby"})).await;
    let bodies: Vec<&str> =
        history["messages"].as_array().into_iter().flatten().filter_map(|m| m["body"].as_str()).collect();
    assert_eq!(bodies, ["through the freeze"], "stored once, though sent more than once");
}

#[actix_web::test]
async fn a_line_not_replicated_in_time_is_sent_again_with_its_key_and_stored_once() {
    let redis = RedisServer::start();
    let url = redis.url();
    let vars = [("ROOKERY_REDIS_URL", url.as_str()), ("ROOKERY_REDIS_MIN_REPLICAS", "1")];
    let node = NodeProcess::start(&vars).await;
    let mut erin = Terminal::start(&node.ws_url(""), "erin", "lobby");
    erin.expect("* joined lobby");
    erin.type_line("no replica here");
    erin.expect("* not on enough replicas in time; sending again with the same key");
    erin.expect("! not_replicated:");
    let mut frank = node.client("frank").await;
    let history = frank.request(serde_json::json!({"type":"history","room":"lobby"})).await;
    let bodies: Vec<&str> =
        history["messages"].as_array().into_iter().flatten().filter_map(|m| m["body"].as_str()).collect();
    assert_eq!(bodies, ["no replica here"], "stored once, though sent six times");
}
