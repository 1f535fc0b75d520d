import { describe, expect, it } from 'vitest'
import type { Goal } from '../src/config/index.js'
import { ConfigError, ErrorCode, InvalidArgumentError } from '../src/errors.js'
import { type AgentEvent, EventBus } from '../src/events/index.js'
import { createExecutionRecorder, OutcomeAggregator, routeRecords } from '../src/outcomes/index.js'
import type { WireRecord } from '../src/protocol.js'
import { localPipeline } from './fixtures/outcomes/pipeline.js'

const goal: Goal = {
  id: 'tier1',
  description: 'resolve tier-1 tickets',
  successCriteria: [
    { id: 'resolve_rate', description: 'tickets resolved', target: 0.8, weight: 3 },
    { id: 'csat', description: 'happy customers', target: '90%' },
  ],
  constraints: [
    { id: 'no_pii_leak', description: 'never echo PII', kind: 'hard' },
    { id: 'fast_reply', description: 'reply within 5 minutes', kind: 'soft' },
  ],
}

type Pipeline = ReturnType<typeof localPipeline>

/** One execution deciding once per outcome, each decision naming `criteria`. */
function record(
  p: Pipeline,
  executionId: string,
  criteria: string[],
  outcomes: boolean[],
  streamId = 'tickets',
): void {
  const ctx = p.execution(executionId, streamId)
  for (const success of outcomes) {
    const d = ctx.decide({
      intent: 'classify',
      options: [{ id: 'a' }, { id: 'b' }],
      chosen: 'a',
      reasoning: 'r',
      criteria,
    })
    ctx.recordOutcome(d, { success })
  }
  p.deliver()
}

const times = (n: number, success: boolean): boolean[] => Array.from({ length: n }, () => success)

describe('goal evaluation', () => {
  it('weights criteria progress by their weight', () => {
    const p = localPipeline(goal)
    record(p, 'e1', ['resolve_rate'], times(4, true))
    record(p, 'e2', ['csat'], [true, false])
    const g = p.aggregator.evaluateGoalProgress()
    expect(g.criteria.resolve_rate).toMatchObject({ met: true, progress: 1 })
    expect(g.criteria.csat!.progress).toBeCloseTo(0.5 / 0.9, 12)
    expect(g.criteria.csat!.met).toBe(false)
    expect(g.overallProgress).toBeCloseTo((3 * 1 + 1 * (0.5 / 0.9)) / 4, 12)
    expect(g.criteria.csat!.evidence).toEqual({
      decisions: 2,
      outcomes: 2,
      successes: 1,
      failures: 1,
      successRate: 0.5,
      target: 0.9,
      weight: 1,
    })
  })

  it("reads a '90%' target as 0.9: 9 of 10 meets it, 8 of 10 does not", () => {
    const p = localPipeline(goal)
    record(p, 'e1', ['csat'], [...times(8, true), false, false])
    let csat = p.aggregator.evaluateGoalProgress().criteria.csat!
    expect(csat.met).toBe(false)
    expect(csat.progress).toBeCloseTo(0.8 / 0.9, 12)
    record(p, 'e2', ['csat'], times(10, true))
    csat = p.aggregator.evaluateGoalProgress().criteria.csat!
    expect(csat.evidence).toMatchObject({ outcomes: 20, successes: 18, target: 0.9 })
    expect(csat.met).toBe(true)
    expect(csat.progress).toBe(1)
  })

  it('counts a decision toward every criterion it names and toward none it does not', () => {
    const p = localPipeline(goal)
    record(p, 'e1', ['resolve_rate', 'csat', 'not_in_goal'], [true, false])
    record(p, 'e2', [], [true])
    const g = p.aggregator.evaluateGoalProgress()
    expect(g.criteria.resolve_rate!.evidence.decisions).toBe(2)
    expect(g.criteria.csat!.evidence.decisions).toBe(2)
    expect(Object.keys(g.criteria)).toEqual(['resolve_rate', 'csat'])
    expect(g.metrics).toMatchObject({ totalDecisions: 3, successfulOutcomes: 2, failedOutcomes: 1 })
    expect(g.metrics.successRate).toBeCloseTo(2 / 3, 12)
  })

  it('recommends complete when every criterion is met and no hard constraint is violated, even with soft violations', () => {
    const p = localPipeline(goal)
    record(p, 'e1', ['resolve_rate', 'csat'], times(5, true))
    p.execution('e2').violateConstraint('fast_reply', { minutes: 7 })
    p.deliver()
    const g = p.aggregator.evaluateGoalProgress()
    expect(g.recommendation).toBe('complete')
    expect(g.overallProgress).toBe(1)
    expect(g.constraintViolations).toEqual([
      expect.objectContaining({
        constraintId: 'fast_reply',
        kind: 'soft',
        known: true,
        count: 1,
        lastDetails: { minutes: 7 },
      }),
    ])
  })

  it('recommends adjust as soon as a hard constraint is violated, even with every criterion met', () => {
    const p = localPipeline(goal)
    record(p, 'e1', ['resolve_rate', 'csat'], times(5, true))
    const ctx = p.execution('e2', 'webhook')
    ctx.violateConstraint('no_pii_leak', { field: 'email' })
    ctx.violateConstraint('no_pii_leak', { field: 'phone' })
    p.deliver()
    const g = p.aggregator.evaluateGoalProgress()
    expect(g.recommendation).toBe('adjust')
    expect(g.constraintViolations).toEqual([
      {
        constraintId: 'no_pii_leak',
        kind: 'hard',
        known: true,
        description: 'never echo PII',
        count: 2,
        lastDetails: { field: 'phone' },
        lastExecutionId: 'e2',
        lastStreamId: 'webhook',
        lastTimestamp: expect.any(Number),
      },
    ])
    expect(p.aggregator.stats().violations).toEqual({ hard: 2, soft: 0 })
  })

  it('counts a constraint the goal does not name as soft', () => {
    const p = localPipeline(goal)
    p.execution('e1').violateConstraint('made_up', 'x')
    p.deliver()
    const g = p.aggregator.evaluateGoalProgress()
    expect(g.constraintViolations[0]).toMatchObject({ constraintId: 'made_up', kind: 'soft', known: false })
    expect(g.recommendation).toBe('continue')
  })

  it('recommends adjust when progress stays below lowProgress after adjustAfterDecisions decisions, continue before', () => {
    const p = localPipeline(goal, { adjustAfterDecisions: 10, lowProgress: 0.5 })
    record(p, 'e1', ['resolve_rate', 'csat'], [true, ...times(8, false)])
    expect(p.aggregator.evaluateGoalProgress().recommendation).toBe('continue')
    record(p, 'e2', ['resolve_rate', 'csat'], [false])
    const g = p.aggregator.evaluateGoalProgress()
    expect(g.metrics.totalDecisions).toBe(10)
    expect(g.overallProgress).toBeLessThan(0.5)
    expect(g.recommendation).toBe('adjust')
  })

  it('recommends continue when progress is fine but not every criterion is met yet', () => {
    const p = localPipeline(goal, { adjustAfterDecisions: 2 })
    record(p, 'e1', ['resolve_rate'], times(30, true))
    const g = p.aggregator.evaluateGoalProgress()
    expect(g.overallProgress).toBe(0.75)
    expect(g.recommendation).toBe('continue')
  })

  it('needs minOutcomes outcomes before a criterion is met', () => {
    const p = localPipeline(goal, { minOutcomes: 3 })
    record(p, 'e1', ['resolve_rate', 'csat'], times(2, true))
    expect(p.aggregator.evaluateGoalProgress().criteria.csat).toMatchObject({ met: false, progress: 1 })
    record(p, 'e2', ['resolve_rate', 'csat'], times(1, true))
    expect(p.aggregator.evaluateGoalProgress().recommendation).toBe('complete')
  })

  it('reports active streams and executions, counting a retried execution once', () => {
    const p = localPipeline(goal)
    record(p, 'e1', [], [true], 'webhook')
    record(p, 'e2', [], [true], 'api')
    const retry = p.execution('e1', 'webhook', 2)
    retry.decide({ intent: 'again', options: [], chosen: 'x', reasoning: '' })
    p.execution('e3', 'timer').emit('tick', null)
    p.deliver()
    expect(p.aggregator.evaluateGoalProgress().metrics).toMatchObject({
      streamsActive: 2,
      executionsTotal: 2,
      totalDecisions: 3,
    })
  })

  it('without a goal, reports counters, progress 0 and continue, and publishes no goal events', () => {
    const p = localPipeline(undefined)
    record(p, 'e1', ['anything'], times(3, true))
    const g = p.aggregator.evaluateGoalProgress()
    expect(g).toMatchObject({
      goalId: undefined,
      overallProgress: 0,
      criteria: {},
      recommendation: 'continue',
    })
    expect(g.metrics.successfulOutcomes).toBe(3)
    expect(p.bus.history({ types: ['goal_progress', 'goal_achieved'] })).toEqual([])
  })
})

describe('goal events', () => {
  it('publishes goal_progress only when progress moves by progressStep, met flips or the recommendation changes', () => {
    const p = localPipeline(goal, { progressStep: 0.1 })
    record(p, 'e1', ['resolve_rate'], [true])
    const first = p.bus.history({ types: ['goal_progress'] })
    expect(first).toHaveLength(1)
    expect(first[0]!.data).toEqual({
      goalId: 'tier1',
      overallProgress: 0.75,
      recommendation: 'continue',
      criteria: { resolve_rate: { met: true, progress: 1 }, csat: { met: false, progress: 0 } },
    })
    record(p, 'e2', ['resolve_rate'], times(20, true))
    expect(p.bus.history({ types: ['goal_progress'] })).toHaveLength(1)
    record(p, 'e3', ['csat'], [true])
    const events = p.bus.history({ types: ['goal_progress'] }) as AgentEvent<'goal_progress'>[]
    expect(events.map((e) => e.data.overallProgress)).toEqual([0.75, 1])
    expect(events[1]!.streamId).toBe('tickets')
    expect(events[1]!.executionId).toBe('e3')
  })

  it('publishes goal_achieved once when the goal becomes complete, and again only after it was lost and regained', () => {
    const p = localPipeline(goal)
    record(p, 'e1', ['resolve_rate', 'csat'], times(10, true))
    record(p, 'e2', ['resolve_rate', 'csat'], times(5, true))
    expect(p.bus.history({ types: ['goal_achieved'] })).toHaveLength(1)
    record(p, 'e3', ['resolve_rate', 'csat'], times(5, false))
    expect(p.aggregator.evaluateGoalProgress().recommendation).toBe('continue')
    record(p, 'e4', ['resolve_rate', 'csat'], times(40, true))
    const achieved = p.bus.history({ types: ['goal_achieved'] })
    expect(achieved.map((e) => e.executionId)).toEqual(['e1', 'e4'])
    expect(achieved[0]!.data).toEqual({ goalId: 'tier1', overallProgress: 1 })
  })

  it('publishes constraint_violation for every violation with its kind', () => {
    const p = localPipeline(goal)
    const ctx = p.execution('e1', 'webhook')
    ctx.violateConstraint('no_pii_leak', { field: 'email' })
    ctx.violateConstraint('fast_reply', 9)
    p.deliver()
    const events = p.bus.history({ types: ['constraint_violation'] })
    expect(events.map((e) => [e.streamId, e.executionId, e.data])).toEqual([
      [
        'webhook',
        'e1',
        { constraintId: 'no_pii_leak', kind: 'hard', known: true, details: { field: 'email' }, attempt: 1 },
      ],
      ['webhook', 'e1', { constraintId: 'fast_reply', kind: 'soft', known: true, details: 9, attempt: 1 }],
    ])
    const progress = p.bus.history({ types: ['goal_progress'] }) as AgentEvent<'goal_progress'>[]
    expect(progress.at(-1)!.data.recommendation).toBe('adjust')
  })
})

describe('goal events per batch', () => {
  it('evaluates the goal once per routed batch, so a burst publishes one goal_progress naming its last record', () => {
    const bus = new EventBus()
    const aggregator = new OutcomeAggregator(goal, { bus })
    const records: WireRecord[] = []
    for (let i = 0; i < 10; i++) {
      const ctx = createExecutionRecorder(
        { push: (r) => void records.push(r) },
        { executionId: `e${i}`, streamId: 'api', entryPointId: 'api', correlationId: `c${i}`, attempt: 1 },
      )
      ctx.recordOutcome(
        ctx.decide({ intent: 'x', options: [], chosen: 'o', reasoning: '', criteria: ['resolve_rate'] }),
        {
          success: true,
        },
      )
    }
    records.push({
      k: 'end',
      executionId: 'e9',
      streamId: 'api',
      attempt: 1,
      ok: true,
      startedAt: 0,
      completedAt: 0,
    })
    expect(routeRecords(records, { aggregator, bus })).toBe(20)
    const progress = bus.history({ types: ['goal_progress'] })
    expect(progress).toHaveLength(1)
    expect(progress[0]).toMatchObject({ streamId: 'api', executionId: 'e9', data: { overallProgress: 0.75 } })
  })
})

describe('goal and option validation', () => {
  it('refuses a bad goal with a ConfigError naming every bad field', () => {
    const bad = {
      id: 'g',
      description: '',
      successCriteria: [
        { id: 'a', description: '', target: '120%' },
        { id: 'a', description: '', target: 0.5, weight: -1 },
      ],
      constraints: [{ id: 'c', description: '', kind: 'sometimes' }],
    } as unknown as Goal
    const err = (() => {
      try {
        new OutcomeAggregator(bad)
      } catch (e) {
        return e
      }
    })() as ConfigError
    expect(err).toBeInstanceOf(ConfigError)
    expect(err.code).toBe(ErrorCode.CONFIG)
    expect(err.issues.map((i) => i.path)).toEqual([
      'goal.successCriteria[0].target',
      'goal.successCriteria[1].id',
      'goal.successCriteria[1].weight',
      'goal.constraints[0].kind',
    ])
    expect(err.message).toMatch(/got "120%"/)
  })

  it('refuses options out of range with the option name and value', () => {
    expect(() => new OutcomeAggregator(goal, { maxDecisions: -5 })).toThrow(InvalidArgumentError)
    expect(() => new OutcomeAggregator(goal, { maxDecisions: 1.5 })).toThrow(
      /maxDecisions must be an integer >= 0 \(got 1.5\)/,
    )
    expect(() => new OutcomeAggregator(goal, { lowProgress: 2 })).toThrow(
      /lowProgress must be a number in \[0, 1\] \(got 2\)/,
    )
    expect(() => new OutcomeAggregator(goal, { minOutcomes: 0 })).toThrow(/minOutcomes/)
  })
})
