import { afterEach, describe, expect, it } from 'vitest'
import { type AgentRuntime, ErrorCode, type ExecutionResult } from '../src/index.js'
import { type BankInput, nextTransfer, prng } from './fixtures/reliability/bank.js'
import { rapi } from './fixtures/reliability/paths.js'
import { api, startRuntime } from './helpers/runtime.js'

const ACCOUNTS = 8
const OPENING = 1000
const RUNS = 30
/** Healthy executions launched alongside each faulty one. */
const HEALTHY_PER_RUN = 6
const TRANSFERS = 25

const FAULTS = ['exit', 'exit-in-update', 'throw', 'uncaught', 'spin', 'spin-update'] as const
type Fault = (typeof FAULTS)[number]

/** How each fault must end its execution. */
const EXPECTED: Record<Fault, { status: ExecutionResult['status']; code: string }> = {
  exit: { status: 'failed', code: ErrorCode.WORKER_CRASHED },
  'exit-in-update': { status: 'failed', code: ErrorCode.WORKER_CRASHED },
  uncaught: { status: 'failed', code: ErrorCode.WORKER_CRASHED },
  throw: { status: 'failed', code: ErrorCode.HANDLER_FAILED },
  spin: { status: 'timed_out', code: ErrorCode.TIMEOUT },
  'spin-update': { status: 'timed_out', code: ErrorCode.TIMEOUT },
}

const cleanups: (() => Promise<void>)[] = []
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c()
})

let checks = 0

/** Reads the global scope from the main thread. */
function globalState(rt: AgentRuntime): Record<string, unknown> {
  const id = `checker-${checks++}`
  const view = rt.state.createBuffer(id, 'checker', 'shared')
  try {
    return view.readAll({ scope: 'global' })
  } finally {
    rt.state.cleanupExecution(id)
  }
}

/**
 * The balances must be exactly the opening balances plus every transfer some progress key says committed:
 * a committed transfer is whole (debit, credit and progress together), an uncommitted one wholly absent.
 */
function checkLedger(rt: AgentRuntime): { committed: number } {
  const state = globalState(rt)
  const expected = Array.from({ length: ACCOUNTS }, () => OPENING)
  let committed = 0
  for (const [key, value] of Object.entries(state)) {
    if (!key.startsWith('done:')) continue
    const { seed, count } = value as { seed: number; count: number }
    const rand = prng(seed)
    for (let k = 0; k < count; k++) {
      const t = nextTransfer(rand, ACCOUNTS)
      expected[t.from]! -= t.amount
      expected[t.to]! += t.amount
    }
    committed += count
  }
  const actual = Array.from({ length: ACCOUNTS }, (_, i) => state[`acct:${i}`])
  expect(actual).toEqual(expected)
  expect(expected.reduce((a, b) => a + b, 0)).toBe(ACCOUNTS * OPENING)
  return { committed }
}

describe('thread death inside update() and transaction()', () => {
  it(`conserves a bank's total over ${RUNS} seeded runs of threads dying mid-transaction; every commit is whole and no lock stays held`, {
    timeout: 180_000,
  }, async () => {
    const rt = await startRuntime(
      {
        entryPoints: [
          rapi('bank', 'bank', { maxConcurrent: 16, timeoutMs: 20_000, isolation: 'shared' }),
          rapi('bank-isolated', 'bank', { maxConcurrent: 16, timeoutMs: 20_000, isolation: 'isolated' }),
          rapi('faulty', 'bank', { timeoutMs: 20_000, isolation: 'shared' }),
        ],
      },
      (fn) => cleanups.push(fn),
    )
    const opening = rt.state.createBuffer('opening', 'checker', 'shared')
    for (let i = 0; i < ACCOUNTS; i++) opening.write(`acct:${i}`, OPENING, { scope: 'global' })
    rt.state.cleanupExecution('opening')

    const rand = prng(20261125)
    const injected: Record<Fault, number> = Object.fromEntries(FAULTS.map((f) => [f, 0])) as Record<
      Fault,
      number
    >
    let healthy = 0
    for (let run = 0; run < RUNS; run++) {
      const fault = FAULTS[run % FAULTS.length]!
      const faulty: BankInput = {
        seed: 1_000_000 + run,
        accounts: ACCOUNTS,
        transfers: TRANSFERS,
        fault,
        faultAt: Math.floor(rand() * TRANSFERS),
      }
      const others = Array.from({ length: HEALTHY_PER_RUN }, (_, j) =>
        rt.triggerAndWait(j % 2 === 0 ? 'bank' : 'bank-isolated', {
          seed: run * 100 + j,
          accounts: ACCOUNTS,
          transfers: TRANSFERS,
        }),
      )
      // A spinning handler is stopped by its timeout: the pool terminates its thread at an arbitrary instruction.
      const bad = await rt.triggerAndWait(
        'faulty',
        faulty,
        fault.startsWith('spin') ? { timeoutMs: 200 } : {},
      )
      injected[fault]++
      expect({ fault, status: bad.status, code: bad.error?.code }).toEqual({ fault, ...EXPECTED[fault] })
      // Every healthy execution, on whatever thread, completes: no lock of the dead thread is left held.
      for (const r of await Promise.all(others)) {
        expect(r.status, `${fault} run ${run}: ${r.error?.message}`).toBe('completed')
        healthy++
      }
      checkLedger(rt)
    }

    const final = await Promise.all(
      Array.from({ length: 16 }, (_, j) =>
        rt.triggerAndWait('bank', { seed: 9_000_000 + j, accounts: ACCOUNTS, transfers: TRANSFERS }),
      ),
    )
    expect(final.map((r) => r.status)).toEqual(Array(16).fill('completed'))
    const { committed } = checkLedger(rt)
    const s = rt.stats().streams
    expect(s.bank!.completed + s['bank-isolated']!.completed).toBe(healthy + 16)
    expect(s.bank!.admitted + s['bank-isolated']!.admitted).toBe(healthy + 16)
    expect(s.faulty).toMatchObject({
      admitted: RUNS,
      completed: 0,
      failed: RUNS - injected.spin - injected['spin-update'],
      timedOut: injected.spin + injected['spin-update'],
    })
    console.log(
      `thread death: ${RUNS} runs, faults injected ${JSON.stringify(injected)}, ${healthy + 16} healthy executions all completed, ${committed} transfers committed and whole, threads replaced ${rt.stats().pool.threadsReplaced}`,
    )
  })
})

describe('threads that exit on their own', () => {
  it.each(['exit', 'uncaught'] as const)(
    'frees the record ring and state locks of every thread that dies (%s), however many die',
    async (how) => {
      const rt = await startRuntime(
        { entryPoints: [api('crash', 'crash'), api('echo', 'echo', { maxConcurrent: 20 })] },
        (fn) => cleanups.push(fn),
      )
      // Two threads share six record rings: without freeing the dead threads' rings, the fifth replacement finds none.
      for (let i = 0; i < 10; i++) {
        const r = await rt.triggerAndWait('crash', { how })
        expect(r.error?.code).toBe(ErrorCode.WORKER_CRASHED)
        const echoes = await Promise.all(Array.from({ length: 20 }, (_, j) => rt.triggerAndWait('echo', j)))
        expect(echoes.map((e) => e.error?.message ?? e.status)).toEqual(Array(20).fill('completed'))
      }
      expect(rt.stats().pool.threadsReplaced).toBeGreaterThanOrEqual(10)
    },
  )
})

describe('synchronized state under concurrent commits (found by the bank runs)', () => {
  it.each(['write', 'transaction'] as const)(
    'never refuses a %s of a key only this execution writes while other executions insert keys alongside',
    async (via) => {
      const rt = await startRuntime(
        {
          state: { isolation: { global: 'synchronized' } },
          entryPoints: [rapi('own', 'own-key', { maxConcurrent: 8 })],
        },
        (fn) => cleanups.push(fn),
      )
      const results = await Promise.all(
        Array.from({ length: 4 }, () => rt.triggerAndWait('own', { times: 2000, via })),
      )
      expect(results.map((r) => r.error?.message ?? r.status)).toEqual(Array(4).fill('completed'))
      expect(results.map((r) => r.output)).toEqual(Array(4).fill(1999))
      expect(rt.state.stats().conflicts).toBe(0)
    },
  )
})
