/**
 * Worker side of the parallelism probe: on each `{ durationMs }` message, processes tickets in a plain
 * loop (no agentpool) for that long and answers with how many it finished.
 */

import { parentPort, workerData } from 'node:worker_threads'
import { createPlainStore, processTicketPlain } from './ticket-baseline.js'
import { makeTicketBatch } from './ticket-core.js'

const tickets = makeTicketBatch((workerData as { seed: number }).seed, 256)
const store = createPlainStore()

parentPort!.on('message', ({ durationMs }: { durationMs: number }) => {
  const end = performance.now() + durationMs
  let done = 0
  while (performance.now() < end) processTicketPlain(tickets[done++ % tickets.length]!, store)
  parentPort!.postMessage(done)
})
parentPort!.postMessage('ready')
