//! The Redis engine's migrations and message store, against a real redis-server.

use rookery::{
    domain::{MessageId, RoomName, UserName},
    engine::{
        EngineError, NewMessage,
        redis::{Keys, MessageStore, MigrateError, SCHEMA_VERSION, migrate},
    },
    protocol::HistoryQuery,
};

use crate::redis_server::RedisServer;

async fn query<T: redis::FromRedisValue>(pool: &deadpool_redis::Pool, cmd: &mut redis::Cmd) -> T {
    let mut conn = pool.get().await.expect("connection");
    cmd.query_async(&mut conn).await.expect("query")
}

#[tokio::test]
async fn migrations_load_the_functions_and_record_the_version() {
    let redis = RedisServer::start();
    let pool = redis.pool();
    let mut conn = pool.get().await.expect("connection");
    assert_eq!(migrate(&mut conn).await.expect("migrate"), 0, "an empty Redis had no schema");
    assert_eq!(migrate(&mut conn).await.expect("again"), SCHEMA_VERSION, "migrating twice is harmless");
    let version: String = query(&pool, redis::cmd("GET").arg(Keys::schema())).await;
    assert_eq!(version, SCHEMA_VERSION.to_string());
    let libraries: redis::Value = query(&pool, redis::cmd("FUNCTION").arg("LIST").arg("LIBRARYNAME").arg("rookery_v1")).await;
    assert!(format!("{libraries:?}").contains("rookery_v1_publish"), "{libraries:?}");
}

#[tokio::test]
async fn a_newer_schema_stops_the_node() {
    let redis = RedisServer::start();
    let pool = redis.pool();
    let _: () = query(&pool, redis::cmd("SET").arg(Keys::schema()).arg(SCHEMA_VERSION + 1)).await;
    let mut conn = pool.get().await.expect("connection");
    let error = migrate(&mut conn).await.expect_err("must refuse");
    assert!(matches!(error, MigrateError::NewerSchema { found, .. } if found == SCHEMA_VERSION + 1));
    assert!(error.to_string().contains("upgrade the node"), "{error}");
}

#[tokio::test]
async fn nodes_migrating_at_once_all_succeed() {
    let redis = RedisServer::start();
    let pools: Vec<_> = (0..4).map(|_| redis.pool()).collect();
    let runs = pools.iter().map(|pool| async move {
        let mut conn = pool.get().await.expect("connection");
        migrate(&mut conn).await
    });
    for result in futures_util::future::join_all(runs).await {
        result.expect("every node migrates");
    }
    let version: String = query(&pools[0], redis::cmd("GET").arg(Keys::schema())).await;
    assert_eq!(version, SCHEMA_VERSION.to_string());
}

async fn store(redis: &RedisServer, history_len: usize) -> (MessageStore, deadpool_redis::Pool) {
    let pool = redis.pool();
    migrate(&mut pool.get().await.expect("connection")).await.expect("migrate");
    (MessageStore::new(pool.clone(), Keys::new(16), history_len, 600_000), pool)
}

fn message(room: &RoomName, body: &str) -> NewMessage {
    NewMessage { room: room.clone(), user: UserName::parse("alice").expect("user"), body: body.into() }
}

#[tokio::test]
async fn publish_keeps_exactly_history_len_and_feeds_the_bus() {
    let redis = RedisServer::start();
    let (store, pool) = store(&redis, 20).await;
    let room = RoomName::parse("lobby").expect("room");
    let mut ids = Vec::new();
    for n in 0..25 {
        ids.push(store.publish(&message(&room, &n.to_string()), "").await.expect("publish"));
    }
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids increase: {ids:?}");
    let all = store.history(&room, HistoryQuery { limit: 500, ..HistoryQuery::default() }).await.expect("history");
    assert_eq!(all.iter().map(|m| m.id).collect::<Vec<_>>(), ids[5..].to_vec(), "exactly the newest 20");
    assert_eq!((all[0].user.as_str(), all[0].body.as_str()), ("alice", "5"));

    let keys = Keys::new(16);
    let bus_len: usize = query(&pool, redis::cmd("XLEN").arg(keys.bus(keys.shard(&room)))).await;
    assert_eq!(bus_len, 25, "every message is on the room's bus shard");

    let page = |after: Option<usize>, before: Option<usize>, limit| HistoryQuery {
        after: after.map(|i| ids[i]),
        before: before.map(|i| ids[i]),
        limit,
    };
    let bodies = |messages: Vec<rookery::domain::Message>| messages.into_iter().map(|m| m.body).collect::<Vec<_>>();
    assert_eq!(bodies(store.history(&room, page(None, None, 3)).await.expect("page")), ["22", "23", "24"]);
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
        ids.push(store.publish(&message(&room, &n.to_string()), "").await.expect("publish"));
    }
    let plain = store.recover(&room, None).await.expect("recover");
    assert_eq!((plain.last_id, plain.messages.len()), (Some(ids[24]), 0));
    let resumed = store.recover(&room, Some(ids[10])).await.expect("recover");
    assert!(resumed.recovered);
    assert_eq!(resumed.messages.iter().map(|m| m.id).collect::<Vec<_>>(), ids[11..].to_vec());
    let partial = store.recover(&room, Some(ids[1])).await.expect("recover");
    assert!(!partial.recovered, "ids 2 to 4 were trimmed");
    assert_eq!(partial.messages.first().map(|m| m.id), Some(ids[5]), "what is retained is replayed");
    assert!(store.recover(&room, Some(ids[4])).await.expect("recover").recovered, "nothing after ids[4] was trimmed");
}

#[tokio::test]
async fn an_unreachable_redis_is_unavailable() {
    let redis = RedisServer::start();
    let (store, _pool) = store(&redis, 20).await;
    drop(redis);
    let room = RoomName::parse("lobby").expect("room");
    let error = store.publish(&message(&room, "lost"), "").await.expect_err("Redis is gone");
    assert!(matches!(error, EngineError::Unavailable(_)), "{error:?}");
}
