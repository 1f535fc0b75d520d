/**
 * The ticket loop on N plain worker threads, without agentpool: what a user would write to use every
 * core, and the baseline of `tickets_vs_threads`. Each thread keeps its own counter and tally on plain
 * Maps (`ticket-baseline.ts`), so the threads never touch each other's memory: the ceiling of any pool.
 */

import { once } from 'node:events'
import { fileURLToPath } from 'node:url'
import { Worker } from 'node:worker_threads'

const PROBE_WORKER = new URL('./plain-thread-worker.ts', import.meta.url).href
/** The pool's plain-JavaScript bootstrap registers tsx inside the thread, then imports the entry. */
const BOOTSTRAP = fileURLToPath(new URL('../../workers/bootstrap.mjs', import.meta.url))

/** N plain threads running the ticket loop on command. */
export interface PlainTicketThreads {
  /** Processes `tickets` tickets split evenly over the threads; resolves when every thread is done. */
  process(tickets: number): Promise<void>
  /** Tickets processed so far, over all threads. */
  readonly processed: number
  close(): Promise<void>
}

/** Starts `threads` plain worker threads running the ticket loop on tickets generated from `seed`. */
export async function startPlainTicketThreads(threads: number, seed: number): Promise<PlainTicketThreads> {
  const workers = Array.from(
    { length: threads },
    () =>
      new Worker(BOOTSTRAP, { workerData: { seed, bootstrap: { entry: PROBE_WORKER, typescript: true } } }),
  )
  await Promise.all(workers.map((w) => once(w, 'message')))
  let processed = 0
  return {
    async process(tickets) {
      const share = Math.ceil(tickets / threads)
      const answers = workers.map((w) => once(w, 'message') as Promise<[number]>)
      for (const [i, w] of workers.entries()) w.postMessage(Math.max(0, Math.min(share, tickets - i * share)))
      processed += (await Promise.all(answers)).reduce((sum, [n]) => sum + n, 0)
    },
    get processed() {
      return processed
    },
    close: async () => {
      await Promise.all(workers.map((w) => w.terminate()))
    },
  }
}
