import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { decodeBatch, encodeBatch } from '../src/durability/codec.js'
import { LogStore } from '../src/durability/index.js'
import type { LogOp } from '../src/protocol.js'
import { admitOp as admit, endOp as end } from './helpers/durable.js'

const cleanups: (() => void)[] = []
afterEach(() => {
  for (const c of cleanups.splice(0).reverse()) c()
})

function openStore(): LogStore {
  const dir = mkdtempSync(join(tmpdir(), 'agentpool-retention-'))
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }))
  const store = LogStore.open(join(dir, 'runs.db'), 'normal')
  cleanups.push(() => store.close())
  return store
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
})
