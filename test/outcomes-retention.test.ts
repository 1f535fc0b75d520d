import { describe, expect, it } from 'vitest'
import type { Goal } from '../src/config/index.js'
import { localPipeline, seeded } from './fixtures/outcomes/pipeline.js'

const goal: Goal = {
  id: 'g',
  description: '',
  successCriteria: [
    { id: 'a', description: '', target: 0.5 },
    { id: 'b', description: '', target: '75%', weight: 2 },
  ],
  constraints: [],
}

const STREAMS = ['webhook', 'api', 'timer'] as const

describe('outcome retention', () => {
  it('keeps at most maxDecisions decisions while every counter stays exact (fixed seed, 4000 executions)', () => {
    const p = localPipeline(goal, { maxDecisions: 100 })
    const random = seeded(42)
    const expected = {
      decisions: 0,
      successes: 0,
      failures: 0,
      a: { decisions: 0, successes: 0, failures: 0 },
      b: { decisions: 0, successes: 0, failures: 0 },
      perStream: new Map<string, number>(),
    }
    const ids: string[] = []
    for (let i = 0; i < 4000; i++) {
      const streamId = STREAMS[i % STREAMS.length]!
      const ctx = p.execution(`e${i}`, streamId)
      const decisions = 1 + Math.floor(random() * 3)
      for (let j = 0; j < decisions; j++) {
        const criteria = random() < 0.5 ? ['a'] : random() < 0.5 ? ['b'] : ['a', 'b']
        const d = ctx.decide({ intent: 'x', options: [{ id: 'o' }], chosen: 'o', reasoning: '', criteria })
        ids.push(d)
        expected.decisions++
        expected.perStream.set(streamId, (expected.perStream.get(streamId) ?? 0) + 1)
        for (const c of criteria) expected[c as 'a' | 'b'].decisions++
        if (random() < 0.9) {
          const success = random() < 0.7
          ctx.recordOutcome(d, { success })
          if (success) expected.successes++
          else expected.failures++
          for (const c of criteria) expected[c as 'a' | 'b'][success ? 'successes' : 'failures']++
        }
      }
    }
    p.deliver()

    const stats = p.aggregator.stats()
    expect(stats).toMatchObject({
      retainedDecisions: 100,
      maxDecisions: 100,
      droppedDecisions: expected.decisions - 100,
      totalDecisions: expected.decisions,
      successfulOutcomes: expected.successes,
      failedOutcomes: expected.failures,
      orphanOutcomes: 0,
      executionsTotal: 4000,
    })
    for (const s of STREAMS) expect(stats.streams[s]!.decisions).toBe(expected.perStream.get(s))
    const g = p.aggregator.evaluateGoalProgress()
    for (const c of ['a', 'b'] as const) {
      expect(g.criteria[c]!.evidence).toMatchObject({
        decisions: expected[c].decisions,
        successes: expected[c].successes,
        failures: expected[c].failures,
      })
    }
    expect(g.metrics).toMatchObject({
      totalDecisions: expected.decisions,
      streamsActive: 3,
      executionsTotal: 4000,
    })

    expect(p.aggregator.recentDecisions(1000).map((d) => d.id)).toEqual(ids.slice(-100))
    expect(p.aggregator.recentDecisions(3).map((d) => d.id)).toEqual(ids.slice(-3))
    const retainedWebhook = p.aggregator.decisionsByStream('webhook')
    expect(retainedWebhook.length).toBeGreaterThan(0)
    expect(retainedWebhook.every((d) => d.streamId === 'webhook' && ids.slice(-100).includes(d.id))).toBe(
      true,
    )
    expect(p.aggregator.decisionsByExecution('webhook', 'e0')).toEqual([])
  })

  it('counts an outcome toward its criteria even when its decision was already dropped', () => {
    const p = localPipeline(goal, { maxDecisions: 10 })
    const early = p.execution('early')
    const d = early.decide({ intent: 'x', options: [], chosen: 'o', reasoning: '', criteria: ['b'] })
    p.deliver()
    for (let i = 0; i < 50; i++)
      p.execution(`filler${i}`).decide({ intent: 'x', options: [], chosen: 'o', reasoning: '' })
    p.deliver()
    expect(p.aggregator.decisionsByExecution('tickets', 'early')).toEqual([])
    early.recordOutcome(d, { success: true })
    p.deliver()
    expect(p.aggregator.evaluateGoalProgress().criteria.b!.evidence).toMatchObject({
      decisions: 1,
      successes: 1,
    })
    expect(p.aggregator.stats()).toMatchObject({ orphanOutcomes: 0, successfulOutcomes: 1 })
  })

  it('counts an outcome recorded by another execution for a dropped decision in the totals only, as an orphan', () => {
    const p = localPipeline(goal, { maxDecisions: 1 })
    const d = p
      .execution('e1')
      .decide({ intent: 'x', options: [], chosen: 'o', reasoning: '', criteria: ['a'] })
    p.execution('e2').decide({ intent: 'x', options: [], chosen: 'o', reasoning: '' })
    p.execution('later').recordOutcome(d, { success: false })
    p.deliver()
    expect(p.aggregator.stats()).toMatchObject({ orphanOutcomes: 1, failedOutcomes: 1 })
    expect(p.aggregator.evaluateGoalProgress().criteria.a!.evidence.outcomes).toBe(0)
  })

  it('attaches an outcome to its retained decision, and a later outcome from another execution replaces it exactly', () => {
    const p = localPipeline(goal)
    const ctx = p.execution('e1', 'webhook')
    const d = ctx.decide({
      intent: 'refund',
      options: [{ id: 'yes' }, { id: 'no' }],
      chosen: 'yes',
      reasoning: 'policy',
      criteria: ['a'],
      context: { amount: 12 },
    })
    ctx.recordOutcome(d, { success: false, error: new Error('card declined'), tokensUsed: 40, latencyMs: 12 })
    p.execution('e2', 'timer').recordOutcome(d, { success: true, summary: 'retried later' })
    p.deliver()
    const [decision] = p.aggregator.decisionsByExecution('webhook', 'e1')
    expect(decision).toMatchObject({
      id: d,
      executionId: 'e1',
      streamId: 'webhook',
      correlationId: 'c-e1',
      attempt: 1,
      intent: 'refund',
      chosen: 'yes',
      criteria: ['a'],
      context: { amount: 12 },
      outcome: { success: true, summary: 'retried later', executionId: 'e2', streamId: 'timer', attempt: 1 },
    })
    expect(p.aggregator.stats()).toMatchObject({
      successfulOutcomes: 1,
      failedOutcomes: 0,
      replacedOutcomes: 1,
      streams: {
        webhook: { successfulOutcomes: 0, failedOutcomes: 0 },
        timer: { successfulOutcomes: 1, failedOutcomes: 0 },
      },
    })
    expect(p.aggregator.evaluateGoalProgress().criteria.a!.evidence).toMatchObject({
      outcomes: 1,
      successes: 1,
    })
  })

  it('keeps the decisions of every attempt of a retried execution, in order', () => {
    const p = localPipeline(goal)
    p.execution('e1', 'api', 1).decide({ intent: 'first', options: [], chosen: 'o', reasoning: '' })
    p.execution('e1', 'api', 2).decide({ intent: 'second', options: [], chosen: 'o', reasoning: '' })
    p.deliver()
    expect(p.aggregator.decisionsByExecution('api', 'e1').map((d) => [d.id, d.attempt])).toEqual([
      ['e1:1:0', 1],
      ['e1:2:0', 2],
    ])
    expect(p.aggregator.stats().executionsTotal).toBe(1)
  })

  it('forgets everything on reset', () => {
    const p = localPipeline(goal)
    const ctx = p.execution('e1')
    ctx.recordOutcome(ctx.decide({ intent: 'x', options: [], chosen: 'o', reasoning: '', criteria: ['a'] }), {
      success: true,
    })
    ctx.reportProblem('high', 'slow upstream')
    p.deliver()
    p.aggregator.reset()
    expect(p.aggregator.stats()).toMatchObject({
      retainedDecisions: 0,
      totalDecisions: 0,
      successfulOutcomes: 0,
      problems: { high: 0 },
      streams: {},
    })
    expect(p.aggregator.evaluateGoalProgress()).toMatchObject({
      overallProgress: 0,
      recommendation: 'continue',
    })
    expect(p.aggregator.recentDecisions()).toEqual([])
  })
})
