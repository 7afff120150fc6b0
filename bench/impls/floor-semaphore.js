'use strict'
// The semaphore floor: the least a keyed, weighted, strictly FIFO semaphore
// with keyed-lock's promise-mode acquire(key, fn, { weight }) has to do in
// plain JS; `impls/floor.js` opens one for a lock created with `permits`
// (the S workloads). `{ mode: 'exclusive' }` takes every permit. Per key: permits out and an
// array queue with a head index; a waiting head blocks lighter requests
// behind it (as keyed-lock and async-mutex do); fn runs synchronously on a
// grant and the release comes in the microtask after it settles.

class KeyState {
  constructor() {
    this.out = 0
    this.queue = []
    this.head = 0
  }
}

class FloorSemaphore {
  constructor(permits) {
    this.permits = permits
    this.keys = new Map()
  }

  acquire(key, fn, opts) {
    const weight = opts === undefined ? 1 : opts.mode === 'exclusive' ? this.permits : opts.weight || 1
    let state = this.keys.get(key)
    if (state === undefined) this.keys.set(key, (state = new KeyState()))
    return new Promise((resolve, reject) => {
      const task = { fn, weight, resolve, reject }
      if (state.head === state.queue.length && state.out + weight <= this.permits) this.run(key, state, task)
      else state.queue.push(task)
    })
  }

  run(key, state, task) {
    state.out += task.weight
    let value
    try {
      value = task.fn()
    } catch (err) {
      value = Promise.reject(err)
    }
    Promise.resolve(value).then(
      (ret) => {
        this.release(key, state, task.weight)
        task.resolve(ret)
      },
      (err) => {
        this.release(key, state, task.weight)
        task.reject(err)
      },
    )
  }

  release(key, state, weight) {
    state.out -= weight
    const q = state.queue
    while (state.head < q.length && state.out + q[state.head].weight <= this.permits) {
      const next = q[state.head]
      q[state.head++] = undefined
      this.run(key, state, next)
    }
    if (state.head === q.length) {
      q.length = 0
      state.head = 0
      if (state.out === 0) this.keys.delete(key)
    }
  }
}

module.exports = { FloorSemaphore }
