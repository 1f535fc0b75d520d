import { fileURLToPath } from 'node:url'
import { afterEach, describe, expect, it } from 'vitest'
import type { EntryPointConfig, RuntimeConfig } from '../src/config/index.js'
import { AgentRuntime, ErrorCode } from '../src/index.js'

const cleanups: (() => Promise<void>)[] = []
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c()
})

const handler = (name: string): string =>
  fileURLToPath(new URL(`./fixtures/outcomes/${name}.ts`, import.meta.url))
const api = (id: string, name: string, extra: Partial<EntryPointConfig> = {}): EntryPointConfig => ({
  id,
  handler: handler(name),
  trigger: { type: 'api' },
  ...extra,
})

async function start(
  config: Pick<RuntimeConfig, 'entryPoints'> & Partial<RuntimeConfig>,
): Promise<AgentRuntime> {
  const runtime = new AgentRuntime({ pool: { threads: 2, tasksPerThread: 4 }, ...config })
  await runtime.start()
  cleanups.push(() => runtime.stop({ drain: false }))
  return runtime
}

const goal: RuntimeConfig['goal'] = {
  id: 'tier1',
  description: 'resolve tickets',
  successCriteria: [{ id: 'resolve_rate', description: 'resolved', target: '60%' }],
  constraints: [],
}

/** Everything the main thread holds about one execution, read synchronously. */
function seen(runtime: AgentRuntime, streamId: string, executionId: string) {
  const decisions = runtime.outcomes.decisionsByExecution(streamId, executionId)
  return {
    decisions: decisions.length,
    outcomes: decisions.filter((d) => d.outcome !== undefined).length,
    attempts: decisions.map((d) => d.attempt),
    recorded: runtime.events.history({ executionId, types: ['recorded'] }).length,
    problems: runtime.events.history({ executionId, types: ['problem_reported'] }).length,
  }
}

describe('records are visible when the execution resolves', () => {
  it('for ctx methods a handler took off ctx before calling them', async () => {
    const rt = await start({ goal, entryPoints: [api('detached', 'detached')] })
    const done = rt.events.waitFor({ types: ['detached_done'] })
    const r = await rt.triggerAndWait('detached', { note: 'taken off ctx' })
    expect(r.status).toBe('completed')
    expect((await done).data).toEqual({ id: r.output })
    const [decision] = rt.outcomes.decisionsByExecution('detached', r.executionId)
    expect(decision).toMatchObject({ reasoning: 'taken off ctx', outcome: { success: true } })
    expect(r.output).toBe(`${r.executionId}:1:0`)
    expect(rt.events.history({ types: ['problem_reported'] }).map((e) => e.executionId)).toEqual([
      r.executionId,
    ])
  })

  it('for a completed execution', async () => {
    const rt = await start({ goal, entryPoints: [api('rec', 'record-handler')] })
    const r = await rt.triggerAndWait('rec', { decisions: 5, ending: 'return' })
    expect(r.status).toBe('completed')
    expect(seen(rt, 'rec', r.executionId)).toEqual({
      decisions: 5,
      outcomes: 5,
      attempts: [1, 1, 1, 1, 1],
      recorded: 1,
      problems: 1,
    })
  })

  it('for a failed execution whose handler threw after recording', async () => {
    const rt = await start({ entryPoints: [api('rec', 'record-handler')] })
    const r = await rt.triggerAndWait('rec', { decisions: 4, ending: 'throw' })
    expect(r.status).toBe('failed')
    expect(seen(rt, 'rec', r.executionId)).toMatchObject({
      decisions: 4,
      outcomes: 4,
      recorded: 1,
      problems: 1,
    })
  })

  it('for a timed-out execution', async () => {
    const rt = await start({ entryPoints: [api('rec', 'record-handler', { timeoutMs: 300 })] })
    const r = await rt.triggerAndWait('rec', { decisions: 3, ending: 'hang' })
    expect(r.status).toBe('timed_out')
    expect(seen(rt, 'rec', r.executionId)).toMatchObject({
      decisions: 3,
      outcomes: 3,
      recorded: 1,
      problems: 1,
    })
  })

  it('for an execution whose thread died after its records were flushed', async () => {
    const rt = await start({ entryPoints: [api('rec', 'record-handler')] })
    const r = await rt.triggerAndWait('rec', { decisions: 2, ending: 'exit' })
    expect(r.status).toBe('failed')
    expect(r.error!.code).toBe(ErrorCode.WORKER_CRASHED)
    expect(seen(rt, 'rec', r.executionId)).toMatchObject({
      decisions: 2,
      outcomes: 2,
      recorded: 1,
      problems: 1,
    })
  })

  it('for waitForExecution too', async () => {
    const rt = await start({ entryPoints: [api('rec', 'record-handler')] })
    const id = await rt.trigger('rec', { decisions: 3, ending: 'return' })
    await rt.waitForExecution(id)
    expect(seen(rt, 'rec', id)).toMatchObject({ decisions: 3, outcomes: 3, recorded: 1 })
  })

  it('keeps each attempt of a retried execution once, tagged with its attempt', async () => {
    const rt = await start({ entryPoints: [api('rec', 'record-handler', { maxRetries: 1 })] })
    const r = await rt.triggerAndWait('rec', { decisions: 2, ending: 'fail-first-attempt' })
    expect(r).toMatchObject({ status: 'completed', attempts: 2 })
    expect(seen(rt, 'rec', r.executionId)).toEqual({
      decisions: 4,
      outcomes: 4,
      attempts: [1, 1, 2, 2],
      recorded: 2,
      problems: 2,
    })
    expect(rt.outcomes.stats().executionsTotal).toBe(1)
  })
})

describe('outcomes through the runtime', () => {
  it('counts every record of 2000 executions on two threads exactly once', async () => {
    const rt = await start({
      goal,
      entryPoints: [
        api('a', 'record-handler', { maxConcurrent: 64 }),
        api('b', 'record-handler', { maxConcurrent: 64 }),
      ],
    })
    let recordedEvents = 0
    const labels = new Set<string>()
    let achieved = 0
    rt.events.subscribe({ types: ['goal_achieved'], handler: () => void achieved++ })
    rt.events.subscribe({
      types: ['recorded'],
      handler: (e) => {
        recordedEvents++
        labels.add((e.data as { label: string }).label)
      },
    })
    const results = await Promise.all(
      Array.from({ length: 2000 }, (_, i) =>
        rt.triggerAndWait(i % 2 === 0 ? 'a' : 'b', { decisions: 3, ending: 'return', label: String(i) }),
      ),
    )
    expect(results.every((r) => r.status === 'completed')).toBe(true)
    const stats = rt.outcomes.stats()
    expect(stats).toMatchObject({
      totalDecisions: 6000,
      successfulOutcomes: 4000,
      failedOutcomes: 2000,
      executionsTotal: 2000,
      orphanOutcomes: 0,
      problems: { low: 2000 },
    })
    expect(stats.streams.a!.decisions).toBe(3000)
    expect(stats.streams.b!.decisions).toBe(3000)
    expect(recordedEvents).toBe(2000)
    expect(labels.size).toBe(2000)
    const progress = rt.outcomes.evaluateGoalProgress()
    expect(progress.criteria.resolve_rate).toMatchObject({
      met: true,
      evidence: { decisions: 6000, outcomes: 6000, successes: 4000 },
    })
    expect(progress.recommendation).toBe('complete')
    // Every prefix of the run succeeds at least 2 times in 3 (each execution fails only its third decision).
    expect(achieved).toBe(1)
  })

  it('gives the handler a clear error for a record msgpack cannot encode, and keeps the records around it', async () => {
    const rt = await start({ entryPoints: [api('bad', 'unencodable-handler')] })
    const r = await rt.triggerAndWait<{
      refused: { name: string; code: string; message: string }
      ids: string[]
    }>('bad', null)
    expect(r.status).toBe('completed')
    expect(r.output!.refused).toMatchObject({ name: 'RecordInvalidError', code: ErrorCode.RECORD_INVALID })
    expect(r.output!.refused.message).toMatch(/^ctx\.decide: a decision record could not be encoded/)
    expect(rt.outcomes.decisionsByExecution('bad', r.executionId).map((d) => d.intent)).toEqual([
      'before',
      'after',
    ])
    expect(r.output!.ids).toEqual([`${r.executionId}:1:0`, `${r.executionId}:1:1`])
  })
})

describe('ctx.trigger delegation', () => {
  it('runs the target entry point and returns its ExecutionResult, sharing the correlation id', async () => {
    const rt = await start({
      entryPoints: [api('front', 'delegating-handler'), api('escalation', 'record-handler')],
    })
    const r = await rt.triggerAndWait<{
      ok: boolean
      result: { status: string; correlationId: string; output: unknown; executionId: string }
    }>(
      'front',
      { target: 'escalation', value: { decisions: 1, ending: 'return' } },
      { correlationId: 'ticket-42' },
    )
    expect(r.status).toBe('completed')
    expect(r.output).toMatchObject({
      ok: true,
      result: { status: 'completed', correlationId: 'ticket-42', output: { attempt: 1 } },
    })
    const child = r.output!.result.executionId
    expect(rt.outcomes.decisionsByExecution('escalation', child)).toHaveLength(1)
  })

  it('rejects in the handler with UnknownEntryPointError when the target does not exist', async () => {
    const rt = await start({ entryPoints: [api('front', 'delegating-handler')] })
    const r = await rt.triggerAndWait('front', { target: 'nowhere', value: 1 })
    expect(r.output).toMatchObject({
      ok: false,
      name: 'UnknownEntryPointError',
      code: ErrorCode.UNKNOWN_ENTRY_POINT,
    })
    expect((r.output as { message: string }).message).toMatch(/unknown entry point "nowhere"/)
  })
})
