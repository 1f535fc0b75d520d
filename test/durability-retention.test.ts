import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { afterEach, describe, expect, it } from 'vitest'
import { decodeBatch, encodeBatch, packSnapshot } from '../src/durability/codec.js'
import { LogStore } from '../src/durability/index.js'
import type { LogOp } from '../src/protocol.js'
import { admitOp as admit, endOp as end } from './helpers/durable.js'

const cleanups: (() => void)[] = []
afterEach(() => {
  for (const c of cleanups.splice(0).reverse()) c()
})

function openStore(path = logPath()): LogStore {
  const store = LogStore.open(path, 'normal')
  cleanups.push(() => store.close())
  return store
}

function logPath(): string {
  const dir = mkdtempSync(join(tmpdir(), 'agentpool-retention-'))
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }))
  return join(dir, 'runs.db')
}

/** A decision record of `executionId`, as the runtime journals it. */
function record(executionId: string, n: number): LogOp {
  return { op: 'record', executionId, record: { k: 'decision', executionId, n } }
}

/** How many rows the records table holds. */
function recordRows(path: string): number {
  const db = new Database(path, { readonly: true })
  try {
    return (db.prepare('SELECT count(*) AS n FROM records').get() as { n: number }).n
  } finally {
    db.close()
  }
}

describe('durable runs: retention', () => {
  it('deletes runs finished before the retention window and expired keys, and keeps unfinished and recent runs', () => {
    const store = openStore()
    const ops: LogOp[] = [
      admit('old-done', 1_000, { idempotency: { key: 'api\u0000k-old', expiresAt: 3_000 } }),
      admit('old-running', 1_500),
      { op: 'start', id: 'old-running', attempt: 1, startedAt: 1_600 },
      admit('old-queued', 1_700),
      admit('old-finished-late', 2_500, { idempotency: { key: 'api\u0000k-new', expiresAt: 20_000 } }),
      end('old-done', 1_100, 2_000),
      admit('also-old-done', 3_000),
      end('also-old-done', 3_100, 4_000),
      end('old-finished-late', 2_600, 9_000),
      admit('recent', 9_500),
      end('recent', 9_550, 9_600),
    ]
    store.apply(decodeBatch(encodeBatch(ops)))

    store.prune(5_000, 10_000)

    expect(
      store
        .list()
        .map((r) => r.id)
        .sort(),
    ).toEqual(['old-finished-late', 'old-queued', 'old-running', 'recent'])
    expect(store.recover(10_000).idempotency.map((k) => k.key)).toEqual(['api\u0000k-new'])
    expect(store.recover(10_000).unfinished.map((r) => r.id)).toEqual(['old-running', 'old-queued'])
  })

  it('keeps every finished run younger than the window however runs interleave', () => {
    const store = openStore()
    const ops: LogOp[] = []
    // Admitted in order, finished out of order: long runs admitted early end after short ones admitted later.
    for (let i = 0; i < 200; i++) ops.push(admit(`r${i}`, i * 10))
    for (let i = 0; i < 200; i++) ops.push(end(`r${i}`, i * 10, i * 10 + (i % 7) * 300))
    store.apply(decodeBatch(encodeBatch(ops)))

    store.prune(1_000, 2_500)

    const kept = new Set(store.list({ limit: 1_000 }).map((r) => r.id))
    for (let i = 0; i < 200; i++) {
      const completedAt = i * 10 + (i % 7) * 300
      expect(kept.has(`r${i}`), `r${i} completed at ${completedAt}`).toBe(completedAt >= 1_500)
    }
  })

  it('replays only the records after the snapshot, and deletes covered records once no run needs them', () => {
    const path = logPath()
    const store = openStore(path)
    store.apply(
      decodeBatch(
        encodeBatch([
          admit('old', 1_000),
          record('old', 1),
          end('old', 1_100, 2_000),
          // The embedding service's own decision: no run of its id.
          record('main-1', 2),
          admit('recent', 9_500),
          record('recent', 3),
          end('recent', 9_550, 9_600),
        ]),
      ),
    )
    store.saveSnapshot(store.lastRecord, packSnapshot({ covers: 3 }))
    store.apply(decodeBatch(encodeBatch([record('main-2', 4), admit('late', 9_700), record('late', 5)])))
    const replayed = (s: LogStore) => s.recover(10_000).records.map((r) => (r as { n: number }).n)
    expect(store.recover(10_000).snapshot).toEqual({ covers: 3 })
    expect(replayed(store)).toEqual([4, 5])
    expect(recordRows(path)).toBe(5)

    store.prune(5_000, 10_000)

    // The pruned run's record and the service's covered one are gone; a retained run keeps its records
    // (`agentpool runs <id>` shows them), and nothing the snapshot does not cover is touched.
    expect(store.recordsOf('old')).toEqual([])
    expect(store.recordsOf('recent').map((r) => r.record)).toEqual([
      { k: 'decision', executionId: 'recent', n: 3 },
    ])
    expect(recordRows(path)).toBe(3)
    expect(replayed(store)).toEqual([4, 5])
  })

  it('never hands a covered sequence number to a later record, across a reopen', () => {
    const path = logPath()
    const first = openStore(path)
    first.apply(decodeBatch(encodeBatch([record('main-1', 1), record('main-2', 2)])))
    first.saveSnapshot(first.lastRecord, packSnapshot(1))
    first.prune(5_000, 10_000)
    // Every record the snapshot covers is deleted: the table is empty.
    expect(recordRows(path)).toBe(0)
    first.apply(decodeBatch(encodeBatch([record('main-3', 3)])))
    first.close()
    cleanups.pop()
    const second = openStore(path)
    second.apply(decodeBatch(encodeBatch([record('main-4', 4)])))
    const { snapshot, records } = second.recover(10_000)
    expect(snapshot).toBe(1)
    expect(records.map((r) => (r as { n: number }).n)).toEqual([3, 4])
  })
})
