/**
 * Test helper: direct `ShmStore` operations on raw byte keys (`group ‖ name`, head `group ‖ 0xFF`), the
 * cheapest real path through the store's index, allocator, journal and history — no codec, no runtime.
 */
import { Worker } from 'node:worker_threads'
import {
  HEAD_MARK,
  HeadRef,
  hashBytes,
  ReadOut,
  type ShmStore,
  ValueTag,
  WriteOp,
} from '../../src/shm/index.js'

const utf8 = new TextEncoder()
const heads = new Map<string, HeadRef>()

/** The head of group `group` (cached per thread). */
export function headOf(group: string): HeadRef {
  let h = heads.get(group)
  if (h === undefined) {
    const g = utf8.encode(group)
    const key = new Uint8Array(g.length + 1)
    key.set(g)
    key[g.length] = HEAD_MARK
    h = new HeadRef(key, hashBytes(key, key.length))
    heads.set(group, h)
  }
  return h
}

/** A write op for `group ‖ name`: a number (inline), bytes, or `undefined` for a delete. */
export function op(group: string, name: string, value: number | Uint8Array | undefined): WriteOp {
  const key = utf8.encode(group + name)
  const w = new WriteOp()
  w.key = key
  w.keyLen = key.length
  w.hash = hashBytes(key, key.length)
  w.head = headOf(group)
  if (value === undefined) w.del = true
  else if (typeof value === 'number') {
    w.tag = ValueTag.INT
    w.num = value
  } else {
    w.tag = ValueTag.BYTES
    w.bytes = value
  }
  return w
}

const meta = new Uint8Array(0)

/** Commits `writes` in one commit; returns the status (0 = OK). */
export function commit(store: ShmStore, ...writes: WriteOp[]): number {
  return store.commit(writes, [], meta)
}

const out = new ReadOut()

/** The value of `group ‖ name`: a number, a copy of its bytes, or undefined when absent. */
export function read(store: ShmStore, group: string, name: string): number | Uint8Array | undefined {
  const key = utf8.encode(group + name)
  if (!store.get(key, key.length, hashBytes(key, key.length), out)) return undefined
  return out.tag === ValueTag.BYTES ? out.bytes!.slice() : out.num
}

/** Bytes of `n` with a checkable pattern: byte i is (seed + i) & 0xff. */
export function pattern(seed: number, n: number): Uint8Array {
  const b = new Uint8Array(n)
  for (let i = 0; i < n; i++) b[i] = (seed + i) & 0xff
  return b
}

/** Whether `b` is a {@link pattern}. */
export function isPattern(b: Uint8Array): boolean {
  if (b.length === 0) return true
  const seed = b[0]!
  for (let i = 1; i < b.length; i++) if (b[i] !== ((seed + i) & 0xff)) return false
  return true
}

const BOOTSTRAP = new URL('../fixtures/state-bootstrap.mjs', import.meta.url)
const STORE_ENTRY = new URL('../fixtures/shm-worker.ts', import.meta.url).href
const STRUCTURES_ENTRY = new URL('../fixtures/shm-structures-worker.ts', import.meta.url).href

/** A worker running `entry` with `data`; `result` settles with its answer (or its death). */
export function startWorker(entry: string, data: Record<string, unknown>) {
  const worker = new Worker(BOOTSTRAP, { workerData: { entry, ...data } })
  const exited = new Promise<number>((resolve) => worker.once('exit', resolve))
  const result = new Promise<any>((resolve, reject) => {
    worker.once('message', (m: { ok: boolean; result?: unknown; error?: string }) =>
      m.ok ? resolve(m.result) : reject(new Error(m.error)),
    )
    worker.once('error', reject)
    worker.once('exit', (code) => reject(new Error(`worker exited with ${code} before answering`)))
  })
  result.catch(() => {})
  return { worker, result, exited }
}

/** Runs one `shm-structures-worker.ts` scenario per job, each on its own thread. */
export function startStructureWorker(scenario: string, params: Record<string, unknown>) {
  return startWorker(STRUCTURES_ENTRY, { scenario, params })
}

/** Runs one `shm-worker.ts` scenario per params entry, each on its own thread; resolves with every result. */
export async function runShm(
  store: ShmStore,
  jobs: { scenario: string; params: Record<string, unknown> }[],
  flags = new Int32Array(new SharedArrayBuffer(16)),
): Promise<any[]> {
  const workers = jobs.map((j) => startWorker(STORE_ENTRY, { handles: store.handles, flags, ...j }))
  try {
    return await Promise.all(workers.map((w) => w.result))
  } finally {
    Atomics.store(flags, 0, 1)
    await Promise.all(workers.map((w) => w.worker.terminate()))
  }
}
