/**
 * State churn benchmark (issue 13), both sides from one run:
 *
 * - `churn_end_vs_start`: unique-key churn through `StreamBuffer.write`/`delete` from two threads into a
 *   small store (`maxKeys` 20 000, live set moving between 1 % and 90 % of it, values growing and
 *   shrinking) for a long run; the operations per second in its last second against its first second.
 *   Target ≥ 0.9: nothing wears (no index tombstones pile up, freed memory is reused at any size).
 *
 * Each side's throughput is the median over the ten 100 ms windows of its second. The run also checks
 * that every value read back is whole, and that the store's audit is clean at the end.
 *
 * `CHURN_DEBUG=1` also logs every window's rate.
 *
 * This file is also the worker: a thread started with `workerData.churnBench` runs the churn loop.
 */
import { isMainThread, Worker, workerData } from 'node:worker_threads'
import { SharedBufferManager, type StateHandles } from '../src/state/index.js'
import { formatHz, makeEntry, median, percentile } from './harness/index.js'
import type { BenchSide, BenchSuite } from './harness/types.js'

const THREADS = 2
const MAX_KEYS = 20_000
const WINDOW_MS = 100
/**
 * counters[0]: stop flag; counters[1 + t]: operations thread t completed; counters[3]: bad values read;
 * counters[4]: go flag; counters[5]: threads warmed up. Each thread first churns a separate warm-up store
 * for `warmupOps` operations (JIT, heap and caches warm, so the measured first second is not a warm-up),
 * then waits for the go flag and churns the measured store.
 */
interface ChurnWorkerData {
  churnBench: true
  warmup: StateHandles
  handles: StateHandles
  counters: Int32Array
  thread: number
  warmupOps: number
}

function churnLoop(d: ChurnWorkerData): void {
  const c = d.counters
  let warm = 0
  churn(d, SharedBufferManager.attach(d.warmup), () => ++warm > d.warmupOps, false)
  Atomics.add(c, 5, 1)
  Atomics.wait(c, 4, 0)
  churn(d, SharedBufferManager.attach(d.handles), () => Atomics.load(c, 0) !== 0, true)
}

/** Churns `mgr` until `done()`; counts operations and bad reads when `count`, and deletes what is left. */
function churn(d: ChurnWorkerData, mgr: SharedBufferManager, done: () => boolean, count: boolean): void {
  const buf = mgr.createBuffer('churn', `s${d.thread}`, 'shared')
  const g = { scope: 'stream' as const }
  const c = d.counters
  let x = 0x9e3779b9 ^ (d.thread + 1)
  const rnd = () => {
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
    return (x >>> 0) / 4294967296
  }
  const perThread = MAX_KEYS / THREADS
  const live: number[] = []
  let next = 0
  let target = 1
  let ops = 0
  while (!done()) {
    // The live target moves between 1 % and 90 % of this thread's share every 5 000 operations.
    if (ops % 5_000 === 0) target = Math.max(1, Math.floor(perThread * (0.01 + 0.89 * rnd())))
    if (live.length < target) {
      const k = next++
      // Values from 8 to ~2 000 bytes: growing and shrinking blocks.
      buf.write(`t${k}`, { k, body: 'v'.repeat(k % 2_000) }, g)
      live.push(k)
    } else {
      const i = Math.floor(rnd() * live.length)
      const k = live[i]!
      live[i] = live[live.length - 1]!
      live.pop()
      const v = buf.read<{ k: number; body: string }>(`t${k}`, g)
      if (count && (v?.k !== k || v.body.length !== k % 2_000)) Atomics.add(c, 3, 1)
      buf.delete(`t${k}`, g)
    }
    if (++ops % 64 === 0 && count) Atomics.add(c, 1 + d.thread, 64)
  }
  for (const k of live) buf.delete(`t${k}`, g)
  if (count) Atomics.add(c, 1 + d.thread, ops % 64)
}

if (!isMainThread && (workerData as ChurnWorkerData | undefined)?.churnBench)
  churnLoop(workerData as ChurnWorkerData)

function startWorker(data: ChurnWorkerData): Worker {
  const boot = `import('tsx/esm/api').then(({ register }) => { register(); return import(${JSON.stringify(import.meta.url)}) })`
  return new Worker(boot, { eval: true, workerData: data })
}

/** One second's side: the median and the 99th percentile (as ms per operation) of its windows' rates. */
function side(name: string, rates: number[]): BenchSide {
  const slowest = percentile(
    rates.map((r) => 1000 / Math.max(r, 1e-9)),
    99,
  )
  return { name, hz: median(rates), p99Ms: slowest }
}

const suite: BenchSuite = {
  name: 'churn',
  async run({ quick, log }) {
    const seconds = quick ? 8 : 30
    const store = { maxBytes: 64 << 20, maxKeys: MAX_KEYS, historySize: 100 }
    const warmup = SharedBufferManager.create(store)
    const mgr = SharedBufferManager.create(store)
    const counters = new Int32Array(new SharedArrayBuffer(32))
    const total = () => Atomics.load(counters, 1) + Atomics.load(counters, 2)
    const exited: Promise<number>[] = []
    for (let t = 0; t < THREADS; t++) {
      const w = startWorker({
        churnBench: true,
        warmup: warmup.handles,
        handles: mgr.handles,
        counters,
        thread: t,
        warmupOps: quick ? 150_000 : 400_000,
      })
      exited.push(
        new Promise((resolve, reject) => {
          w.once('error', reject)
          w.once('exit', resolve)
        }),
      )
    }
    // Warm up (the same churn on another store), then switch both threads to the measured store and sample
    // the operation count every window.
    while (Atomics.load(counters, 5) < THREADS) await new Promise((r) => setTimeout(r, 10))
    Atomics.store(counters, 4, 1)
    Atomics.notify(counters, 4)
    while (total() === 0) await new Promise((r) => setTimeout(r, 1))
    const rates: number[] = []
    let last = total()
    let lastAt = performance.now()
    const windows = (seconds * 1000) / WINDOW_MS
    while (rates.length < windows) {
      await new Promise((r) => setTimeout(r, WINDOW_MS))
      const now = performance.now()
      const n = total()
      rates.push(((n - last) * 1000) / (now - lastAt))
      last = n
      lastAt = now
    }
    Atomics.store(counters, 0, 1)
    await Promise.all(exited)
    if (process.env.CHURN_DEBUG) log(`churn windows: ${rates.map((r) => Math.round(r)).join(' ')}`)
    const perSecond = 1000 / WINDOW_MS
    const first = rates.slice(0, perSecond)
    const end = rates.slice(-perSecond)
    const s = mgr.stats()
    const problems = mgr.engine.audit()
    log(
      `churn: ${total()} write/delete operations in ${seconds} s from ${THREADS} threads; first second ` +
        `${formatHz(median(first))} ops/s, last second ${formatHz(median(end))} ops/s; ` +
        `after: ${s.keys} keys, ${s.bytesUsed} bytes used, ${s.indexSlotsInUse} index slots in use; audit ${problems.length === 0 ? 'clean' : problems.join('; ')}`,
    )
    if (Atomics.load(counters, 3) !== 0) throw new Error(`churn read ${counters[3]} wrong values`)
    if (problems.length > 0 || s.keys !== 0 || s.bytesUsed !== 0)
      throw new Error('churn left the store inconsistent')
    return [
      makeEntry(
        { name: 'churn_end_vs_start', unit: 'write/delete ops/s', target: 0.9 },
        side(`unique-key churn, first second of ${seconds} s, ${THREADS} threads`, first),
        side(`unique-key churn, last second of ${seconds} s, ${THREADS} threads`, end),
      ),
    ]
  },
}

export default suite
