import { setImmediate as nextTurn } from 'node:timers/promises'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { afterEach, describe, expect, it } from 'vitest'
import { AgentRuntime, ErrorCode } from '../src/index.js'
import { rapi } from './fixtures/reliability/paths.js'
import { fixture } from './helpers/runtime.js'

/** Executions offered by the soak; CI runs the full million, `AGENTPOOL_SOAK_EXECUTIONS` shortens it locally. */
const OFFERED = Number(process.env.AGENTPOOL_SOAK_EXECUTIONS ?? 1_000_000)
/** Refusals after which an offering turn yields to the event loop. */
const REFUSALS_PER_TURN = 8
const MAX_QUEUE = 128
const IDEMPOTENCY_KEYS = 1000
/** Heap and state samples taken over the run. */
const SAMPLES = 40

type Mode = 'ok' | 'fail' | 'timeout' | 'cancel'

// Heap samples are taken after a full collection, so they measure what is live, not GC timing.
setFlagsFromString('--expose-gc')
const collectGarbage = runInNewContext('gc') as () => void
const MiB = 2 ** 20

/** The soak's fixed mix: per 1000 offers, one failing, one timing out and one cancelled execution. */
function modeOf(i: number): Mode {
  const r = i % 1000
  return r === 7 ? 'fail' : r === 13 ? 'timeout' : r === 29 ? 'cancel' : 'ok'
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.floor(s.length / 2)]!
}

const cleanups: (() => Promise<void>)[] = []
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c()
})

describe('load', () => {
  it(`soaks ${OFFERED} offered executions through a small queue: refusals are QUEUE_FULL, counts add up exactly, memory stays flat`, {
    timeout: 900_000,
  }, async () => {
    const rt = new AgentRuntime({
      pool: { threads: 2, tasksPerThread: 4 },
      idempotency: { ttlMs: 600_000, maxKeys: IDEMPOTENCY_KEYS },
      entryPoints: [rapi('soak', 'soak', { maxQueue: MAX_QUEUE, maxConcurrent: 64 })],
    })
    await rt.start()
    cleanups.push(() => rt.stop({ drain: false }))

    const admitted: Record<Mode, number> = { ok: 0, fail: 0, timeout: 0, cancel: 0 }
    let refused = 0
    let deduplicated = 0
    let firstKeyId: string | undefined
    let lastKeyId: string | undefined
    let toCancel: AbortController[] = []
    const heap: number[] = []
    const stateBytes: number[] = []
    const started = Date.now()

    /** Offers execution i; true if it was refused with QUEUE_FULL. */
    const offer = async (i: number): Promise<boolean> => {
      const mode = modeOf(i)
      const controller = mode === 'cancel' ? new AbortController() : undefined
      // Every tenth offer carries an idempotency key; offer 1000k+501 repeats the key of offer 1000k+500.
      const r = i % 1000
      const key = r === 501 ? `k${i - 1}` : i % 10 === 0 ? `k${i}` : undefined
      const opts = {
        ...(key === undefined ? {} : { idempotencyKey: key }),
        ...(mode === 'timeout' ? { timeoutMs: 5 } : {}),
        ...(controller === undefined ? {} : { signal: controller.signal }),
      }
      const input = { i, mode: mode === 'ok' ? 'ok' : mode === 'fail' ? 'fail' : 'sleep' }
      try {
        const id = await rt.trigger('soak', input, opts)
        if (r === 501 && id === lastKeyId) {
          deduplicated++
          return false
        }
        if (i === 0) firstKeyId = id
        if (r === 500) lastKeyId = id
        admitted[mode]++
        if (controller !== undefined) toCancel.push(controller)
        return false
      } catch (err) {
        if (r === 500) lastKeyId = undefined
        if ((err as { code?: string }).code !== ErrorCode.QUEUE_FULL) throw err
        refused++
        return true
      }
    }

    // Each turn of the event loop offers until the queue refuses REFUSALS_PER_TURN times, so the queue
    // stays full and both admission and refusal are exercised all along.
    const sampleEvery = Math.floor(OFFERED / SAMPLES)
    let nextSample = sampleEvery
    for (let i = 0; i < OFFERED; ) {
      let refusedThisTurn = 0
      while (i < OFFERED && refusedThisTurn < REFUSALS_PER_TURN) if (await offer(i++)) refusedThisTurn++
      await nextTurn()
      for (const c of toCancel) c.abort()
      toCancel = []
      if (i >= nextSample) {
        nextSample += sampleEvery
        collectGarbage()
        heap.push(process.memoryUsage().heapUsed)
        stateBytes.push(rt.state.stats().bytesUsed)
      }
    }
    await nextTurn()
    for (const c of toCancel) c.abort()
    await rt.stop({ drain: true })
    const seconds = (Date.now() - started) / 1000

    const s = rt.stats().streams.soak!
    const total = admitted.ok + admitted.fail + admitted.timeout + admitted.cancel
    console.log(
      `soak: offered ${OFFERED} in ${seconds.toFixed(1)} s; admitted ${total} (${admitted.fail} failing, ${admitted.timeout} timing out, ${admitted.cancel} cancelled), refused ${refused}, deduplicated ${deduplicated}; live heap median early ${(median(heap.slice(2, 10)) / MiB).toFixed(1)} MiB, late ${(median(heap.slice(-8)) / MiB).toFixed(1)} MiB; state bytes median early ${median(stateBytes.slice(2, 10))}, late ${median(stateBytes.slice(-8))}`,
    )
    expect(refused).toBeGreaterThan(0)
    expect(total + refused + deduplicated).toBe(OFFERED)
    expect(s).toMatchObject({
      admitted: total,
      rejected: refused,
      completed: admitted.ok,
      failed: admitted.fail,
      timedOut: admitted.timeout,
      cancelled: admitted.cancel,
      running: 0,
      queued: 0,
    })
    expect(s.completed + s.failed + s.timedOut + s.cancelled).toBe(s.admitted)
    // Every completed execution's decision and outcome arrived, none twice.
    const metrics = rt.outcomes.evaluateGoalProgress().metrics
    expect(metrics.totalDecisions).toBe(admitted.ok)
    expect(metrics.successfulOutcomes).toBe(admitted.ok)
    // Main-thread heap and state bytes stay flat: no execution, result, record or key accumulates.
    // (Slack for the bounded caches still filling early in a short local run: results, events, decisions.)
    expect(median(heap.slice(-8))).toBeLessThan(median(heap.slice(2, 10)) * 1.25 + 16 * MiB)
    expect(median(stateBytes.slice(-8))).toBeLessThanOrEqual(
      Math.max(...stateBytes.slice(0, 10)) * 2 + 65_536,
    )
    expect(rt.state.stats().keys).toBe(0)
    expect(firstKeyId).toBeDefined()
  })

  it('forgets the oldest idempotency keys past idempotency.maxKeys, so the cache stays bounded', async () => {
    const rt = new AgentRuntime({
      pool: { threads: 2 },
      idempotency: { maxKeys: 100 },
      entryPoints: [{ id: 'echo', handler: fixture('echo'), trigger: { type: 'api' } }],
    })
    await rt.start()
    cleanups.push(() => rt.stop({ drain: false }))
    const ids = await Promise.all(
      Array.from({ length: 300 }, (_, i) => rt.trigger('echo', i, { idempotencyKey: `key-${i}` })),
    )
    // The 100 most recent keys are remembered; the first 200 were evicted and start new executions.
    const again = await Promise.all(
      Array.from({ length: 300 }, (_, i) => rt.trigger('echo', i, { idempotencyKey: `key-${299 - i}` })),
    )
    for (let j = 0; j < 100; j++) expect(again[j]).toBe(ids[299 - j])
    for (let j = 100; j < 300; j++) expect(again[j]).not.toBe(ids[299 - j])
    await rt.stop({ drain: true })
    expect(rt.stats().streams.echo).toMatchObject({ admitted: 500, completed: 500 })
  })

  it('answers 429 with Retry-After from the webhook while the stream queue is full, and 202 again once it drains', async () => {
    const rt = new AgentRuntime({
      pool: { threads: 2 },
      entryPoints: [
        {
          id: 'hook',
          handler: fixture('sleep'),
          trigger: { type: 'webhook', path: '/hook' },
          maxConcurrent: 1,
          maxQueue: 2,
        },
      ],
    })
    await rt.start()
    cleanups.push(() => rt.stop({ drain: false }))
    const post = () =>
      fetch(`${rt.webhookUrl}/hook`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ ms: 1500, value: 'slept' }),
      })
    const answers: Response[] = []
    for (let i = 0; i < 6; i++) answers.push(await post())
    expect(answers.map((a) => a.status)).toEqual([202, 202, 202, 429, 429, 429])
    for (const refusedAnswer of answers.slice(3)) {
      const retryAfter = Number(refusedAnswer.headers.get('retry-after'))
      expect(Number.isInteger(retryAfter) && retryAfter >= 1 && retryAfter <= 60).toBe(true)
      expect(((await refusedAnswer.json()) as { error: { code: string } }).error.code).toBe(
        ErrorCode.QUEUE_FULL,
      )
    }
    const ids = await Promise.all(
      answers.slice(0, 3).map(async (a) => ((await a.json()) as { executionId: string }).executionId),
    )
    const results = await Promise.all(ids.map((id) => rt.waitForExecution(id)))
    expect(results.map((r) => r.output)).toEqual(['slept', 'slept', 'slept'])
    expect((await post()).status).toBe(202)
    await rt.stop({ drain: true })
    expect(rt.stats().streams.hook).toMatchObject({ admitted: 4, completed: 4, rejected: 3 })
  })
})
