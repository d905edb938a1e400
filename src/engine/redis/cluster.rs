//! Running on a Redis Cluster: the clients, and pipelines that span slots.
//!
//! Every function call and multi-key command of the engine touches one slot (see `keys`), but
//! some pipelines carry commands for several slots (a join writes the session record, on the
//! node's slot, and the presence, on the room's). A cluster takes a pipeline to one slot only,
//! so [`query_split`] sends one pipeline per slot, one after the other in the order of each
//! slot's first command, and puts the replies back in the order of the commands. Commands of
//! one slot keep their order; what a join needs first (the session record before the presence
//! that the record lets the reaper undo) comes first.
//!
//! The cluster client follows the topology by itself: a `MOVED` or `ASK` answer (a slot moved
//! or moving), a `TRYAGAIN` during a slot migration, a primary that is gone (its replica is
//! promoted) make it refresh its slot map and send the call again, within
//! [`OVERALL_TIMEOUT`]. A call whose connection dropped after it was written is sent again too:
//! a publish may then be stored twice, unless it carries an idempotency key (`docs/cluster.md`).

use std::{collections::HashMap, time::Duration};

use redis::{
    Cmd, Pipeline, ProtocolVersion, RedisResult, Value,
    aio::ConnectionLike,
    cluster::{ClusterClient, ClusterClientBuilder},
    cluster_async::ClusterConnection,
};

use super::connection::{CONNECT_TIMEOUT, RESPONSE_TIMEOUT};

/// How long a call may take with its redirections and retries, through a failover's first
/// seconds; past it the caller gets a timeout (the call may have been carried out).
pub const OVERALL_TIMEOUT: Duration = Duration::from_secs(3);

/// A client for calls (`blocking == false`) or for the bus's blocking reads, which wait
/// longer than any answer may take.
pub fn client(seeds: &[String], blocking: bool) -> RedisResult<ClusterClient> {
    let builder = ClusterClientBuilder::new(seeds.iter().map(String::as_str))
        .use_protocol(ProtocolVersion::RESP3)
        .connection_timeout(CONNECT_TIMEOUT)
        .retries(8)
        .min_retry_wait(20)
        .max_retry_wait(500);
    let builder = if blocking {
        // A failed read surfaces instead of being sent again: the consumer reconnects every lane
        // and catches up from history, which finds what a failover lost (see `bus`).
        builder.retries(0).response_timeout(super::bus::BLOCK * 3).overall_response_timeout(None)
    } else {
        builder.response_timeout(RESPONSE_TIMEOUT).overall_response_timeout(Some(OVERALL_TIMEOUT))
    };
    builder.build()
}

/// Sends `pipeline` as one pipeline per slot (see the module docs).
pub async fn query_split(
    cluster: &mut ClusterConnection,
    pipeline: &Pipeline,
    offset: usize,
    count: usize,
) -> RedisResult<Vec<Value>> {
    let groups = group_by_slot(pipeline.cmd_iter());
    if groups.len() <= 1 || pipeline.is_transaction() {
        return cluster.req_packed_commands(pipeline, offset, count).await;
    }
    let commands: Vec<&Cmd> = pipeline.cmd_iter().collect();
    let mut replies: Vec<Option<Value>> = vec![None; commands.len()];
    for indices in groups {
        let mut part = redis::pipe();
        for &index in &indices {
            part.add_command(commands[index].clone());
        }
        let values = cluster.req_packed_commands(&part, 0, indices.len()).await?;
        for (index, value) in indices.into_iter().zip(values) {
            replies[index] = Some(value);
        }
    }
    Ok(replies.into_iter().map(|value| value.unwrap_or(Value::Nil)).collect())
}

/// The commands' indices grouped by the slot of their key, groups in the order of their first
/// command; a command without a key joins the group before it (or the first).
fn group_by_slot<'a>(commands: impl Iterator<Item = &'a Cmd>) -> Vec<Vec<usize>> {
    let mut groups: Vec<Vec<usize>> = Vec::new();
    let mut group_of: HashMap<Vec<u8>, usize> = HashMap::new();
    let mut keyless = Vec::new();
    let mut last = None;
    for (index, cmd) in commands.enumerate() {
        match slot_tag(cmd) {
            Some(tag) => {
                let group = *group_of.entry(tag).or_insert_with(|| {
                    groups.push(Vec::new());
                    groups.len() - 1
                });
                groups[group].push(index);
                last = Some(group);
            }
            None => match last {
                Some(group) => groups[group].push(index),
                None => keyless.push(index),
            },
        }
    }
    match groups.first_mut() {
        Some(first) => {
            first.extend(keyless);
            first.sort_unstable();
        }
        None if !keyless.is_empty() => groups.push(keyless),
        None => {}
    }
    groups
}

/// What decides the slot of the command's first key: its hash tag, or the whole key.
fn slot_tag(cmd: &Cmd) -> Option<Vec<u8>> {
    let args: Vec<&[u8]> = cmd
        .args_iter()
        .filter_map(|arg| match arg {
            redis::Arg::Simple(bytes) => Some(bytes),
            _ => None,
        })
        .collect();
    let name = args.first()?.to_ascii_uppercase();
    let key = match name.as_slice() {
        // FCALL name numkeys key...: no key, no slot.
        b"FCALL" | b"FCALL_RO" | b"EVAL" | b"EVALSHA" => {
            let keys: usize = std::str::from_utf8(args.get(2)?).ok()?.parse().ok()?;
            if keys == 0 {
                return None;
            }
            args.get(3)?
        }
        b"XGROUP" => args.get(2)?,
        // No key: they go with the command before them. `WAIT` must: it waits for the writes
        // made before it on its own connection.
        b"PING" | b"TIME" | b"INFO" | b"FUNCTION" | b"WAIT" | b"WAITAOF" | b"CLUSTER" | b"CONFIG" => return None,
        _ => args.get(1)?,
    };
    let tag = key
        .iter()
        .position(|&b| b == b'{')
        .and_then(|open| {
            let close = key[open + 1..].iter().position(|&b| b == b'}')?;
            (close > 0).then(|| &key[open + 1..open + 1 + close])
        })
        .unwrap_or(key);
    Some(tag.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn groups(pipe: &Pipeline) -> Vec<Vec<usize>> {
        group_by_slot(pipe.cmd_iter())
    }

    #[test]
    fn a_pipeline_is_split_by_hash_tag_keeping_the_order_of_each_slot() {
        let mut pipe = redis::pipe();
        pipe.cmd("HSET").arg("rookery:{nA}:session:1").arg("f").arg("v"); // 0: node slot
        pipe.cmd("FCALL").arg("rookery_v1_join").arg(2).arg("rookery:{s3}:presence:r").arg("rookery:{s3}:x"); // 1
        pipe.cmd("XRANGE").arg("rookery:{s3}:history:r").arg("-").arg("+"); // 2: same slot as 1
        pipe.cmd("GET").arg("rookery:epoch"); // 3: a key of its own
        pipe.cmd("PING"); // 4: no key, goes with 3
        pipe.cmd("DEL").arg("rookery:{nA}:sessions"); // 5: node slot again
        assert_eq!(groups(&pipe), vec![vec![0, 5], vec![1, 2], vec![3, 4]]);
    }

    #[test]
    fn a_pipeline_on_one_slot_or_without_keys_stays_whole() {
        let mut one = redis::pipe();
        one.cmd("PING");
        one.cmd("XACK").arg("rookery:{s1}:inbox:a").arg("a").arg("1-1");
        one.cmd("XACK").arg("rookery:{s1}:inbox:b").arg("b").arg("1-1");
        assert_eq!(groups(&one), vec![vec![0, 1, 2]]);
        let mut keyless = redis::pipe();
        keyless.cmd("PING").cmd("TIME");
        assert_eq!(groups(&keyless), vec![vec![0, 1]]);
        let mut replicated = redis::pipe();
        replicated
            .cmd("FCALL")
            .arg("rookery_v1_publish")
            .arg(1)
            .arg("rookery:{s2}:history:r")
            .cmd("WAIT")
            .arg(1)
            .arg(250);
        assert_eq!(groups(&replicated), vec![vec![0, 1]], "a WAIT goes on the connection of the write it waits for");
        let mut calls = redis::pipe();
        calls.cmd("FCALL").arg("f").arg(0).cmd("FCALL").arg("f").arg(1).arg("k{t}");
        assert_eq!(groups(&calls), vec![vec![0, 1]]);
    }
}
