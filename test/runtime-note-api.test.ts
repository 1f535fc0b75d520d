import { afterEach, describe, expect, it } from 'vitest'
import {
  type AgentEvent,
  ConfigError,
  EventType,
  IsolationLevel,
  OutcomeAggregator,
  resolveConfig,
  StateScope,
} from '../src/index.js'
import { api, fixture, startRuntime } from './helpers/runtime.js'

const cleanups: (() => Promise<void>)[] = []
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c()
})

const GOAL = {
  id: 'support',
  description: 'resolve tickets',
  successCriteria: [{ id: 'resolve_rate', description: 'resolved', target: 0.5 }],
}

describe('what a user porting from the design note looks for', () => {
  it('has frozen constants of the string values beside the string types', () => {
    expect(IsolationLevel.SYNCHRONIZED).toBe('synchronized')
    expect(IsolationLevel.SERIALIZABLE).toBe('serializable')
    expect(StateScope.GLOBAL).toBe('global')
    expect(EventType.EXECUTION_COMPLETED).toBe('execution_completed')
    expect(EventType.STATE_CONFLICT).toBe('state_conflict')
    for (const c of [IsolationLevel, StateScope, EventType]) expect(Object.isFrozen(c)).toBe(true)
  })

  it('validates a goal in one place: the config and the aggregator refuse the same goal with the same message', () => {
    const goal = { id: 'g', description: 'd', successCriteria: [] }
    const fromConfig = (() => {
      try {
        resolveConfig({ goal, entryPoints: [] })
      } catch (err) {
        return err as ConfigError
      }
    })()
    const fromAggregator = (() => {
      try {
        new OutcomeAggregator(goal)
      } catch (err) {
        return err as ConfigError
      }
    })()
    expect(fromConfig).toBeInstanceOf(ConfigError)
    expect(fromAggregator).toBeInstanceOf(ConfigError)
    expect(fromConfig!.issues).toEqual(fromAggregator!.issues)
    expect(fromAggregator!.issues[0]).toMatchObject({
      path: 'goal.successCriteria',
      message: 'must name at least one criterion',
    })
  })

  it('records decisions and outcomes on the main thread, counted in goal progress like a handler’s', async () => {
    const rt = await startRuntime(
      {
        goal: GOAL,
        outcomes: { maxDecisions: 50, minOutcomes: 2, adjustAfterDecisions: 5, lowProgress: 0.25 },
        events: { historySize: 64 },
        entryPoints: [api('tickets', 'echo')],
      },
      (fn) => cleanups.push(fn),
    )
    expect(rt.outcomes.options).toMatchObject({ maxDecisions: 50, minOutcomes: 2, adjustAfterDecisions: 5 })
    expect(rt.events.historySize).toBe(64)
    const decision = {
      intent: 'route',
      options: [{ id: 'a' }],
      chosen: 'a',
      reasoning: 'r',
      criteria: ['resolve_rate'],
    }
    const first = rt.outcomes.recordDecision(decision, { streamId: 'tickets' })
    const second = rt.outcomes.recordDecision(decision, { streamId: 'tickets', executionId: 'ext-1' })
    const third = rt.outcomes.recordDecision(decision, { streamId: 'tickets', executionId: 'ext-1' })
    expect(new Set([first, second, third]).size).toBe(3)
    rt.outcomes.recordOutcome(first, { success: true })
    rt.outcomes.recordOutcome(second, { success: true })
    rt.outcomes.recordOutcome(third, { success: false })
    const p = rt.outcomes.evaluateGoalProgress()
    expect(p.metrics).toMatchObject({
      totalDecisions: 3,
      successfulOutcomes: 2,
      failedOutcomes: 1,
      executionsTotal: 2,
    })
    expect(p.criteria.resolve_rate).toMatchObject({ met: true })
    expect(rt.outcomes.decisionsByExecution('tickets', 'ext-1').map((d) => d.id)).toEqual([second, third])
    expect(() => rt.outcomes.recordDecision(decision, { streamId: '' })).toThrow(/streamId/)
    expect(() => rt.outcomes.recordOutcome('nope:1:0', { success: true })).toThrow(/no retained decision/)
  })

  it('carries a small output on execution_completed and flags a large one; filters events by correlation id', async () => {
    const rt = await startRuntime(
      {
        entryPoints: [
          api('tickets', 'echo'),
          { id: 'ops', handler: fixture('echo'), trigger: { type: 'manual' } },
        ],
      },
      (fn) => cleanups.push(fn),
    )
    const mine: AgentEvent[] = []
    rt.events.subscribe({ correlationId: 'chain-7', handler: (e) => mine.push(e) })
    const completed = rt.events.waitFor({ types: ['execution_completed'], correlationId: 'chain-7' })
    await rt.triggerAndWait('tickets', { n: 1 }, { correlationId: 'other' })
    const small = await rt.triggerAndWait('tickets', { n: 2 }, { correlationId: 'chain-7' })
    const event = await completed
    expect(event.executionId).toBe(small.executionId)
    expect((event.data as { output: unknown }).output).toEqual(small.output)
    expect(mine.map((e) => e.type)).toEqual(['execution_started', 'execution_completed'])
    expect(rt.events.history({ correlationId: 'chain-7' }).map((e) => e.executionId)).toEqual([
      small.executionId,
      small.executionId,
    ])
    const large = await rt.triggerAndWait('tickets', { text: 'x'.repeat(20_000) })
    const [done] = rt.events.history({ types: ['execution_completed'], executionId: large.executionId })
    expect(done!.data).not.toHaveProperty('output')
    expect((done!.data as { outputBytes: number }).outputBytes).toBeGreaterThan(16 * 1024)
    const manual = await rt.triggerAndWait('ops', {})
    expect((manual.output as { meta: { trigger: string } }).meta.trigger).toBe('manual')
    const viaApi = await rt.triggerAndWait('tickets', {})
    expect((viaApi.output as { meta: { trigger: string } }).meta.trigger).toBe('api')
  })

  it('puts the correlation id on webhook_received and trigger_fired', async () => {
    const rt = await startRuntime(
      { entryPoints: [{ id: 'hook', handler: fixture('echo'), trigger: { type: 'webhook', path: '/in' } }] },
      (fn) => cleanups.push(fn),
    )
    const fired = rt.events.waitFor({ types: ['trigger_fired'], correlationId: 'corr-42' })
    const received = rt.events.waitFor({ types: ['webhook_received'], correlationId: 'corr-42' })
    const res = await fetch(`${rt.webhookUrl}/in`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-correlation-id': 'corr-42' },
      body: '{}',
    })
    expect(res.status).toBe(202)
    const { executionId } = (await res.json()) as { executionId: string }
    expect((await fired).executionId).toBe(executionId)
    expect((await received).executionId).toBe(executionId)
  })
})
