import { Worker } from 'node:worker_threads'
import { describe, expect, it } from 'vitest'
import type { DelegationParent } from '../src/delegation/index.js'
import { exposeDelegation } from '../src/delegation/index.js'
import { InvalidArgumentError, UnknownEntryPointError } from '../src/errors.js'
import type { ExecutionResult } from '../src/runtime/types.js'

const BOOTSTRAP = new URL('./fixtures/outcomes/ts-worker.mjs', import.meta.url)
const ENTRY = new URL('./fixtures/outcomes/delegate-worker.ts', import.meta.url).href

interface Call {
  entryPointId: string
  input: unknown
  executionId: string
  abortAfterMs?: number
}

/** Runs one worker thread that makes `calls` concurrently; resolves with its answers once it exited on its own. */
function runWorker(runtimeId: string, calls: Call[]): Promise<unknown[]> {
  const worker = new Worker(BOOTSTRAP, { workerData: { entry: ENTRY, runtimeId, calls } })
  return new Promise((resolve, reject) => {
    let answers: unknown[] | undefined
    worker.once('message', (m: unknown[]) => {
      answers = m
    })
    worker.once('error', reject)
    worker.once('exit', (code) =>
      code === 0 && answers ? resolve(answers) : reject(new Error(`worker exited with ${code}`)),
    )
  })
}

function result(entryPointId: string, input: unknown, parent: DelegationParent): ExecutionResult {
  return {
    executionId: `child-of-${parent.executionId}`,
    streamId: entryPointId,
    correlationId: parent.correlationId,
    status: 'completed',
    output: { input, parent },
    attempts: 1,
    conflicts: 0,
    startedAt: 1,
    completedAt: 2,
    durationMs: 1,
  }
}

describe('delegation across threads', () => {
  it('runs each worker call on the main side and sends every result back to the thread and call that made it', async () => {
    const runtimeId = `rt-${process.pid}-a`
    const seen: string[] = []
    const server = exposeDelegation(runtimeId, async (entryPointId, input, parent) => {
      seen.push(parent.executionId)
      // Answer out of order: later calls resolve first, so replies must be matched by id, not by order.
      await new Promise((r) => setTimeout(r, 30 - (input as number) * 5))
      return result(entryPointId, input, parent)
    })
    try {
      const plan = (w: string): Call[] =>
        [0, 1, 2, 3, 4].map((i) => ({ entryPointId: 'escalation', input: i, executionId: `${w}-${i}` }))
      const [a, b] = await Promise.all([runWorker(runtimeId, plan('w1')), runWorker(runtimeId, plan('w2'))])
      for (const [w, answers] of [
        ['w1', a],
        ['w2', b],
      ] as const) {
        expect(answers).toEqual(
          [0, 1, 2, 3, 4].map((i) => ({
            ok: true,
            result: expect.objectContaining({
              executionId: `child-of-${w}-${i}`,
              streamId: 'escalation',
              correlationId: `corr-${w}-${i}`,
              output: { input: i, parent: { executionId: `${w}-${i}`, correlationId: `corr-${w}-${i}` } },
            }),
          })),
        )
      }
      expect(seen.sort()).toEqual([...plan('w1'), ...plan('w2')].map((c) => c.executionId).sort())
    } finally {
      server.close()
    }
  })

  it('rethrows a main-side error in the worker as its own AgentPoolError class with code and details', async () => {
    const runtimeId = `rt-${process.pid}-b`
    const server = exposeDelegation(runtimeId, async (entryPointId, input, parent) => {
      if (entryPointId === 'bad-input') throw new InvalidArgumentError('input must be a ticket', { input })
      if (entryPointId !== 'escalation') throw new UnknownEntryPointError(entryPointId, ['escalation'])
      return result(entryPointId, input, parent)
    })
    try {
      const answers = await runWorker(runtimeId, [
        { entryPointId: 'nope', input: 1, executionId: 'x1' },
        { entryPointId: 'bad-input', input: 2, executionId: 'x2' },
        { entryPointId: 'escalation', input: 3, executionId: 'x3' },
      ])
      expect(answers[0]).toEqual({
        ok: false,
        name: 'UnknownEntryPointError',
        className: 'UnknownEntryPointError',
        code: 'AGENTPOOL_UNKNOWN_ENTRY_POINT',
        message: 'unknown entry point "nope"; known entry points: "escalation"',
        isAgentPoolError: true,
        details: { entryPointId: 'nope' },
      })
      expect(answers[1]).toMatchObject({
        ok: false,
        className: 'InvalidArgumentError',
        code: 'AGENTPOOL_INVALID_ARGUMENT',
        details: { input: 2 },
      })
      expect(answers[2]).toMatchObject({ ok: true, result: { status: 'completed' } })
    } finally {
      server.close()
    }
  })

  it("stops waiting when the delegating execution's signal aborts, and lets the thread exit", async () => {
    const runtimeId = `rt-${process.pid}-e`
    const server = exposeDelegation(runtimeId, () => new Promise<ExecutionResult>(() => {}))
    try {
      const answers = await runWorker(runtimeId, [
        { entryPointId: 'slow', input: null, executionId: 'y1', abortAfterMs: 50 },
      ])
      expect(answers[0]).toMatchObject({ ok: false, name: 'TimeoutError' })
    } finally {
      server.close()
    }
  })

  it('keeps runtimes apart: a runtime id only reaches its own handler', async () => {
    const calls: string[] = []
    const mine = exposeDelegation(`rt-${process.pid}-c`, async (id, input, parent) => {
      calls.push('mine')
      return result(id, input, parent)
    })
    const other = exposeDelegation(`rt-${process.pid}-d`, async (id, input, parent) => {
      calls.push('other')
      return result(id, input, parent)
    })
    try {
      await runWorker(`rt-${process.pid}-c`, [{ entryPointId: 'e', input: null, executionId: 'z' }])
      expect(calls).toEqual(['mine'])
    } finally {
      mine.close()
      other.close()
    }
  })
})
