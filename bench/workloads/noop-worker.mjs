/**
 * The baselines' Piscina tasks. `default` does nothing, like the contender's no-op handler; `count` adds
 * one to a shared counter with `Atomics.add`, like the contender's handler doing one `update` of a global
 * key. The counter arrives in `workerData.counter` (an Int32Array on a SharedArrayBuffer).
 */
import { workerData } from 'node:worker_threads'

const counter = workerData?.counter

export default function noop(task) {
  return task
}

export function count(task) {
  Atomics.add(counter, 0, 1)
  return task
}
