/**
 * How much parallelism the machine gives this process right now: the ticket loop on N plain worker
 * threads at once against the same loop on one, without agentpool. On an idle machine with N free cores
 * the ratio is close to N; on a machine shared with other work it is what any thread pool could reach at
 * best, which puts `tickets_vs_single_thread` in context.
 */

import { once } from 'node:events'
import { fileURLToPath } from 'node:url'
import { Worker } from 'node:worker_threads'

const PROBE_WORKER = new URL('./probe-worker.ts', import.meta.url).href
/** The pool's plain-JavaScript bootstrap registers tsx inside the thread, then imports the entry. */
const BOOTSTRAP = fileURLToPath(new URL('../../workers/bootstrap.mjs', import.meta.url))

async function startWorkers(n: number, seed: number): Promise<Worker[]> {
  const workers = Array.from(
    { length: n },
    () =>
      new Worker(BOOTSTRAP, { workerData: { seed, bootstrap: { entry: PROBE_WORKER, typescript: true } } }),
  )
  await Promise.all(workers.map((w) => once(w, 'message')))
  return workers
}

async function ticketsPerSecond(workers: Worker[], durationMs: number): Promise<number> {
  const counts = workers.map((w) => once(w, 'message') as Promise<[number]>)
  for (const w of workers) w.postMessage({ durationMs })
  const done = await Promise.all(counts)
  return (done.reduce((sum, [n]) => sum + n, 0) * 1000) / durationMs
}

/** Tickets/s on `threads` plain threads over tickets/s on one, measured `rounds` times alternately; the median ratio. */
export async function probeParallelism(threads: number, durationMs: number, rounds: number): Promise<number> {
  const workers = await startWorkers(threads, 1)
  try {
    const ratios: number[] = []
    for (let r = 0; r < rounds; r++) {
      const one = await ticketsPerSecond(workers.slice(0, 1), durationMs)
      const all = await ticketsPerSecond(workers, durationMs)
      ratios.push(all / one)
    }
    ratios.sort((a, b) => a - b)
    return ratios[ratios.length >> 1]!
  } finally {
    await Promise.all(workers.map((w) => w.terminate()))
  }
}
