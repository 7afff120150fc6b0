'use strict'
// The Redis key names of a lock, as docs/redis-keys.md specifies them (and
// src/redis/keys.rs builds them), for tests that look into Redis. Not a
// test file. redis-hardening.test.js checks it against the native encoder.

const escape = (text, special) => text.replace(/[^]/g, (c) => (c === '%' || special.includes(c) ? '%' + c.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0') : c))

/** The tag Redis Cluster finds in `text` alone, or null. */
function userTag(text) {
  const open = text.indexOf('{')
  if (open < 0) return null
  const close = text.indexOf('}', open + 1)
  return close > open + 1 ? text.slice(open + 1, close) : null
}

/** Redis key of `part` ('l' lease, 'm' meta, 'q' queue, 'w' waiters) of lock (prefix, space, key). */
function lockKey(prefix, space, key, part) {
  const id = escape(space, ':') + ':' + key
  const p = escape(prefix, '{')
  const tag = userTag(space) ?? userTag(key)
  return tag !== null ? `${p}:{${tag}}:${part}:${id}` : `${p}:{${escape(id, '}')}}:${part}`
}

/** [lease, meta, queue, waiters] of a lock: the KEYS order of the scripts. */
const lockKeys = (prefix, space, key) => ['l', 'm', 'q', 'w'].map((part) => lockKey(prefix, space, key, part))

/** The ticket counter of a single Redis. */
const ticketKey = (prefix) => escape(prefix, '{') + ':tkt'

const LUA = require('node:path').join(__dirname, '..', 'src', 'redis', 'lua')
const lua = (name) => require('node:fs').readFileSync(require('node:path').join(LUA, name + '.lua'), 'utf8')

/**
 * The text of script `name` as src/redis/scripts.rs joins it: sibling.lua,
 * then for ACQUIRE and RELEASE their fast path, then common.lua, then the
 * script's own file; INSPECT stands alone.
 */
function scriptText(name) {
  if (name === 'inspect') return lua(name)
  const fast = name === 'acquire' || name === 'release' ? lua(name + '_fast') + '\n' : ''
  return lua('sibling') + '\n' + fast + lua('common') + '\n' + lua(name)
}

module.exports = { lockKey, lockKeys, ticketKey, userTag, scriptText }
