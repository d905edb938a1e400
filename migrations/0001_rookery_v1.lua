#!lua name=rookery_v1
-- rookery schema v1: the functions every v1 node calls. A later schema ships as a library of its
-- own (rookery_v2, ...), so loading it never changes what nodes of an older version call.
--
-- Key layout (see docs/cluster.md): a room's history stream and its bus shard share the hash tag
-- {s<shard>}, so one call touches a single Redis Cluster slot.
--   rookery:{s<shard>}:history:<room>   stream: the room's messages (the entry id is the message id)
--   rookery:{s<shard>}:trimmed:<room>   string: the newest id trimmed from that history
--   rookery:{s<shard>}:presence:<room>  hash: user -> number of sessions in the room
--   rookery:{s<shard>}:members:<room>   set: "<user>|<session>" of every session in the room
--   rookery:{s<shard>}:bus              stream: every event of the shard's rooms, for all nodes

-- The server clock in milliseconds, as an integer string (never in exponent notation).
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Appends a message to the room's history (exactly ARGV[4] entries kept, the newest trimmed id
-- recorded, because XINFO's max-deleted-entry-id ignores trimming) and to the bus shard (entries
-- older than ARGV[5] ms trimmed, approximately), in one step; returns the message id.
-- KEYS: history, trimmed, bus. ARGV: room, user, body, history_len, bus_retention_ms, trace.
local function publish(keys, args)
  local limit = tonumber(args[4])
  local length = redis.call('XLEN', keys[1])
  if length >= limit then
    local leaving = redis.call('XRANGE', keys[1], '-', '+', 'COUNT', length - limit + 1)
    redis.call('SET', keys[2], leaving[#leaving][1])
  end
  local id = redis.call('XADD', keys[1], 'MAXLEN', limit, '*', 'user', args[2], 'body', args[3])
  local min_id = string.format('%d', now_ms() - tonumber(args[5]))
  redis.call('XADD', keys[3], 'MINID', '~', min_id, '*',
    'kind', 'message', 'room', args[1], 'id', id, 'user', args[2], 'body', args[3], 'trace', args[6])
  return id
end

-- What a session needs to (re)join: the newest trimmed id, the newest id, and the entries
-- after ARGV[1] (when given) as a flat list id, user, body, id, user, body, ...
-- KEYS: history, trimmed. ARGV: since ('' for none).
local function recover(keys, args)
  local deleted = redis.call('GET', keys[2]) or '0-0'
  local newest = redis.call('XREVRANGE', keys[1], '+', '-', 'COUNT', 1)
  local reply = {deleted, newest[1] and newest[1][1] or ''}
  if args[1] ~= '' then
    for _, entry in ipairs(redis.call('XRANGE', keys[1], '(' .. args[1], '+')) do
      local fields, user, body = entry[2], '', ''
      for i = 1, #fields, 2 do
        if fields[i] == 'user' then user = fields[i + 1] elseif fields[i] == 'body' then body = fields[i + 1] end
      end
      table.insert(reply, entry[1]); table.insert(reply, user); table.insert(reply, body)
    end
  end
  return reply
end

-- Adds a session to a room; the user's first session announces a join on the bus, ordered with
-- the room's messages. Returns the room's users and session counts (flat: user, count, ...).
-- KEYS: presence, members, bus. ARGV: room, user, session.
local function join(keys, args)
  if redis.call('SADD', keys[2], args[2] .. '|' .. args[3]) == 1 then
    if redis.call('HINCRBY', keys[1], args[2], 1) == 1 then
      redis.call('XADD', keys[3], '*', 'kind', 'presence', 'room', args[1], 'user', args[2], 'event', 'join')
    end
  end
  return redis.call('HGETALL', keys[1])
end

-- Removes a session from a room; the user's last session announces a leave.
-- KEYS: presence, members, bus. ARGV: room, user, session.
local function leave(keys, args)
  if redis.call('SREM', keys[2], args[2] .. '|' .. args[3]) == 1 then
    if redis.call('HINCRBY', keys[1], args[2], -1) <= 0 then
      redis.call('HDEL', keys[1], args[2])
      redis.call('XADD', keys[3], '*', 'kind', 'presence', 'room', args[1], 'user', args[2], 'event', 'leave')
    end
  end
  return 1
end

redis.register_function('rookery_v1_publish', publish)
redis.register_function('rookery_v1_join', join)
redis.register_function('rookery_v1_leave', leave)
redis.register_function{function_name = 'rookery_v1_recover', callback = recover, flags = {'no-writes'}}
