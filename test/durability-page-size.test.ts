/** The run log's page size (`PAGE_SIZE` in `src/durability/log-store.ts`): new files get it, older files keep theirs. */
import { mkdtempSync, rmSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type BetterSqlite3 from 'better-sqlite3'
import { afterEach, describe, expect, it } from 'vitest'
import { decodeBatch, encodeBatch } from '../src/durability/codec.js'
import { LogStore } from '../src/durability/index.js'
import { PAGE_SIZE } from '../src/durability/log-store.js'
import { admitOp, endOp } from './helpers/durable.js'

const Sqlite = createRequire(import.meta.url)('better-sqlite3') as typeof BetterSqlite3

const dirs: string[] = []
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true })
})

function newPath(): string {
  const dir = mkdtempSync(join(tmpdir(), 'agentpool-page-size-'))
  dirs.push(dir)
  return join(dir, 'runs.db')
}

function pageSizeOf(path: string): number {
  const db = new Sqlite(path, { readonly: true })
  try {
    return db.pragma('page_size', { simple: true }) as number
  } finally {
    db.close()
  }
}

describe('durable runs: the log file', () => {
  it(`is created with pages of ${PAGE_SIZE} bytes`, () => {
    const path = newPath()
    LogStore.open(path, 'normal').close()
    expect(PAGE_SIZE).toBe(8192)
    expect(pageSizeOf(path)).toBe(PAGE_SIZE)
  })

  it('keeps the page size of a log created with another, and everything in it', () => {
    const path = newPath()
    const old = new Sqlite(path)
    old.pragma('page_size = 4096')
    old.pragma('journal_mode = WAL')
    old.close()
    const first = LogStore.open(path, 'normal')
    first.apply(decodeBatch(encodeBatch([admitOp('kept', 1_000), endOp('kept', 1_000, 2_000)])))
    first.close()

    const again = LogStore.open(path, 'normal')
    try {
      expect(again.lookup('kept')?.status).toBe('completed')
      expect(again.integrityCheck()).toBe('ok')
    } finally {
      again.close()
    }
    expect(pageSizeOf(path)).toBe(4096)
  })
})
