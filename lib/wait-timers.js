'use strict'
// Timers for `timeout` on a queued call, one per deadline bucket rather than
// one per waiter: a burst of waiters with the same timeout shares a handful
// of Node timers, and a grant only decrements its bucket's count (the last
// one out clears the timer) instead of unlinking a timer of its own.
//
// Timing kept: a waiter times out no earlier than its timeout (measured on
// performance.now(), the monotonic clock); it may fire up to one bucket
// (BUCKET_MS) later than a setTimeout of its own would. A bucket that fires
// early for one of its waiters (Node's timer clock counts whole
// milliseconds) re-arms that waiter for the rest of its wait.
//
// While node:test's mock timers (or any other replacement) stand in for the
// global setTimeout, every waiter gets a timer of its own from it, exactly as
// before: a mocked clock is not performance.now()'s, so a bucket cannot be
// shared by deadline there.

const { performance } = require('node:perf_hooks')

const realSetTimeout = setTimeout
const realClearTimeout = clearTimeout
const BUCKET_MS = 1

/** Waiters whose deadlines fall in one BUCKET_MS slot, behind one Node timer. */
class Bucket {
  constructor(at) {
    /** end of the slot, performance.now() ms: the timer fires no earlier */
    this.at = at
    this.tasks = []
    this.deadlines = []
    this.fns = []
    /** armed waiters not yet cleared */
    this.live = 0
    this.timer = null
  }
}

/** slot end -> Bucket */
const buckets = new Map()
/** the last bucket used: a burst of waiters lands in the same one */
let last = null

/**
 * Calls `fn(task)` once `timeout` ms have passed, unless clearWait() is
 * called with the returned handle first. `task.extra.timer` must hold the
 * handle while armed (a bucket checks it to skip cleared waiters).
 */
function armWait(fn, timeout, task) {
  if (setTimeout !== realSetTimeout) return setTimeout(fn, timeout, task)
  const deadline = performance.now() + timeout
  return join(fn, deadline, task)
}

function join(fn, deadline, task) {
  const at = Math.ceil(deadline / BUCKET_MS) * BUCKET_MS
  let bucket = last !== null && last.at === at ? last : buckets.get(at)
  if (bucket === undefined) {
    bucket = new Bucket(at)
    buckets.set(at, bucket)
    bucket.timer = realSetTimeout(fire, Math.max(1, Math.ceil(at - performance.now())), bucket)
  }
  last = bucket
  bucket.tasks.push(task)
  bucket.deadlines.push(deadline)
  bucket.fns.push(fn)
  bucket.live++
  return bucket
}

/** Disarms a handle armWait() returned. */
function clearWait(handle) {
  if (!(handle instanceof Bucket)) {
    clearTimeout(handle)
    return
  }
  if (--handle.live === 0) {
    realClearTimeout(handle.timer)
    forget(handle)
  }
}

function forget(bucket) {
  if (buckets.get(bucket.at) === bucket) buckets.delete(bucket.at)
  if (last === bucket) last = null
}

function fire(bucket) {
  forget(bucket)
  const { tasks, deadlines, fns } = bucket
  const now = performance.now()
  for (let i = 0; i < tasks.length; i++) {
    const task = tasks[i]
    // Cleared (granted, left the queue) since: its handle is gone.
    if (task.extra === null || task.extra.timer !== bucket) continue
    if (now < deadlines[i]) task.extra.timer = join(fns[i], deadlines[i], task)
    else fns[i](task)
  }
}

module.exports = { armWait, clearWait, BUCKET_MS }
