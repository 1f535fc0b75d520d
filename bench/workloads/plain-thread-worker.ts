/**
 * Worker side of the plain ticket threads (`plain-threads.ts`): on a number n it processes n tickets in
 * a plain loop (no agentpool) and answers with n.
 */

import { parentPort, workerData } from 'node:worker_threads'
import { createPlainStore, processTicketPlain } from './ticket-baseline.js'
import { makeTicketBatch } from './ticket-core.js'

const tickets = makeTicketBatch((workerData as { seed: number }).seed, 1024)
const store = createPlainStore()
let cursor = 0

parentPort!.on('message', (n: number) => {
  for (let i = 0; i < n; i++) processTicketPlain(tickets[cursor++ % tickets.length]!, store)
  parentPort!.postMessage(n)
})
parentPort!.postMessage('ready')
