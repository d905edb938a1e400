//! The Redis engine's migrations and message store, against a real redis-server.

use rookery::{
    domain::{MessageId, RoomName, UserName},
    engine::{
        EngineError, NewMessage,
        redis::{Keys, MessageStore, MigrateError, RedisConnection, SCHEMA_VERSION, migrate},
    },
    protocol::HistoryQuery,
};

use crate::redis_server::RedisServer;

async fn query<T: redis::FromRedisValue>(conn: &RedisConnection, cmd: &mut redis::Cmd) -> T {
    cmd.query_async(&mut conn.clone()).await.expect("query")
}

#[tokio::test]
async fn migrations_load_the_functions_and_record_the_version() {
    let redis = RedisServer::start();
    let pool = redis.connection().await;
    let mut conn = pool.clone();
    assert_eq!(migrate(&mut conn).await.expect("migrate"), 0, "an empty Redis had no schema");
    assert_eq!(migrate(&mut conn).await.expect("again"), SCHEMA_VERSION, "migrating twice is harmless");
    let version: String = query(&pool, redis::cmd("GET").arg(Keys::schema())).await;
    assert_eq!(version, SCHEMA_VERSION.to_string());
    let libraries: redis::Value =
        query(&pool, redis::cmd("FUNCTION").arg("LIST").arg("LIBRARYNAME").arg("rookery_v1")).await;
    assert!(format!("{libraries:?}").contains("rookery_v1_publish"), "{libraries:?}");
}

#[tokio::test]
async fn a_newer_schema_stops_the_node() {
    let redis = RedisServer::start();
    let pool = redis.connection().await;
    let _: () = query(&pool, redis::cmd("SET").arg(Keys::schema()).arg(SCHEMA_VERSION + 1)).await;
    let mut conn = pool.clone();
    let error = migrate(&mut conn).await.expect_err("must refuse");
    assert!(matches!(error, MigrateError::NewerSchema { found, .. } if found == SCHEMA_VERSION + 1));
    assert!(error.to_string().contains("upgrade the node"), "{error}");
}

#[tokio::test]
async fn nodes_migrating_at_once_all_succeed() {
    let redis = RedisServer::start();
    let mut pools = Vec::new();
    for _ in 0..4 {
        pools.push(redis.connection().await);
    }
    let runs = pools.iter().map(|pool| async move { migrate(&mut pool.clone()).await });
    for result in futures_util::future::join_all(runs).await {
        result.expect("every node migrates");
    }
    let version: String = query(&pools[0], redis::cmd("GET").arg(Keys::schema())).await;
    assert_eq!(version, SCHEMA_VERSION.to_string());
}

async fn store(redis: &RedisServer, history_len: usize) -> (MessageStore, RedisConnection) {
    let pool = redis.connection().await;
    migrate(&mut pool.clone()).await.expect("migrate");
    (MessageStore::new(pool.clone(), Keys::new(16), "store-test", history_len, 600_000), pool)
}

fn message(room: &RoomName, body: &str) -> NewMessage {
    NewMessage {
        room: room.clone(),
        user: UserName::parse("alice").expect("user"),
        body: body.into(),
        trace: String::new(),
        key: None,
    }
}

#[tokio::test]
async fn publish_trims_to_history_len_in_steps_and_feeds_the_inboxes_of_the_rooms_nodes() {
    let redis = RedisServer::start();
    let (store, pool) = store(&redis, 20).await;
    let room = RoomName::parse("lobby").expect("room");
    let keys = Keys::new(16);
    let _: i64 =
        query(&pool, redis::cmd("HSET").arg(keys.room_nodes(&room)).arg("node-a").arg(1).arg("node-b").arg(2)).await;
    let mut ids = Vec::new();
    // 20 kept, trimmed in steps of 2: the 23rd message trims back to 20, the 26th again.
    for n in 0..26 {
        ids.push(store.publish(&message(&room, &n.to_string())).await.expect("publish").id);
    }
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids increase: {ids:?}");
    let all = store.history(&room, HistoryQuery { limit: 500, ..HistoryQuery::default() }).await.expect("history");
    assert_eq!(all.iter().map(|m| m.id).collect::<Vec<_>>(), ids[6..].to_vec(), "exactly the newest 20");
    let trimmed: String = query(&pool, redis::cmd("GET").arg(keys.trimmed(&room))).await;
    assert_eq!(trimmed, ids[5].to_string(), "the newest trimmed id is recorded");
    assert_eq!((all[0].user.as_str(), all[0].body.as_str()), ("alice", "6"));

    let shard = keys.shard(&room);
    for node in ["node-a", "node-b"] {
        let inbox_len: usize = query(&pool, redis::cmd("XLEN").arg(keys.inbox(shard, node))).await;
        assert_eq!(inbox_len, 26, "every message is in the inbox of {node}, which serves the room");
    }
    let elsewhere: usize = query(&pool, redis::cmd("XLEN").arg(keys.inbox(shard, "node-c"))).await;
    assert_eq!(elsewhere, 0, "a node that does not serve the room gets nothing of it");

    let page = |after: Option<usize>, before: Option<usize>, limit| HistoryQuery {
        after: after.map(|i| ids[i]),
        before: before.map(|i| ids[i]),
        limit,
    };
    let bodies = |messages: Vec<rookery::domain::Message>| messages.into_iter().map(|m| m.body).collect::<Vec<_>>();
    assert_eq!(bodies(store.history(&room, page(None, None, 3)).await.expect("page")), ["23", "24", "25"]);
    assert_eq!(bodies(store.history(&room, page(Some(10), None, 3)).await.expect("page")), ["11", "12", "13"]);
    assert_eq!(bodies(store.history(&room, page(None, Some(10), 2)).await.expect("page")), ["8", "9"]);
    assert_eq!(bodies(store.history(&room, page(Some(10), Some(13), 50)).await.expect("page")), ["11", "12"]);
}

#[tokio::test]
async fn recover_replays_after_since_and_reports_trimming() {
    let redis = RedisServer::start();
    let (store, _pool) = store(&redis, 20).await;
    let room = RoomName::parse("lobby").expect("room");
    let empty = store.recover(&room, None).await.expect("recover");
    assert_eq!((empty.last_id, empty.recovered, empty.messages.len()), (None, true, 0));
    let mut ids: Vec<MessageId> = Vec::new();
    for n in 0..25 {
        ids.push(store.publish(&message(&room, &n.to_string())).await.expect("publish").id);
    }
    let plain = store.recover(&room, None).await.expect("recover");
    assert_eq!((plain.last_id, plain.messages.len()), (Some(ids[24]), 0));
    let resumed = store.recover(&room, Some(ids[10])).await.expect("recover");
    assert!(resumed.recovered);
    assert_eq!(resumed.messages.iter().map(|m| m.id).collect::<Vec<_>>(), ids[11..].to_vec());
    let partial = store.recover(&room, Some(ids[1])).await.expect("recover");
    // 20 kept, trimmed in steps of 2: the 23rd message trimmed ids 0 to 2.
    assert!(!partial.recovered, "ids[2] was trimmed");
    assert_eq!(partial.messages.first().map(|m| m.id), Some(ids[3]), "what is retained is replayed");
    assert!(store.recover(&room, Some(ids[2])).await.expect("recover").recovered, "nothing after ids[2] was trimmed");
}

#[tokio::test]
async fn an_unreachable_redis_is_unavailable() {
    let redis = RedisServer::start();
    let (store, _pool) = store(&redis, 20).await;
    drop(redis);
    let room = RoomName::parse("lobby").expect("room");
    // A call that meets the connection as it breaks cannot vouch that nothing was stored
    // (`NoAnswer`); once the connection is known to be gone, calls are refused (`Unavailable`).
    for attempt in 0.. {
        match store.publish(&message(&room, "lost")).await.expect_err("Redis is gone") {
            EngineError::Unavailable(_) => break,
            EngineError::NoAnswer(_) if attempt < 3 => {}
            other => panic!("attempt {attempt}: {other:?}"),
        }
    }
}

mod cluster {
    //! Two engines ("nodes") on one Redis, and a node restarting with the same id.

    use std::sync::Arc;

    use rookery::engine::{
        Broker, BusEvent, Engine, PresenceStore,
        redis::{Keys, RedisConfig, RedisEngine, RedisTarget, migrate},
    };

    use crate::{
        contract::{Recorder, unique_room},
        redis_server::RedisServer,
    };

    fn config(server: &RedisServer, node: &str) -> RedisConfig {
        RedisConfig {
            target: RedisTarget::Server(server.url().into()),
            node_id: node.into(),
            bus_shards: 4,
            bus_retention_ms: 600_000,
            history_len: 100,
            read_batch: 10,
            read_interval: std::time::Duration::from_millis(2),
            publish_interval: std::time::Duration::from_millis(2),
            node_ttl_ms: 15_000,
            max_lag_ms: 10_000,
            presence_max_users: rookery::engine::DEFAULT_PRESENCE_MAX_USERS,
            min_replicas: 0,
        }
    }

    /// An engine ("node") whose deliveries nobody looks at.
    async fn quiet_engine(server: &RedisServer, node: &str) -> RedisEngine {
        RedisEngine::connect(config(server, node), Arc::new(Recorder::default()), rookery::telemetry::Metrics::new())
            .await
            .expect("node")
    }

    fn message_ids(events: &[BusEvent]) -> Vec<String> {
        events
            .iter()
            .filter_map(|e| match e {
                BusEvent::Message(m) => Some(m.id.to_string()),
                _ => None,
            })
            .collect()
    }

    #[tokio::test]
    async fn every_node_serving_a_room_receives_its_events_in_the_same_order() {
        let server = RedisServer::start();
        let (seen_a, seen_b) = (Arc::new(Recorder::default()), Arc::new(Recorder::default()));
        let a = RedisEngine::connect(config(&server, "node-a"), seen_a.clone(), rookery::telemetry::Metrics::new())
            .await
            .expect("node a");
        let b = RedisEngine::connect(config(&server, "node-b"), seen_b.clone(), rookery::telemetry::Metrics::new())
            .await
            .expect("node b");
        let room = unique_room("shared");
        seen_a.listen(&a, &room).await;
        seen_b.listen(&b, &room).await;
        for n in 0..10 {
            let via: &dyn Engine = if n % 2 == 0 { &a } else { &b };
            via.publish(super::message(&room, &n.to_string())).await.expect("publish");
        }
        let on_a = message_ids(&seen_a.wait_for(&room, 10).await);
        let on_b = message_ids(&seen_b.wait_for(&room, 10).await);
        assert_eq!(on_a.len(), 10);
        assert_eq!(on_a, on_b, "both nodes deliver the same messages in the same order");
    }

    #[tokio::test]
    async fn a_restarted_node_delivers_what_it_had_read_but_not_acknowledged() {
        let server = RedisServer::start();
        let first = quiet_engine(&server, "node-x").await;
        drop(first);
        let room = unique_room("pending");
        let keys = Keys::new(4);
        // node-x serves the room (as if a session of its own were in it).
        let mut conn = server.connection().await;
        let () = redis::cmd("HSET")
            .arg(keys.room_nodes(&room))
            .arg("node-x")
            .arg(1)
            .query_async(&mut conn)
            .await
            .expect("HSET");
        let publisher = quiet_engine(&server, "publisher").await;
        for n in 0..3 {
            publisher.publish(super::message(&room, &n.to_string())).await.expect("publish");
        }
        // node-x "crashes" after reading the entries and before acknowledging them.
        migrate(&mut conn).await.expect("migrate");
        let bus = keys.inbox(keys.shard(&room), "node-x");
        let _: redis::Value = redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg("node-x")
            .arg("node-x")
            .arg("STREAMS")
            .arg(&bus)
            .arg(">")
            .query_async(&mut conn)
            .await
            .expect("read without ack");
        let pending: (i64, redis::Value, redis::Value, redis::Value) =
            redis::cmd("XPENDING").arg(&bus).arg("node-x").query_async(&mut conn).await.expect("pending");
        assert_eq!(pending.0, 3, "three entries pending for node-x");

        let seen = Arc::new(Recorder::default());
        let _restarted =
            RedisEngine::connect(config(&server, "node-x"), seen.clone(), rookery::telemetry::Metrics::new())
                .await
                .expect("restart");
        let events = seen.wait_for(&room, 3).await;
        assert_eq!(message_ids(&events).len(), 3, "the pending entries are delivered after the restart");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        let pending: (i64, redis::Value, redis::Value, redis::Value) =
            redis::cmd("XPENDING").arg(&bus).arg("node-x").query_async(&mut conn).await.expect("pending");
        assert_eq!(pending.0, 0, "and acknowledged");
    }

    fn connected_clients(server: &RedisServer) -> u32 {
        let info = server.info("clients");
        info.lines().find_map(|l| l.strip_prefix("connected_clients:")?.trim().parse().ok()).unwrap_or(0)
    }

    #[test]
    fn each_publishing_thread_has_a_connection_of_its_own() {
        let server = RedisServer::start();
        let engine_runtime = tokio::runtime::Runtime::new().expect("runtime");
        let engine = Arc::new(engine_runtime.block_on(async { ready_engine(&server, "node-a").await }));
        let before = connected_clients(&server);
        // Two threads publish, three times each, and hold their connections until counted.
        let (published, counted) = (Arc::new(std::sync::Barrier::new(3)), Arc::new(std::sync::Barrier::new(3)));
        let threads: Vec<_> = (0..2)
            .map(|t| {
                let (engine, room) = (engine.clone(), unique_room("threads"));
                let (published, counted) = (published.clone(), counted.clone());
                std::thread::spawn(move || {
                    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
                    runtime.block_on(async {
                        for n in 0..3 {
                            engine.publish(super::message(&room, &format!("{t}:{n}"))).await.expect("publish");
                        }
                    });
                    published.wait();
                    counted.wait();
                })
            })
            .collect();
        published.wait();
        let during = connected_clients(&server);
        counted.wait();
        for thread in threads {
            thread.join().expect("thread");
        }
        assert_eq!(during, before + 2, "one connection per publishing thread, reused by its publishes");
    }

    /// An engine whose bus consumer has read once, so it holds all of its own connections.
    async fn ready_engine(server: &RedisServer, node: &str) -> RedisEngine {
        let engine = quiet_engine(server, node).await;
        while engine.check_ready().await.is_err() {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        engine
    }

    #[tokio::test]
    async fn a_session_connecting_opens_its_threads_connection_for_publishes_once() {
        let server = RedisServer::start();
        let engine = ready_engine(&server, "node-a").await;
        let before = connected_clients(&server);
        let user = rookery::domain::UserName::parse("alice").expect("user");
        // Two sessions connect on this thread at once: one opening, in the background.
        for _ in 0..2 {
            engine.connect(rookery::domain::SessionId::random(), &user).await.expect("connect");
        }
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        assert_eq!(connected_clients(&server), before + 1, "the thread's connection is open before any send");
        engine.publish(super::message(&unique_room("warm"), "first")).await.expect("publish");
        assert_eq!(connected_clients(&server), before + 1, "and the first send goes over it");
    }

    #[tokio::test]
    async fn a_publish_waits_no_longer_than_a_call_may_take_when_redis_does_not_answer() {
        let server = RedisServer::start();
        let engine = quiet_engine(&server, "node-a").await;
        // This thread has no connection of its own yet: the publish opens one, against a Redis
        // that accepts the TCP connection and then never answers. Nothing was sent.
        server.pause();
        let started = std::time::Instant::now();
        let outcome = engine.publish(super::message(&unique_room("frozen"), "never sent")).await;
        let waited = started.elapsed();
        assert!(matches!(outcome, Err(rookery::engine::EngineError::Unavailable(_))), "{outcome:?}");
        assert!(waited < std::time::Duration::from_millis(800), "answered after {waited:?}");
        // With the connection open, a publish Redis holds may have been stored.
        server.resume();
        let room = unique_room("frozen");
        engine.publish(super::message(&room, "opens the connection")).await.expect("publish");
        server.pause();
        let started = std::time::Instant::now();
        let outcome = engine.publish(super::message(&room, "maybe stored")).await;
        let waited = started.elapsed();
        server.resume();
        assert!(matches!(outcome, Err(rookery::engine::EngineError::NoAnswer(_))), "{outcome:?}");
        assert!(waited < std::time::Duration::from_millis(800), "answered after {waited:?}");
    }
}
