import { describe, expect, it } from 'vitest'
import { ErrorCode, InvalidArgumentError, RecordInvalidError } from '../src/errors.js'
import type { AgentEvent } from '../src/events/index.js'
import { createExecutionRecorder } from '../src/outcomes/index.js'
import type { WireRecord } from '../src/protocol.js'
import { localPipeline } from './fixtures/outcomes/pipeline.js'

const cyclic = (): unknown => {
  const o: Record<string, unknown> = {}
  o.self = o
  return o
}

function thrown(fn: () => unknown): Error {
  try {
    fn()
  } catch (err) {
    return err as Error
  }
  throw new Error('expected a throw')
}

describe('execution recorder', () => {
  it('names its own decision in an outcome by number with the criteria, and another decision by id', () => {
    const sent: WireRecord[] = []
    const sink = { push: (r: WireRecord) => void sent.push(r) }
    const ids = { streamId: 's', entryPointId: 's', correlationId: 'c', attempt: 2 }
    const ctx = createExecutionRecorder(sink, { ...ids, executionId: 'e1' })
    const first = ctx.decide({ intent: 'i', options: [], chosen: 'o', reasoning: '', criteria: ['a'] })
    const second = ctx.decide({ intent: 'i', options: [], chosen: 'o', reasoning: '', criteria: ['b'] })
    ctx.recordOutcome(first, { success: true })
    ctx.recordOutcome('other:1:0', { success: false })
    createExecutionRecorder(sink, { ...ids, executionId: 'e2' }).recordOutcome(second, { success: true })
    const outcomes = sent.filter((r) => r.k === 'outcome')
    expect(outcomes.map((o) => [o.executionId, o.decisionSeq, o.criteria, o.decisionId])).toEqual([
      ['e1', 0, ['a'], undefined],
      ['e1', undefined, undefined, 'other:1:0'],
      ['e2', undefined, undefined, 'e1:2:1'],
    ])
    expect(outcomes.every((o) => !('decisionId' in o) || !('decisionSeq' in o))).toBe(true)
  })

  it('refuses a decision msgpack cannot encode with a clear RecordInvalidError, and the frame around it still arrives whole', () => {
    const p = localPipeline(undefined)
    const ctx = p.execution('e1')
    const before = ctx.decide({ intent: 'before', options: [], chosen: 'o', reasoning: '' })
    const err = thrown(() =>
      ctx.decide({ intent: 'bad', options: [], chosen: 'o', reasoning: '', context: { tag: Symbol('x') } }),
    )
    expect(err).toBeInstanceOf(RecordInvalidError)
    expect(err).toMatchObject({
      code: ErrorCode.RECORD_INVALID,
      details: { call: 'decide', kind: 'decision' },
    })
    expect(err.message).toMatch(
      /^ctx\.decide: a decision record could not be encoded \(.*symbol.*\); nothing of it was sent$/,
    )
    const after = ctx.decide({ intent: 'after', options: [], chosen: 'o', reasoning: '' })
    ctx.emit('still_flowing', { n: 1 })
    p.deliver()
    expect([before, after]).toEqual(['e1:1:0', 'e1:1:1'])
    expect(p.aggregator.decisionsByExecution('tickets', 'e1').map((d) => d.intent)).toEqual([
      'before',
      'after',
    ])
    expect(p.bus.history({ types: ['still_flowing'] })).toHaveLength(1)
  })

  it('refuses unencodable outcomes, events, problems and violations the same way, naming the call', () => {
    const p = localPipeline(undefined)
    const ctx = p.execution('e1')
    const d = ctx.decide({ intent: 'x', options: [], chosen: 'o', reasoning: '' })
    expect(thrown(() => ctx.recordOutcome(d, { success: true, result: cyclic() })).message).toMatch(
      /^ctx\.recordOutcome: an? outcome record could not be encoded/,
    )
    expect(thrown(() => ctx.emit('custom', cyclic())).message).toMatch(/^ctx\.emit: an? event record/)
    expect(thrown(() => ctx.violateConstraint('c', Symbol('s'))).message).toMatch(
      /^ctx\.violateConstraint: a violation record/,
    )
    // The refused outcome left the decision open: a good one is still accepted.
    ctx.recordOutcome(d, { success: true, result: { ok: 1 } })
    p.deliver()
    expect(p.aggregator.decisionsByExecution('tickets', 'e1')[0]!.outcome).toMatchObject({
      success: true,
      result: { ok: 1 },
    })
    expect(p.bus.history({ types: ['custom'] })).toEqual([])
  })

  it('carries every field of each record kind to the aggregator and the bus', () => {
    const p = localPipeline(undefined)
    const ctx = p.execution('e7', 'webhook')
    const d = ctx.decide({
      intent: 'classify ticket',
      options: [{ id: 'howto', description: 'how-to' }, { id: 'bug' }],
      chosen: 'howto',
      reasoning: 'matches how-to pattern',
      criteria: ['resolve_rate'],
      context: { at: new Date(0), tags: new Set(['a']) },
    })
    ctx.recordOutcome(d, {
      success: true,
      result: { category: 'howto' },
      summary: 'done',
      tokensUsed: 10,
      latencyMs: 5,
    })
    ctx.reportProblem('critical', 'upstream down', { decisionId: d, suggestedFix: 'retry later' })
    ctx.emit('ticket_classified', { ticket: 'T-1' })
    p.deliver()
    const [decision] = p.aggregator.decisionsByExecution('webhook', 'e7')
    expect(decision).toMatchObject({
      options: [{ id: 'howto', description: 'how-to' }, { id: 'bug' }],
      context: { at: new Date(0), tags: new Set(['a']) },
      outcome: {
        success: true,
        result: { category: 'howto' },
        summary: 'done',
        tokensUsed: 10,
        latencyMs: 5,
      },
    })
    const problem = p.bus.history({ types: ['problem_reported'] })[0] as AgentEvent<'problem_reported'>
    expect(problem).toMatchObject({
      streamId: 'webhook',
      executionId: 'e7',
      data: {
        severity: 'critical',
        description: 'upstream down',
        decisionId: d,
        suggestedFix: 'retry later',
        attempt: 1,
      },
    })
    expect(p.aggregator.stats().problems).toEqual({ low: 0, medium: 0, high: 0, critical: 1 })
    expect(p.bus.history({ types: ['ticket_classified'] })[0]).toMatchObject({
      streamId: 'webhook',
      executionId: 'e7',
      correlationId: 'c-e7',
      data: { ticket: 'T-1' },
    })
  })

  it('refuses bad arguments with InvalidArgumentError naming the call and field', () => {
    const ctx = localPipeline(undefined).execution('e1')
    const cases: [() => unknown, RegExp][] = [
      [() => ctx.decide(null as never), /ctx\.decide takes \{ intent/],
      [
        () => ctx.decide({ intent: '', options: [], chosen: 'o', reasoning: '' }),
        /ctx\.decide: intent must be a non-empty string \(got ""\)/,
      ],
      [
        () => ctx.decide({ intent: 'x', options: [{}] as never, chosen: 'o', reasoning: '' }),
        /ctx\.decide: options must be an array/,
      ],
      [
        () => ctx.decide({ intent: 'x', options: [], chosen: 'o', reasoning: 1 as never }),
        /reasoning must be a string/,
      ],
      [
        () => ctx.decide({ intent: 'x', options: [], chosen: 'o', reasoning: '', criteria: 'a' as never }),
        /criteria must be an array of criterion ids/,
      ],
      [
        () => ctx.recordOutcome('', { success: true }),
        /ctx\.recordOutcome: decisionId must be a non-empty string/,
      ],
      [() => ctx.recordOutcome('d', { success: 'yes' } as never), /outcome must be \{ success: boolean/],
      [
        () => ctx.recordOutcome('d', { success: true, tokensUsed: -1 }),
        /tokensUsed must be a finite number >= 0 \(got -1\)/,
      ],
      [
        () => ctx.reportProblem('urgent' as never, 'x'),
        /severity must be 'low', 'medium', 'high' or 'critical' \(got "urgent"\)/,
      ],
      [() => ctx.reportProblem('low', ''), /ctx\.reportProblem: description must be a non-empty string/],
      [
        () => ctx.violateConstraint(7 as never),
        /ctx\.violateConstraint: constraintId must be a non-empty string \(got 7\)/,
      ],
      [() => ctx.emit('goal_achieved', {}), /ctx\.emit: "goal_achieved" is a built-in event type/],
    ]
    for (const [call, message] of cases) {
      const err = thrown(call)
      expect(err).toBeInstanceOf(InvalidArgumentError)
      expect(err.message).toMatch(message)
    }
  })

  it('refuses a second outcome for a decision of the same attempt', () => {
    const ctx = localPipeline(undefined).execution('e1')
    const d = ctx.decide({ intent: 'x', options: [], chosen: 'o', reasoning: '' })
    ctx.recordOutcome(d, { success: true })
    expect(() => ctx.recordOutcome(d, { success: false })).toThrow(/decision e1:1:0 already has an outcome/)
  })

  it('refuses every call after close', () => {
    const ctx = localPipeline(undefined).execution('e1')
    ctx.close()
    expect(() => ctx.emit('x', 1)).toThrow(/ctx\.emit was called after execution e1 \(attempt 1\) ended/)
    expect(() => ctx.decide({ intent: 'x', options: [], chosen: 'o', reasoning: '' })).toThrow(
      InvalidArgumentError,
    )
  })

  it('gives decision ids unique per execution and attempt', () => {
    const p = localPipeline(undefined)
    const a = p.execution('e1', 's', 1).decide({ intent: 'x', options: [], chosen: 'o', reasoning: '' })
    const b = p.execution('e1', 's', 2).decide({ intent: 'x', options: [], chosen: 'o', reasoning: '' })
    const c = p.execution('e2', 's', 1).decide({ intent: 'x', options: [], chosen: 'o', reasoning: '' })
    expect(new Set([a, b, c]).size).toBe(3)
  })
})
