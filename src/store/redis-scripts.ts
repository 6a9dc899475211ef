/**
 * Lua scripts of the Redis store. Each nonce transition is one script, so it is atomic on the
 * server and every daemon of a fleet sees the same state. Time comes from the server's TIME
 * (scripts replicate by effects since Redis 7), so the daemons' clocks never disagree about
 * an expiry. Times are integer milliseconds; `%.0f` keeps Lua from printing them as 1.7e+12.
 */

const NOW = `local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function ms(x) return string.format('%.0f', x) end
`;

/** Lua fragment: issue(nonce key, outstanding zset, member, ttlMs, cap) -> 'issued' | 'exists' | 'capacity'. */
const ISSUE_FN = `
local function issue(key, zset, member, ttlMs, cap)
  redis.call('ZREMRANGEBYSCORE', zset, '-inf', ms(now))
  if redis.call('EXISTS', key) == 1 then return 'exists' end
  if redis.call('ZCARD', zset) >= tonumber(cap) then return 'capacity' end
  local exp = now + tonumber(ttlMs)
  redis.call('HSET', key, 'exp', ms(exp))
  redis.call('PEXPIREAT', key, ms(exp))
  redis.call('ZADD', zset, ms(exp), member)
  return 'issued'
end
`;

/** Lua fragment: hit(window counter, windowMs) -> count, ms left; a fixed window shared by the fleet. */
const HIT_FN = `
local function hit(key, windowMs)
  local c = redis.call('INCR', key)
  local ttl = redis.call('PTTL', key)
  if c == 1 or ttl < 0 then
    redis.call('PEXPIRE', key, windowMs)
    ttl = tonumber(windowMs)
  end
  return c, ttl
end
`;

/** ISSUE KEYS: nonce, outstanding zset. ARGV: member, ttlMs, cap. */
export const ISSUE = `${NOW}${ISSUE_FN}
return issue(KEYS[1], KEYS[2], ARGV[1], ARGV[2], ARGV[3])`;

/**
 * ISSUE_CHARGED KEYS: nonce, outstanding zset, rate-limit window counter. ARGV: member, ttlMs,
 * cap, windowMs, limit. get_nonce in one round trip: the HIT of the client's budget (always
 * counted, as HIT does), then ISSUE unless the window's count exceeds the limit. Returns
 * {result, count, window ms left}.
 */
export const ISSUE_CHARGED = `${NOW}${HIT_FN}${ISSUE_FN}
local c, ttl = hit(KEYS[3], ARGV[4])
if c > tonumber(ARGV[5]) then return {'limited', c, ttl} end
return {issue(KEYS[1], KEYS[2], ARGV[1], ARGV[2], ARGV[3]), c, ttl}`;

/** CLAIM KEYS: nonce. ARGV: owner, leaseMs. A lapsed lease counts as issued. */
export const CLAIM = `${NOW}
local h = redis.call('HMGET', KEYS[1], 'exp', 'o', 'l')
if not h[1] then return 0 end
local exp = tonumber(h[1])
if exp <= now then return 0 end
if h[2] and tonumber(h[3]) > now then return 0 end
local lease = now + tonumber(ARGV[2])
redis.call('HSET', KEYS[1], 'o', ARGV[1], 'l', ms(lease))
if lease > exp then redis.call('PEXPIREAT', KEYS[1], ms(lease)) end
return 1`;

/**
 * CONSUME KEYS: nonce, outstanding zset, consumed marker. ARGV: owner, member, marker minimum ms.
 * Ends the nonce only if owner holds the claim, and leaves a consumed-by-owner marker (original
 * expiry kept for UNCONSUME) until the lease end, at least ARGV[3] ms. A repeated consume by the
 * same owner (its first reply was lost) finds the marker. Returns the expiry, or 0.
 */
export const CONSUME = `${NOW}
local h = redis.call('HMGET', KEYS[1], 'o', 'exp', 'l')
if not h[2] then
  local m = redis.call('HMGET', KEYS[3], 'o', 'exp')
  if m[1] and m[1] == ARGV[1] then return m[2] end
  return 0
end
if h[1] ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[2])
local keep = now + tonumber(ARGV[3])
local lease = tonumber(h[3])
if lease and lease > keep then keep = lease end
redis.call('HSET', KEYS[3], 'o', ARGV[1], 'exp', h[2])
redis.call('PEXPIREAT', KEYS[3], ms(keep))
return h[2]`;

/**
 * UNCONSUME KEYS: nonce, outstanding zset, consumed marker. ARGV: owner, member. Undoes owner's
 * consume whose secret was not sent (its confirmation failed): back to issued with the original
 * expiry, marker removed. 0 when the marker is not owner's, the nonce exists or has expired.
 */
export const UNCONSUME = `${NOW}
local m = redis.call('HMGET', KEYS[3], 'o', 'exp')
if m[1] ~= ARGV[1] then return 0 end
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('DEL', KEYS[3])
local exp = tonumber(m[2])
if not exp or exp <= now then return 0 end
redis.call('HSET', KEYS[1], 'exp', ms(exp))
redis.call('PEXPIREAT', KEYS[1], ms(exp))
redis.call('ZADD', KEYS[2], ms(exp), ARGV[2])
return 1`;

/** RELEASE KEYS: nonce, outstanding zset. ARGV: owner, member. Back to issued, original expiry. */
export const RELEASE = `${NOW}
local h = redis.call('HMGET', KEYS[1], 'exp', 'o')
if h[2] ~= ARGV[1] then return 0 end
local exp = tonumber(h[1])
if exp <= now then
  redis.call('DEL', KEYS[1])
  redis.call('ZREM', KEYS[2], ARGV[2])
  return 1
end
redis.call('HDEL', KEYS[1], 'o', 'l')
redis.call('PEXPIREAT', KEYS[1], ms(exp))
return 1`;

/** COUNT KEYS: outstanding zset. */
export const COUNT = `${NOW}
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ms(now))
return redis.call('ZCARD', KEYS[1])`;

/**
 * NEXT_GEN advances the policy generation to the server's time in microseconds (at least one more
 * than before). Daemons cache policy documents by generation (RedisStore.getPolicy); a plain
 * counter could come back to a cached value after a failover to a replica that missed the last
 * increments, with different documents under it; a microsecond time does not come back.
 */
const NEXT_GEN = `local t = redis.call('TIME')
local g = tonumber(t[1]) * 1000000 + tonumber(t[2])
local old = tonumber(redis.call('GET', KEYS[2]) or '0')
if g <= old then g = old + 1 end
redis.call('SET', KEYS[2], string.format('%.0f', g))`;

/** PUT_POLICY KEYS: docs hash, generation. ARGV: id, doc. Create-only. */
export const PUT_POLICY = `
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
${NEXT_GEN}
return 1`;

/**
 * POLICY_READ KEYS: docs hash, generation. ARGV: id, or '' for every document. The documents and
 * the generation they belong to, read atomically: {gen, doc|false} or {gen, id1, doc1, ...}.
 */
export const POLICY_READ = `
local g = tonumber(redis.call('GET', KEYS[2]) or '0')
if ARGV[1] == '' then
  local all = redis.call('HGETALL', KEYS[1])
  table.insert(all, 1, g)
  return all
end
return {g, redis.call('HGET', KEYS[1], ARGV[1])}`;

/** DELETE_POLICY KEYS: docs hash, generation. ARGV: id. */
export const DELETE_POLICY = `
if redis.call('HDEL', KEYS[1], ARGV[1]) == 0 then return 0 end
${NEXT_GEN}
return 1`;

/** HIT KEYS: window counter. ARGV: windowMs. Fixed window shared by the fleet. */
export const HIT = `${HIT_FN}
local c, ttl = hit(KEYS[1], ARGV[1])
return {c, ttl}`;
