#!lua name=rookery_v1
-- rookery schema v1: the functions every v1 node calls. A later schema ships as a library of its
-- own (rookery_v2, ...), so loading it never changes what nodes of an older version call.
--
-- Key layout (see docs/cluster.md): a room's keys and the inboxes of its shard share the hash tag
-- {s<shard>}, so one call touches a single Redis Cluster slot.
--   rookery:{s<shard>}:history:<room>   stream: the room's messages (the entry id is the message id)
--   rookery:{s<shard>}:trimmed:<room>   string: the newest id trimmed from that history
--   rookery:{s<shard>}:presence:<room>  hash: user -> number of sessions in the room
--   rookery:{s<shard>}:members:<room>   set: "<user>|<session>" of every session in the room
--   rookery:{s<shard>}:nodes:<room>     hash: node -> number of its sessions in the room
--   rookery:{s<shard>}:events:<room>    string: the number of the room's latest event (messages,
--                                       joins, leaves), raised by the call that makes the event
--   rookery:{s<shard>}:inbox:<node>     stream: the events of the shard's rooms where the node has
--                                       sessions, for that node alone
--   rookery:{s<shard>}:sent:<room>|<key> string: the id of the message stored with idempotency
--                                       key <key> (expires with the window)
--   rookery:{n<node>}:session:<session> hash: user, node, connected_at, last_seen, rooms (TTL)
--   rookery:{n<node>}:sessions          hash: session -> "<user> <room> <room> ..." (no TTL; what
--                                       the reaper removes from presence when the node dies)
--   rookery:nodes                       sorted set: node -> its last heartbeat (ms, server clock)
--   rookery:reaper                      string: the node reaping dead nodes (expires)
--   rookery:epoch                       string: changes when Redis loses its data
--
-- Events reach only the nodes that serve the room: every function that puts an event out appends
-- it to the inbox of each node in the room's node set. The inbox keys are built here from the
-- prefix the caller passes rather than declared, because the set is only known inside the call;
-- they carry the room's hash tag, so they live in the same Cluster slot as the declared keys.

-- The server clock in milliseconds, as an integer string (never in exponent notation).
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Appends event number `seq` of a room (its fields, value, ... as the trailing arguments) to the
-- inbox of every node in the room's node set but `publisher`, each inbox trimmed to the entries
-- of the `retention_ms` before `now` (approximately). The publishing node delivers its own
-- message from the call's reply instead, and puts it in order by its number. Returns whether the
-- publisher is one of the room's nodes. The fields go on as arguments, not in a table: building
-- a table per event cost more than the append it fed.
local function to_nodes(nodes_key, inbox_prefix, now, retention_ms, publisher, seq, ...)
  local min_id = string.format('%d', now - tonumber(retention_ms))
  local serves = false
  for _, node in ipairs(redis.call('HKEYS', nodes_key)) do
    if node == publisher then
      serves = true
    else
      redis.call('XADD', inbox_prefix .. node, 'MINID', '~', min_id, '*', 'seq', seq, ...)
    end
  end
  return serves
end

-- Appends a message to the room's history (trimmed back to ARGV[4] entries once it holds more
-- than ARGV[4] + ARGV[8], the newest trimmed id recorded, because XINFO's max-deleted-entry-id
-- ignores trimming), numbers it, and appends it to the inbox of every node serving the room but
-- the publishing node ARGV[9], in one step. Returns {id, event number} when the publishing node
-- serves the room (it delivers the message to its own members), {id} when it does not. With an
-- idempotency key (KEYS[5], the key's own string) that the room has seen within the window
-- ARGV[5], it stores nothing and returns {the id stored then}. Each key is a string of its own
-- that Redis expires: remembering one is one `SET`, where a per-room index of keys to forget
-- cost five more calls a publish (BENCHMARKS.md, change 26).
-- KEYS: history, trimmed, room nodes, event number, and the idempotency key's string when the
-- send has one. ARGV: room, user, body, history_len, retention_ms (also how long a key is
-- remembered), trace, inbox prefix, trim step (see `engine::history_trim_step`), publishing node.
local function publish(keys, args)
  local sent = keys[5]
  if sent then
    local stored = redis.call('GET', sent)
    if stored then return {stored} end
  end
  local id = redis.call('XADD', keys[1], '*', 'user', args[2], 'body', args[3])
  -- Trimmed in steps: taking entries off a stream's head one at a time rewrites its head node
  -- every time, and the newest trimmed id would be read every time too.
  local limit = tonumber(args[4])
  local length = redis.call('XLEN', keys[1])
  if length > limit + (tonumber(args[8]) or 0) then
    local leaving = redis.call('XRANGE', keys[1], '-', '+', 'COUNT', length - limit)
    redis.call('SET', keys[2], leaving[#leaving][1])
    redis.call('XTRIM', keys[1], 'MAXLEN', limit)
  end
  -- The id's milliseconds are the server's clock: no TIME call needed.
  local now = tonumber(string.match(id, '^%d+'))
  local seq = redis.call('INCR', keys[4])
  local serves
  if args[6] ~= '' then
    serves = to_nodes(keys[3], args[7], now, args[5], args[9], seq,
      'kind', 'message', 'room', args[1], 'id', id, 'user', args[2], 'body', args[3], 'trace', args[6])
  else
    serves = to_nodes(keys[3], args[7], now, args[5], args[9], seq,
      'kind', 'message', 'room', args[1], 'id', id, 'user', args[2], 'body', args[3])
  end
  if sent then redis.call('SET', sent, id, 'PX', args[5]) end
  if serves then return {id, seq} end
  return {id}
end

-- What a session needs to (re)join, and a catch-up to go on from: the newest trimmed id, the
-- newest id, the number of the room's latest event, and the entries from ARGV[1] on (when
-- given; the first is ARGV[1] itself when the history holds it, which tells the node the
-- position is real) as a flat list id, user, body, id, user, body, ...
-- KEYS: history, trimmed, event number. ARGV: since ('' for none).
local function recover(keys, args)
  local deleted = redis.call('GET', keys[2]) or '0-0'
  local newest = redis.call('XREVRANGE', keys[1], '+', '-', 'COUNT', 1)
  local reply = {deleted, newest[1] and newest[1][1] or '', redis.call('GET', keys[3]) or '0'}
  if args[1] ~= '' then
    for _, entry in ipairs(redis.call('XRANGE', keys[1], args[1], '+')) do
      local fields, user, body = entry[2], '', ''
      for i = 1, #fields, 2 do
        if fields[i] == 'user' then user = fields[i + 1] elseif fields[i] == 'body' then body = fields[i + 1] end
      end
      table.insert(reply, entry[1]); table.insert(reply, user); table.insert(reply, body)
    end
  end
  return reply
end

-- Adds a session of node ARGV[5] to a room, and the node to the room's node set, so the room's
-- events reach the node from this call on; the user's first session announces a join to the
-- room's nodes, ordered with the room's messages, unless the room then has more than ARGV[4]
-- users (a large room has no presence events). Returns the number of users, and their session
-- counts (flat: user, count, ...) or false when there are more than ARGV[4] of them, and the
-- number of the room's latest event (see `to_nodes`).
-- KEYS: presence, members, room nodes, event number. ARGV: room, user, session, max users with
-- presence, node, retention_ms, inbox prefix.
local function join(keys, args)
  local max_users = tonumber(args[4])
  if redis.call('SADD', keys[2], args[2] .. '|' .. args[3]) == 1 then
    redis.call('HINCRBY', keys[3], args[5], 1)
    if redis.call('HINCRBY', keys[1], args[2], 1) == 1 and redis.call('HLEN', keys[1]) <= max_users then
      to_nodes(keys[3], args[7], now_ms(), args[6], nil, redis.call('INCR', keys[4]),
        'kind', 'presence', 'room', args[1], 'user', args[2], 'event', 'join')
    end
  end
  local users = redis.call('HLEN', keys[1])
  -- Events numbered up to this one came before the join.
  local seq = tonumber(redis.call('GET', keys[4]) or '0')
  if users > max_users then return {users, false, seq} end
  return {users, redis.call('HGETALL', keys[1]), seq}
end

-- A session's join and what it needs to resume, in one atomic call: the replay is read first,
-- so a call that fails (the history is not a stream, say) fails before the session is added or
-- announced, and no other member ever sees a join of a session that did not join. Returns
-- {join's reply, recover's reply}.
-- KEYS: presence, members, room nodes, history, trimmed, event number. ARGV: as for join, then
-- since.
local function join_recover(keys, args)
  local recovered = recover({keys[4], keys[5], keys[6]}, {args[8]})
  local joined = join({keys[1], keys[2], keys[3], keys[6]}, args)
  return {joined, recovered}
end

-- Removes a session of node ARGV[5] from a room, and the node from the room's node set with its
-- last session there (its intake of the room stops); the user's last session announces a leave
-- to the nodes still serving the room, unless the room had more than ARGV[4] users.
-- KEYS: presence, members, room nodes, event number. ARGV: as for join.
local function leave(keys, args)
  if redis.call('SREM', keys[2], args[2] .. '|' .. args[3]) == 1 then
    if redis.call('HINCRBY', keys[3], args[5], -1) <= 0 then
      redis.call('HDEL', keys[3], args[5])
    end
    if redis.call('HINCRBY', keys[1], args[2], -1) <= 0 then
      local users_before = redis.call('HLEN', keys[1])
      redis.call('HDEL', keys[1], args[2])
      if users_before <= tonumber(args[4]) then
        to_nodes(keys[3], args[7], now_ms(), args[6], nil, redis.call('INCR', keys[4]),
          'kind', 'presence', 'room', args[1], 'user', args[2], 'event', 'leave')
      end
    end
  end
  return 1
end

-- Records a session and the rooms it is in: its metadata hash (expiring after ARGV[6] ms unless
-- written again) and its entry in the node's session index (kept until the session ends or the
-- node is reaped). A node writes it before a join and after a leave, so the index always covers
-- the session's presence.
-- KEYS: session hash, node index. ARGV: session, user, node, connected_at, rooms, ttl_ms.
local function session_put(keys, args)
  redis.call('HSET', keys[1], 'user', args[2], 'node', args[3], 'connected_at', args[4],
    'last_seen', now_ms(), 'rooms', args[5])
  redis.call('PEXPIRE', keys[1], args[6])
  local entry = args[2]
  if args[5] ~= '' then entry = entry .. ' ' .. args[5] end
  redis.call('HSET', keys[2], args[1], entry)
  return 1
end

-- Forgets a session that ended. KEYS: session hash, node index. ARGV: session.
local function session_drop(keys, args)
  redis.call('DEL', keys[1])
  redis.call('HDEL', keys[2], args[1])
  return 1
end

-- Takes a node's session index (its sessions and their rooms) and deletes it, atomically, so a
-- reaper works on a snapshot. Returns session, entry, session, entry, ...
-- KEYS: node index.
local function sessions_take(keys, args)
  local index = redis.call('HGETALL', keys[1])
  redis.call('DEL', keys[1])
  return index
end

-- A node's heartbeat: records it with the server's clock. Returns 1 when the node was not
-- registered (first start, reaped while alive, or Redis lost its data). The node reads the
-- epoch in the same round trip, with a command of its own: on a Redis Cluster the two keys
-- live in different slots. KEYS: nodes. ARGV: node.
local function heartbeat(keys, args)
  return redis.call('ZADD', keys[1], now_ms(), args[1])
end

-- The nodes silent for more than ARGV[1] ms. KEYS: nodes.
local function silent_nodes(keys, args)
  return redis.call('ZRANGEBYSCORE', keys[1], '-inf', '(' .. (now_ms() - tonumber(args[1])))
end

-- Removes node ARGV[1] from the registry if it is still silent for more than ARGV[2] ms, so a
-- node that came back in the meantime is not reaped. Returns 1 when removed. KEYS: nodes.
local function claim_silent(keys, args)
  local seen = redis.call('ZSCORE', keys[1], args[1])
  if seen and tonumber(seen) < now_ms() - tonumber(args[2]) then
    redis.call('ZREM', keys[1], args[1])
    return 1
  end
  return 0
end

redis.register_function('rookery_v1_publish', publish)
redis.register_function('rookery_v1_session_put', session_put)
redis.register_function('rookery_v1_session_drop', session_drop)
redis.register_function('rookery_v1_sessions_take', sessions_take)
redis.register_function('rookery_v1_heartbeat', heartbeat)
redis.register_function{function_name = 'rookery_v1_silent_nodes', callback = silent_nodes, flags = {'no-writes'}}
redis.register_function('rookery_v1_claim_silent', claim_silent)
redis.register_function('rookery_v1_join', join)
redis.register_function('rookery_v1_join_recover', join_recover)
redis.register_function('rookery_v1_leave', leave)
redis.register_function{function_name = 'rookery_v1_recover', callback = recover, flags = {'no-writes'}}
