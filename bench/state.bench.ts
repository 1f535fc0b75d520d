/**
 * Shared-state benchmarks (issue 4), both sides on the same worker threads in the same run:
 *
 * - `update_vs_atomics`: `StreamBuffer.update()` of one hot integer key from every thread, against a raw
 *   Atomics mutex (CAS spin) protecting a plain increment of one SharedArrayBuffer cell. Target ≥ 0.15.
 * - `keys_1m_vs_1k`: random `read` + `write` pairs with a million live keys against a thousand (same
 *   store options, same threads). Target ≥ 0.8: throughput is flat in the number of keys.
 *
 * Also logged (not targets): uncontended `read` of a small value per thread, bytes per stored key, and
 * the read+write pairs of one thread alone at both sizes.
 * `STATE_BENCH_LARGE=<n>` replaces the million keys by `n` for a fast sanity run.
 *
 * This file is also the worker: a thread started with `workerData.stateBench` runs the command loop.
 */
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads'
import { SharedBufferManager, type StateHandles, type StreamBuffer } from '../src/state/index.js'
import { compareSideBySide, formatHz } from './harness/index.js'
import type { BenchEntry, BenchSuite } from './harness/types.js'

const THREADS = 2
const SMALL_KEYS = 1_000
const LARGE_KEYS = Number(process.env.STATE_BENCH_LARGE ?? 1_000_000)
const STORE = { maxBytes: 192 << 20, maxKeys: LARGE_KEYS + 1_024, historySize: 1_000 }
const OPS_PER_ITERATION = 20_000

type Mode = 'atomics' | 'update' | 'rw-small' | 'rw-large' | 'read' | 'fill-small' | 'fill-large'
interface Command {
  mode: Mode
  n: number
  part?: number
}
interface BenchWorkerData {
  stateBench: true
  small: StateHandles
  large: StateHandles
  mutex: Int32Array
}

/** xorshift32: the same key sequence in every run. */
function xorshift(seed: number): () => number {
  let x = seed | 0 || 1
  return () => {
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
    return x >>> 0
  }
}

function workerLoop(d: BenchWorkerData): void {
  const small = SharedBufferManager.attach(d.small)
  const large = SharedBufferManager.attach(d.large)
  const bufSmall = small.createBuffer('bench', 'bench', 'shared')
  const bufLarge = large.createBuffer('bench', 'bench', 'shared')
  const m = d.mutex
  const next = xorshift(0x9e3779b9 ^ (d.mutex.length + Math.floor(Math.random() * 1e9)))
  const g = { scope: 'global' as const }
  const inc = (c: number | undefined) => (c ?? 0) + 1
  const fill = (buf: StreamBuffer, keys: number, part: number) => {
    for (let i = part; i < keys; i += THREADS) buf.write(`k${i}`, i, g)
  }
  const readWrite = (buf: StreamBuffer, keys: number, n: number) => {
    let sum = 0
    for (let i = 0; i < n; i++) {
      sum += buf.read<number>(`k${next() % keys}`, g) ?? 0
      buf.write(`k${next() % keys}`, i, g)
    }
    return sum
  }
  parentPort!.on('message', (c: Command) => {
    switch (c.mode) {
      case 'atomics':
        for (let i = 0; i < c.n; i++) {
          // Raw mutex: CAS 0 → 1 spin, plain increment of cell 1, release store.
          while (Atomics.compareExchange(m, 0, 0, 1) !== 0);
          m[1]!++
          Atomics.store(m, 0, 0)
        }
        break
      case 'update':
        for (let i = 0; i < c.n; i++) bufSmall.update('hot', inc, g)
        break
      case 'rw-small':
        readWrite(bufSmall, SMALL_KEYS, c.n)
        break
      case 'rw-large':
        readWrite(bufLarge, LARGE_KEYS, c.n)
        break
      case 'read': {
        let s = 0
        for (let i = 0; i < c.n; i++) s += bufSmall.read<number>('k1', g)!
        if (s < 0) throw new Error('unreachable')
        break
      }
      case 'fill-small':
        fill(bufSmall, SMALL_KEYS, c.part!)
        break
      case 'fill-large':
        fill(bufLarge, LARGE_KEYS, c.part!)
        break
    }
    parentPort!.postMessage(c.mode)
  })
}

if (!isMainThread && (workerData as BenchWorkerData | undefined)?.stateBench)
  workerLoop(workerData as BenchWorkerData)

/** A TypeScript worker running this file: tsx is registered inside the thread first. */
function startWorker(data: BenchWorkerData): Worker {
  const boot = `import('tsx/esm/api').then(({ register }) => { register(); return import(${JSON.stringify(import.meta.url)}) })`
  return new Worker(boot, { eval: true, workerData: data })
}

function rig() {
  const small = SharedBufferManager.create(STORE)
  const large = SharedBufferManager.create(STORE)
  const mutex = new Int32Array(new SharedArrayBuffer(8))
  const workers = Array.from({ length: THREADS }, () =>
    startWorker({ stateBench: true, small: small.handles, large: large.handles, mutex }),
  )
  // A worker answers its commands in order: one FIFO of waiters per worker.
  const pending = new Map<Worker, { resolve: () => void; reject: (e: unknown) => void }[]>()
  for (const w of workers) {
    pending.set(w, [])
    w.on('message', () => pending.get(w)!.shift()?.resolve())
    w.on('error', (e) => {
      for (const p of pending.get(w)!.splice(0)) p.reject(e)
    })
  }
  const send = (w: Worker, c: Command) =>
    new Promise<void>((resolve, reject) => {
      pending.get(w)!.push({ resolve, reject })
      w.postMessage(c)
    })
  return {
    small,
    large,
    mutex,
    /** Operations sent per mode, over all threads. */
    sent: new Map<Mode, number>(),
    all(mode: Mode, n: number) {
      this.sent.set(mode, (this.sent.get(mode) ?? 0) + n * workers.length)
      return Promise.all(workers.map((w, part) => send(w, { mode, n, part })))
    },
    one: (mode: Mode, n: number) => send(workers[0]!, { mode, n }),
    close: () => Promise.all(workers.map((w) => w.terminate())),
  }
}

// Each side's `fn` is an `async` function: tinybench probes a plain function by calling it once without
// awaiting, which would leave a command in flight and skew both the timing and the lost-update check.
const suite: BenchSuite = {
  name: 'state',
  async run({ quick, log }) {
    const r = rig()
    try {
      log(`state: filling ${SMALL_KEYS} and ${LARGE_KEYS} keys from ${THREADS} threads`)
      await r.all('fill-small', 0)
      const t0 = performance.now()
      await r.all('fill-large', 0)
      log(`state: ${LARGE_KEYS} keys written in ${((performance.now() - t0) / 1000).toFixed(1)} s`)
      const s = r.large.stats()
      const indexBytes = r.large.handles.store.index.byteLength
      log(
        `state: bytes per stored key ${((s.bytesUsed + indexBytes) / s.keys).toFixed(1)} ` +
          `(key+value blocks ${(s.bytesUsed / s.keys).toFixed(1)}, index ${(indexBytes / s.keys).toFixed(1)}) at ${s.keys} keys`,
      )
      const results: BenchEntry[] = []
      const n = OPS_PER_ITERATION
      results.push(
        await compareSideBySide({
          name: 'update_vs_atomics',
          unit: 'increments/s',
          target: 0.15,
          quick,
          log,
          baseline: {
            name: `raw Atomics mutex increment, ${THREADS} threads`,
            fn: async () => {
              await r.all('atomics', n)
            },
            opsPerIteration: THREADS * n,
          },
          contender: {
            name: `StreamBuffer.update() of one hot key, ${THREADS} threads`,
            fn: async () => {
              await r.all('update', n)
            },
            opsPerIteration: THREADS * n,
          },
        }),
      )
      const hot = r.small.createBuffer('audit', 'bench', 'shared').read<number>('hot', { scope: 'global' })
      const updates = r.sent.get('update') ?? 0
      if (hot !== updates) throw new Error(`update() lost increments: counter ${hot}, updates ${updates}`)
      log(`state: hot counter ${hot} = updates issued ${updates} (none lost; mutex cell ${r.mutex[1]})`)
      // Touch both stores' index and value pages once, so neither side pays first-touch faults in round 1.
      await r.all('rw-small', 10 * n)
      await r.all('rw-large', 10 * n)
      results.push(
        await compareSideBySide({
          name: 'keys_1m_vs_1k',
          unit: 'read+write pairs/s',
          target: 0.8,
          quick,
          log,
          baseline: {
            name: `random read+write, ${SMALL_KEYS} live keys, ${THREADS} threads`,
            fn: async () => {
              await r.all('rw-small', n)
            },
            opsPerIteration: THREADS * n,
          },
          contender: {
            name: `random read+write, ${LARGE_KEYS} live keys, ${THREADS} threads`,
            fn: async () => {
              await r.all('rw-large', n)
            },
            opsPerIteration: THREADS * n,
          },
        }),
      )
      // One thread alone (no lock contention): separates the memory-hierarchy cost of a big index from
      // the cost of two threads sharing the commit lock.
      for (const mode of ['rw-small', 'rw-large'] as const) {
        const t = performance.now()
        await r.one(mode, 100_000)
        log(
          `state: one thread, ${mode}: ${formatHz(100_000 / ((performance.now() - t) / 1000))} read+write pairs/s`,
        )
      }
      const reads = 200_000
      const t1 = performance.now()
      await r.one('read', reads)
      log(
        `state: uncontended read of a small value, one thread: ${formatHz(reads / ((performance.now() - t1) / 1000))} reads/s`,
      )
      return results
    } finally {
      await r.close()
    }
  },
}

export default suite
