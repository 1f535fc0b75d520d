/**
 * The run log's writer thread: the only place the log is written, so a slow disk never stalls the
 * runtime's main thread. It commits each batch of operations the main thread sends in one transaction,
 * in the order sent, and answers each batch once it is committed.
 *
 * On Linux it runs at a lower scheduling priority than the runtime's own threads ({@link WRITER_NICE}).
 * A batch arrives as a message, and the thread it wakes, having slept, would otherwise take the core of
 * the thread that sent it: the main thread, whose event loop admits, dispatches and finishes every
 * execution, stalled for the whole commit, every commit. Lowered, the writer runs when a core is free or
 * its fair share comes round; batches grow meanwhile, and each commit is shared by more operations. It
 * still gets a share of the CPU however busy the pool is, so acknowledgements are delayed, never starved.
 *
 * @module
 */
import { readlinkSync } from 'node:fs'
import { getPriority, setPriority } from 'node:os'
import { parentPort, workerData } from 'node:worker_threads'
import { DurabilityError, serializeError } from '../errors.js'
import type { WriterReply, WriterRequest } from '../protocol.js'
import { decodeBatch } from './codec.js'
import { type CompactionSetup, Compactor } from './compaction.js'
import { describe, LogStore } from './log-store.js'

/** What the main thread hands the writer at start. */
export interface WriterSetup {
  path: string
  synchronous: 'normal' | 'full'
  retainRunsMs: number
  compaction: CompactionSetup
}

/**
 * How much lower than its process the writer thread's priority is (a nice value: the process's plus
 * this, at most 19). At +5 a busy core's CPU is shared about 1 : 3 between the writer and a thread at
 * the process's priority.
 */
const WRITER_NICE = 5

/**
 * Lowers this thread's priority by {@link WRITER_NICE} (Linux: a thread is a task with its own nice
 * value, addressed by its thread id). Elsewhere, or where it is not allowed, the thread keeps its priority.
 */
function lowerPriority(): void {
  try {
    const tid = Number(readlinkSync('/proc/thread-self').split('/').pop())
    if (Number.isInteger(tid) && tid > 0) setPriority(tid, Math.min(19, getPriority(tid) + WRITER_NICE))
  } catch {
    // No /proc/thread-self (not Linux) or not permitted: the default priority is correct, only slower.
  }
}

/** How often finished runs past their retention are deleted. */
const PRUNE_EVERY_MS = 60_000

const port = parentPort!
const setup = (workerData as { log: WriterSetup }).log
const reply = (message: WriterReply): void => port.postMessage(message)

lowerPriority()

let store: LogStore | undefined
let compactor: Compactor | undefined
try {
  store = LogStore.open(setup.path, setup.synchronous)
  store.prune(setup.retainRunsMs)
  compactor = new Compactor(store, setup.compaction)
  reply({ kind: 'ready' })
} catch (err) {
  const problem = err instanceof DurabilityError ? err.message : describe(err, 'the file')
  reply({ kind: 'open_failed', problem, error: serializeError(err) })
}

let lastPrune = Date.now()
let compacting: NodeJS.Immediate | undefined

/** Runs compaction steps between commits while one is due (see `compaction.ts`). */
function compactLater(): void {
  if (compacting !== undefined || compactor === undefined || !compactor.due) return
  compacting = setImmediate(() => {
    compacting = undefined
    try {
      if (compactor?.step()) compactLater()
    } catch {
      // Compaction saves replay time and space, nothing more: a log it cannot compact is still whole. It is
      // not tried again in this process; a snapshot this version cannot read is reported by the next start.
      compactor = undefined
    }
  })
}
compactLater()

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
        compactLater()
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
      if (compacting !== undefined) clearImmediate(compacting)
      try {
        // A restart after a clean stop then replays nothing.
        compactor?.finish()
      } catch {
        // As in compactLater: the log is whole without it.
      }
      log.close()
      store = undefined
      reply({ kind: 'closed', request: m.request })
      break
  }
})
