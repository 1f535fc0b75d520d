import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type BetterSqlite3 from 'better-sqlite3'
import fc from 'fast-check'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { decodeBatch, encodeBatch, unpackRecords } from '../src/durability/codec.js'
import { LogStore, RunLog } from '../src/durability/index.js'
import { ENOUGH_ENDS, HELD_RUN_MS, RESULT_GATHER_MS, UNAWAITED_MS } from '../src/durability/run-log.js'
import type { LogOp, StartOp } from '../src/protocol.js'
import { admitOp, endOp } from './helpers/durable.js'

const Sqlite = createRequire(import.meta.url)('better-sqlite3') as typeof BetterSqlite3

/** What a script does: an operation to append, or a wait until everything appended so far is committed. */
type Step = LogOp | 'committed'

const command = fc.oneof(
  { arbitrary: fc.constant<'admit'>('admit'), weight: 3 },
  { arbitrary: fc.constant<'start'>('start'), weight: 3 },
  { arbitrary: fc.constant<'end'>('end'), weight: 3 },
  { arbitrary: fc.record({ key: fc.integer({ min: 0, max: 3 }), late: fc.boolean() }), weight: 4 },
  { arbitrary: fc.constant<'record'>('record'), weight: 2 },
  { arbitrary: fc.constant<'timer'>('timer'), weight: 1 },
  { arbitrary: fc.constant<'committed'>('committed'), weight: 2 },
)

/**
 * Turns drawn commands into a script as the runtime would journal it: executions admitted, started (more
 * than once, as retries), ended; state changes with versions rising per key, some delivered after a newer
 * one (two threads' record rings); records; timer fires. Names carry `run` so runs share one file.
 */
function script(run: number, commands: readonly unknown[], pick: (n: number) => number): Step[] {
  const steps: Step[] = []
  const open: { id: string; attempts: number; firstStart?: number; admittedAt: number }[] = []
  const versions = new Map<string, number>()
  let clock = 1_000
  let n = 0
  for (const c of commands) {
    clock += 7
    if (c === 'committed') steps.push('committed')
    else if (c === 'admit' || open.length === 0) {
      const id = `r${run}-e${n++}`
      open.push({ id, attempts: 0, admittedAt: clock })
      steps.push({
        op: 'admit',
        id,
        entryPointId: `ep${n % 2}`,
        input: { n, text: 'ticket '.repeat(n % 5), when: new Date(clock) },
        priority: n % 3,
        correlationId: `c-${id}`,
        meta: { trigger: 'api' },
        timeoutMs: 30_000,
        depth: 0,
        admittedAt: clock,
        ...(n % 4 === 0 ? { idempotency: { key: `r${run}\u0000k${n}`, expiresAt: clock + 60_000 } } : {}),
      })
    } else {
      const e = open[pick(open.length)]!
      if (c === 'start') {
        e.attempts++
        e.firstStart ??= clock
        steps.push({ op: 'start', id: e.id, attempt: e.attempts, startedAt: clock })
      } else if (c === 'end') {
        open.splice(open.indexOf(e), 1)
        steps.push({
          op: 'end',
          id: e.id,
          status: e.attempts === 0 ? 'cancelled' : 'completed',
          attempts: e.attempts,
          ...(e.attempts === 0 ? {} : { output: { done: e.id, at: clock } }),
          startedAt: e.firstStart ?? e.admittedAt,
          completedAt: clock,
        })
      } else if (c === 'record') {
        steps.push({
          op: 'record',
          executionId: e.id,
          record: { k: 'decision', executionId: e.id, n: clock },
        })
      } else if (c === 'timer') {
        steps.push({ op: 'timer', entryPointId: `r${run}-timer`, firedAt: clock })
      } else {
        const { key, late } = c as { key: number; late: boolean }
        const name = `r${run}-k${key}`
        const v = versions.get(name) ?? 0
        // Late: the change after next arrives first, as when two threads' rings are read out of order.
        const order = late ? [v + 2, v + 1] : [v + 1]
        versions.set(name, order[0]!)
        for (const version of order) {
          steps.push({
            op: 'state',
            scope: key % 2 === 0 ? 'global' : 'stream',
            streamId: key % 2 === 0 ? '' : 'ep1',
            key: name,
            value: version % 3 === 0 ? undefined : { v: version },
            deleted: version % 3 === 0,
            version,
          })
        }
      }
    }
  }
  return steps
}

/** Every row of `run` in the log, in a comparable shape (`seq` columns left out: they count all runs). */
function dump(path: string, run: number) {
  const db = new Sqlite(path, { readonly: true })
  const like = `r${run}-%`
  try {
    return {
      runs: db
        .prepare(
          `SELECT id, entry_point, status, attempts, priority, correlation_id, timeout_ms, depth, input, meta,
             output, error, admitted_at, started_at, completed_at FROM runs WHERE id LIKE ? ORDER BY seq`,
        )
        .all(like),
      // A batch keeps consecutive records of one execution in one row: compare the records, not the rows.
      records: (
        db
          .prepare('SELECT execution_id, body FROM records WHERE execution_id LIKE ? ORDER BY seq')
          .all(like) as { execution_id: string; body: Buffer }[]
      ).flatMap((r) => unpackRecords(r.body).map((record) => [r.execution_id, record])),
      state: db
        .prepare(
          'SELECT scope, stream_id, key, value, deleted, version FROM state WHERE key LIKE ? ORDER BY key',
        )
        .all(like),
      idempotency: db.prepare('SELECT * FROM idempotency WHERE key LIKE ? ORDER BY key').all(like),
      timers: db.prepare('SELECT * FROM timers WHERE entry_point LIKE ?').all(like),
    }
  } finally {
    db.close()
  }
}

/** A run log keeping finished runs for an hour, committing with `syncMs`. */
function openLog(path: string, syncMs: number): Promise<RunLog> {
  return RunLog.open({
    path,
    syncMs,
    retainRunsMs: 3_600_000,
    synchronous: 'normal',
    snapshotRecords: 100_000,
    goal: undefined,
    outcomes: {},
  })
}

/** The nice value of each thread of this process (Linux), by thread id. */
function threadNices(): Map<number, number> {
  const nices = new Map<number, number>()
  for (const tid of readdirSync('/proc/self/task')) {
    try {
      const stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8')
      // Fields after the command name's closing parenthesis start at field 3; nice is field 19.
      nices.set(Number(tid), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16]))
    } catch {
      // The thread ended between the listing and the read.
    }
  }
  return nices
}

describe.skipIf(process.platform !== 'linux')('durable runs: the writer thread', () => {
  it('runs at a lower priority than the runtime threads, so a batch it is sent does not take their core', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'agentpool-writer-nice-'))
    const before = threadNices()
    const main = before.get(process.pid)!
    const log = await openLog(join(dir, 'runs.db'), 0)
    try {
      const added = [...threadNices()].filter(([tid]) => !before.has(tid))
      // The writer is a worker thread: its own JavaScript thread and helper threads; the one lowered is
      // the thread that runs the log.
      const lowered = added.filter(([, nice]) => nice === Math.min(19, main + 5))
      expect(lowered).toHaveLength(1)
      expect(added.every(([, nice]) => nice === main || nice === Math.min(19, main + 5))).toBe(true)
    } finally {
      await log.close()
      rmSync(dir, { recursive: true, force: true })
    }
  })
})

describe('durable runs: group commit writes what one-by-one writing would', () => {
  let dir: string
  let log: RunLog
  let plain: LogStore
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'agentpool-batching-'))
    log = await openLog(join(dir, 'batched.db'), 1)
    plain = LogStore.open(join(dir, 'plain.db'), 'normal')
  })
  afterAll(async () => {
    await log?.close()
    plain?.close()
    rmSync(dir, { recursive: true, force: true })
  })

  it('folds starts and ends into waiting admissions, keeps the latest version of a key, and loses nothing', async () => {
    let run = 0
    await fc.assert(
      fc.asyncProperty(
        fc.array(command, { minLength: 1, maxLength: 60 }),
        fc.infiniteStream(fc.nat()),
        async (commands, picks) => {
          run++
          const draws = picks[Symbol.iterator]()
          const steps = script(run, commands, (n) => draws.next().value % n)
          for (const s of steps) {
            if (s === 'committed') await log.committed()
            else {
              log.append(s)
              // The plain way: each operation in a transaction of its own, nothing folded or dropped.
              plain.apply(decodeBatch(encodeBatch([s])))
            }
          }
          await log.committed()
          expect(dump(join(dir, 'batched.db'), run)).toEqual(dump(join(dir, 'plain.db'), run))
        },
      ),
      { numRuns: 40, seed: 20261204 },
    )
  })
})

describe('durable runs: when a batch goes out', () => {
  let dir: string
  let log: RunLog
  /** Batches sent to the writer thread so far (its real port, counted on the way). */
  let sent = 0
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'agentpool-schedule-'))
    log = await openLog(join(dir, 'runs.db'), 0)
    const worker = (log as unknown as { worker: { postMessage: (m: { kind: string }, t?: unknown) => void } })
      .worker
    const post = worker.postMessage.bind(worker)
    worker.postMessage = (m, t) => {
      if (m.kind === 'ops') sent++
      post(m, t)
    }
  })
  afterAll(async () => {
    await log?.close()
    rmSync(dir, { recursive: true, force: true })
  })

  const statusOf = (id: string): unknown => {
    const db = new Sqlite(join(dir, 'runs.db'), { readonly: true })
    try {
      return (db.prepare('SELECT status FROM runs WHERE id = ?').get(id) as { status: string } | undefined)
        ?.status
    } finally {
      db.close()
    }
  }

  /** Lets `ms` pass, plus a turn of the event loop. */
  const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))
  /** Lets the rest of this turn of the event loop run (a flush set for its end included). */
  const nextTurn = () => new Promise((resolve) => setImmediate(resolve))

  /** Runs `body` with the log told whether executions are still running (`more`), then tells it none are. */
  const withMoreComing = async (more: () => boolean, body: () => Promise<void>) => {
    log.moreComing = more
    try {
      await body()
    } finally {
      log.moreComing = () => false
    }
  }

  it('an admission nobody waits for waits for its end, and the two are one commit', async () => {
    await log.committed()
    const before = sent
    log.append(admitOp('quick', 1))
    // Less than the unawaited window later (a turn of the event loop is far shorter), the execution ends.
    await nextTurn()
    expect(sent).toBe(before)
    log.append(endOp('quick', 2, 3))
    await log.committed()
    expect(sent).toBe(before + 1)
    expect(statusOf('quick')).toBe('completed')
  })

  /** Appends the admission of `id`, acknowledged: it must go out in this turn of the event loop. */
  const expectAckedThisTurn = async (id: string) => {
    const before = sent
    log.append(admitOp(id, 1))
    const acked = log.committed()
    await nextTurn()
    expect(sent).toBe(before + 1)
    await acked
    expect(statusOf(id)).toBe('queued')
  }

  it('an admission someone waits for goes out in the same turn of the event loop', async () => {
    await log.committed()
    await expectAckedThisTurn('acked')
  })

  /** Appends an admission nobody is acknowledged for, held back, and its start when `startedAt` is given. */
  const admitHeld = (id: string, startedAt?: number) => {
    log.append(admitOp(id, 1))
    log.hold(id)
    if (startedAt !== undefined) log.append({ op: 'start', id, attempt: 1, startedAt } satisfies StartOp)
  }

  it('a held admission stays out of the batches until its end, and the two are one row', async () => {
    await log.committed()
    const before = sent
    admitHeld('held', Date.now())
    // Past the unawaited window, and past a commit someone waits for: still not written.
    await pause(3 * UNAWAITED_MS)
    log.append(admitOp('other', 1))
    await log.committed()
    expect(sent).toBe(before + 1)
    expect(statusOf('other')).toBe('queued')
    expect(statusOf('held')).toBeUndefined()
    log.append(endOp('held', 2, 3))
    await log.committed(true)
    expect(sent).toBe(before + 2)
    expect(statusOf('held')).toBe('completed')
  })

  it('what is appended while only held admissions wait goes out within the unawaited window', async () => {
    await log.committed()
    admitHeld('waiting', Date.now())
    // The held admission alone: nothing is written, and the next look is due when it has run long.
    await pause(3 * UNAWAITED_MS)
    log.append(admitOp('later', 1))
    const deadline = Date.now() + HELD_RUN_MS / 2
    while (statusOf('later') === undefined && Date.now() < deadline) await pause(UNAWAITED_MS)
    expect(statusOf('later')).toBe('queued')
    expect(statusOf('waiting')).toBeUndefined()
    log.append(endOp('waiting', 2, 3))
    await log.committed(true)
  })

  it("a held admission goes out with its execution's first record, so no effect is durable without it", async () => {
    await log.committed()
    admitHeld('effect')
    log.append({
      op: 'record',
      executionId: 'effect',
      record: { k: 'decision', executionId: 'effect', decisionId: 'd1' },
    } as LogOp)
    await log.committed()
    expect(statusOf('effect')).toBe('queued')
  })

  it('an admission with an idempotency key is never held: a repeat of the key is acknowledged', async () => {
    await log.committed()
    log.append(admitOp('keyed', 1, { idempotency: { key: 'api\u0000k1', expiresAt: Date.now() + 60_000 } }))
    log.hold('keyed')
    await log.committed()
    expect(statusOf('keyed')).toBe('queued')
  })

  it(`a held admission whose execution has run for ${HELD_RUN_MS} ms is written`, async () => {
    await log.committed()
    admitHeld('long', Date.now() - HELD_RUN_MS - 1)
    const deadline = Date.now() + 5_000
    while (statusOf('long') === undefined && Date.now() < deadline) await pause(UNAWAITED_MS)
    expect(statusOf('long')).toBe('running')
  })

  it('a result waits for the ends still on their way, and goes out with the last', async () => {
    await log.committed()
    const before = sent
    let running = 2
    await withMoreComing(
      () => running > 0,
      async () => {
        admitHeld('first')
        admitHeld('second')
        running--
        log.append(endOp('first', 2, 3))
        const first = log.committed(true)
        await nextTurn()
        expect(sent).toBe(before)
        running--
        log.append(endOp('second', 2, 3))
        const second = log.committed(true)
        await nextTurn()
        expect(sent).toBe(before + 1)
        await Promise.all([first, second])
        expect([statusOf('first'), statusOf('second')]).toEqual(['completed', 'completed'])
      },
    )
  })

  it(`results go out without waiting once ${ENOUGH_ENDS} ends share the batch`, async () => {
    await log.committed()
    const before = sent
    await withMoreComing(
      () => true,
      async () => {
        const ids = Array.from({ length: ENOUGH_ENDS }, (_, i) => `many-${i}`)
        const results = ids.map((id) => {
          admitHeld(id)
          log.append(endOp(id, 2, 3))
          return log.committed(true)
        })
        await nextTurn()
        expect(sent).toBe(before + 1)
        await Promise.all(results)
        expect(statusOf(ids.at(-1)!)).toBe('completed')
      },
    )
  })

  it('the end of the last execution running goes out as it is appended, its result awaited', async () => {
    await log.committed()
    const before = sent
    admitHeld('only-one')
    log.append(endOp('only-one', 2, 3))
    // Before this turn of the event loop ends: the result handlers queued behind it do not delay it.
    expect(sent).toBe(before + 1)
    await log.committed(true)
    expect(statusOf('only-one')).toBe('completed')
  })

  it('the last results of a burst go out while the batch before them still commits', async () => {
    await log.committed()
    const before = sent
    // A batch long enough to commit (thousands of rows) that it is still in flight a turn later.
    for (let i = 0; i < 5000; i++) log.append(admitOp(`bulk-${i}`, 1))
    const bulk = log.committed(true)
    await nextTurn()
    expect(sent).toBe(before + 1)
    admitHeld('tail')
    log.append(endOp('tail', 2, 3))
    const tail = log.committed(true)
    await nextTurn()
    expect(sent).toBe(before + 2)
    await Promise.all([bulk, tail])
    expect([statusOf('bulk-4999'), statusOf('tail')]).toEqual(['queued', 'completed'])
  })

  it(`a result waits for company at most ${RESULT_GATHER_MS} ms, and an acknowledgement not at all`, async () => {
    await log.committed()
    await withMoreComing(
      () => true,
      async () => {
        log.append(admitOp('patient', 1))
        const start = performance.now()
        await log.committed(true)
        const waited = performance.now() - start
        expect(waited).toBeGreaterThanOrEqual(RESULT_GATHER_MS - 1)
        expect(statusOf('patient')).toBe('queued')
        await expectAckedThisTurn('urgent')
      },
    )
  })

  it('what nobody waits for is committed on its own, soon', async () => {
    await log.committed()
    const before = sent
    log.append(admitOp('alone', 1))
    const deadline = Date.now() + 5_000
    while (statusOf('alone') === undefined && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, UNAWAITED_MS))
    }
    expect(statusOf('alone')).toBe('queued')
    expect(sent).toBe(before + 1)
  })
})

describe('durable runs: stopping', () => {
  it('writes the admissions it held back, so a stop without drain leaves them to be recovered', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'agentpool-held-close-'))
    try {
      const log = await openLog(join(dir, 'runs.db'), 0)
      log.append(admitOp('left', 1))
      log.hold('left')
      await log.close()
      const store = LogStore.open(join(dir, 'runs.db'), 'normal')
      try {
        expect(store.recover().unfinished.map((r) => r.id)).toEqual(['left'])
      } finally {
        store.close()
      }
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
