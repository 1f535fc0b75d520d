/**
 * The run log's writer thread: the only place the log is written, so a slow disk never stalls the
 * runtime's main thread. It commits each batch of operations the main thread sends in one transaction,
 * in the order sent, and answers each batch once it is committed.
 *
 * @module
 */
import { parentPort, workerData } from 'node:worker_threads'
import { DurabilityError, serializeError } from '../errors.js'
import type { WriterReply, WriterRequest } from '../protocol.js'
import { decodeBatch } from './codec.js'
import { describe, LogStore } from './log-store.js'

/** What the main thread hands the writer at start. */
export interface WriterSetup {
  path: string
  synchronous: 'normal' | 'full'
  retainRunsMs: number
}

/** How often finished runs past their retention are deleted. */
const PRUNE_EVERY_MS = 60_000

const port = parentPort!
const setup = (workerData as { log: WriterSetup }).log
const reply = (message: WriterReply): void => port.postMessage(message)

let store: LogStore | undefined
try {
  store = LogStore.open(setup.path, setup.synchronous)
  store.prune(setup.retainRunsMs)
  reply({ kind: 'ready' })
} catch (err) {
  const problem = err instanceof DurabilityError ? err.message : describe(err, 'the file')
  reply({ kind: 'open_failed', problem, error: serializeError(err) })
}

let lastPrune = Date.now()

port.on('message', (m: WriterRequest) => {
  const log = store
  if (log === undefined) return
  switch (m.kind) {
    case 'ops':
      try {
        log.apply(decodeBatch(m.bytes))
        // Nothing refers to the batch's memory any more: back to the main thread, to be written again.
        const bytes = m.bytes.buffer as ArrayBuffer
        port.postMessage({ kind: 'committed', batch: m.batch, bytes } satisfies WriterReply, [bytes])
      } catch (err) {
        reply({
          kind: 'write_failed',
          batch: m.batch,
          problem: describe(err, 'the file'),
          error: serializeError(err),
        })
      }
      if (Date.now() - lastPrune > PRUNE_EVERY_MS) {
        lastPrune = Date.now()
        try {
          log.prune(setup.retainRunsMs)
        } catch {
          // A failed prune loses nothing; the next batch's write reports a file that went bad.
        }
      }
      break
    case 'recover':
      reply({ kind: 'recovered', request: m.request, recovery: log.recover() })
      break
    case 'lookup':
      reply({ kind: 'found', request: m.request, run: log.lookup(m.executionId) })
      break
    case 'close':
      log.close()
      store = undefined
      reply({ kind: 'closed', request: m.request })
      break
  }
})
