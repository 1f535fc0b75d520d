import { afterEach, describe, expect, it } from 'vitest'
import type { AgentRuntime } from '../src/index.js'
import { api, startRuntime } from './helpers/runtime.js'

const cleanups: (() => Promise<void>)[] = []
const onCleanup = (fn: () => Promise<void>) => cleanups.push(fn)
afterEach(async () => {
  for (const fn of cleanups.splice(0)) await fn()
})

function globalState(rt: AgentRuntime, ...keys: string[]): Record<string, unknown> {
  const view = rt.state.createBuffer('checker', 'checker', 'shared')
  try {
    return Object.fromEntries(keys.map((k) => [k, view.read(k, { scope: 'global' })]))
  } finally {
    rt.state.cleanupExecution('checker')
  }
}

describe('state at its limits, end to end', () => {
  it('a transaction that moves 10 and writes a 600 000-character value completes once (maxRetries 2): a=90, b=10', async () => {
    const rt = await startRuntime(
      {
        entryPoints: [api('limits', 'state-limits', { maxRetries: 2 })],
        state: { maxBytes: 64 << 20, maxKeys: 1000 },
      },
      onCleanup,
    )
    const changes: any[] = []
    rt.events.subscribe({ types: ['state_changed'], handler: (e) => void changes.push(e.data) })
    expect(await rt.triggerAndWait('limits', { kind: 'init' })).toMatchObject({ status: 'completed' })
    const r = await rt.triggerAndWait('limits', { kind: 'move', bigChars: 600_000 })
    expect(r).toMatchObject({ status: 'completed', attempts: 1, output: { a: 90, b: 10 } })
    expect(globalState(rt, 'a', 'b')).toEqual({ a: 90, b: 10 })
    expect((globalState(rt, 'big').big as string).length).toBe(600_000)
    // The big value's change record carries the key, version and sizes, not the value.
    const big = changes.find((c) => c.key === 'big')
    expect(big).toMatchObject({ scope: 'global', truncated: true, oldBytes: 0, new: undefined })
    expect(big.newBytes).toBeGreaterThan(600_000)
    expect(changes.findLast((c) => c.key === 'a')).toMatchObject({
      old: 100,
      new: 90,
      oldBytes: 8,
      newBytes: 8,
    })
    expect(changes.findLast((c) => c.key === 'a').truncated).toBeUndefined()
  })

  it('a handler writes and updates a 600 000-character value without an error after its commit', async () => {
    const rt = await startRuntime(
      { entryPoints: [api('limits', 'state-limits')], state: { maxBytes: 64 << 20, maxKeys: 1000 } },
      onCleanup,
    )
    const r = await rt.triggerAndWait('limits', { kind: 'large', chars: 600_000 })
    expect(r).toMatchObject({ status: 'completed', output: { length: 600_001 } })
  })

  it('every refused write throws its coded error before its commit point: nothing of it is stored', async () => {
    const rt = await startRuntime(
      { entryPoints: [api('limits', 'state-limits')], state: { maxBytes: 16 << 20, maxKeys: 100 } },
      onCleanup,
    )
    const r = await rt.triggerAndWait('limits', { kind: 'refused' })
    expect(r.status).toBe('completed')
    const { out, other, high } = r.output as any
    const codes = Object.fromEntries(out.map((o: any) => [o.what, o.code]))
    expect(codes).toEqual({
      'empty key': 'AGENTPOOL_STATE_KEY',
      'lone high surrogate key': 'AGENTPOOL_STATE_KEY',
      'lone low surrogate key': 'AGENTPOOL_STATE_KEY',
      'key too long': 'AGENTPOOL_STATE_KEY',
      'function value': 'AGENTPOOL_STATE_VALUE',
      'lone surrogate value': 'AGENTPOOL_STATE_VALUE',
      'lone surrogate object key': 'AGENTPOOL_STATE_VALUE',
      'array hole': 'AGENTPOOL_STATE_VALUE',
      'null-prototype object': 'AGENTPOOL_STATE_VALUE',
      'value too large': 'AGENTPOOL_STATE_VALUE',
      'bad value in a transaction': 'AGENTPOOL_STATE_VALUE',
    })
    for (const o of out) expect(o.keep).toBe('original')
    expect(other).toBe(false)
    expect(high).toBe(false)
  })

  it('a full key budget is refused before the commit, saying how many keys are live and what is full', async () => {
    const rt = await startRuntime(
      { entryPoints: [api('limits', 'state-limits')], state: { maxBytes: 16 << 20, maxKeys: 100 } },
      onCleanup,
    )
    const r = await rt.triggerAndWait('limits', { kind: 'fill', keys: 200 })
    expect(r.status).toBe('completed')
    const out = r.output as any
    expect(out.code).toBe('AGENTPOOL_STATE_CAPACITY')
    expect(out.lastAbsent).toBe(true)
    expect(out.message).toMatch(/maxKeys full: 100 live/)
    expect(out.details).toMatchObject({ full: 'keys', keys: 100, maxKeys: 100 })
    expect(rt.state.stats().keys).toBe(out.written)
  })

  it('a full value region is refused before the commit, saying how many keys are live and that the data bytes are full', async () => {
    const rt = await startRuntime(
      { entryPoints: [api('limits', 'state-limits')], state: { maxBytes: 16 << 20, maxKeys: 100 } },
      onCleanup,
    )
    const r = await rt.triggerAndWait('limits', { kind: 'fillBytes', chars: 900_000 })
    expect(r.status).toBe('completed')
    const out = r.output as any
    expect(out.code).toBe('AGENTPOOL_STATE_CAPACITY')
    expect(out.written).toBeGreaterThan(2)
    expect(out.lastAbsent).toBe(true)
    expect(out.message).toMatch(/data bytes full/)
    expect(out.details).toMatchObject({ full: 'bytes', keys: out.written })
  })

  it('maxKeys 1000: 1000 executions each holding one execution-scope key at once all complete (group heads do not count)', async () => {
    const rt = await startRuntime(
      {
        entryPoints: [api('limits', 'state-limits', { maxConcurrent: 1000 })],
        state: { maxBytes: 16 << 20, maxKeys: 1000 },
        pool: { threads: 2, tasksPerThread: 500 },
      },
      onCleanup,
    )
    // Each holds its key for 1.5 s: the main thread watches how many are held at once.
    let most = 0
    const watch = setInterval(() => {
      most = Math.max(most, rt.state.stats().keys)
    }, 10)
    const results = await Promise.all(
      Array.from({ length: 1000 }, () => rt.triggerAndWait('limits', { kind: 'execKey' })),
    ).finally(() => clearInterval(watch))
    // Past the 921 the index allowed when group heads counted against maxKeys.
    expect(most).toBeGreaterThan(950)
    expect(results.filter((r) => r.status === 'completed')).toHaveLength(1000)
    for (const r of results) expect(r.output).toBe(r.executionId)
  })
})
