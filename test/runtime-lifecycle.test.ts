import { describe, expect, it } from 'vitest'
import { AgentRuntime, ConfigError, ErrorCode, NotRunningError } from '../src/index.js'
import { api, fixture } from './helpers/runtime.js'

describe('lifecycle', () => {
  it('stop({ drain: true }) finishes every admitted execution before it resolves', async () => {
    const rt = new AgentRuntime({
      pool: { threads: 2 },
      entryPoints: [api('slow', 'sleep', { maxConcurrent: 2 })],
    })
    await rt.start()
    const waits = []
    for (let i = 0; i < 10; i++) waits.push(rt.triggerAndWait('slow', { ms: 20, value: i }))
    await rt.stop({ drain: true })
    const results = await Promise.all(waits)
    expect(results.map((r) => r.status)).toEqual(Array(10).fill('completed'))
    await expect(rt.trigger('slow', { ms: 1 })).rejects.toBeInstanceOf(NotRunningError)
  })

  it('stop({ drain: false }) cancels queued and running executions', async () => {
    const rt = new AgentRuntime({
      pool: { threads: 2 },
      entryPoints: [api('slow', 'sleep', { maxConcurrent: 2 })],
    })
    await rt.start()
    const waits = []
    for (let i = 0; i < 10; i++) waits.push(rt.triggerAndWait('slow', { ms: 60_000 }))
    await rt.events.waitFor({ types: ['execution_started'], timeoutMs: 10_000 })
    await rt.stop({ drain: false })
    const results = await Promise.all(waits)
    expect(results.map((r) => r.status)).toEqual(Array(10).fill('cancelled'))
    expect(rt.stats().streams.slow).toMatchObject({ admitted: 10, cancelled: 10, running: 0, queued: 0 })
  })

  it('refuses a bad config at construction, naming the field and the value', () => {
    const bad = () =>
      new AgentRuntime({
        entryPoints: [
          { id: 'a', handler: fixture('echo'), trigger: { type: 'api' }, maxQueue: -5 },
          { id: 'a', handler: fixture('does-not-exist'), trigger: { type: 'api' } },
        ],
      })
    expect(bad).toThrow(ConfigError)
    try {
      bad()
    } catch (err) {
      const e = err as ConfigError
      expect(e.code).toBe(ErrorCode.CONFIG)
      expect(e.message).toContain('entryPoints[0].maxQueue')
      expect(e.message).toContain('-5')
      expect(e.issues.some((i) => i.path.startsWith('entryPoints[1]'))).toBe(true)
    }
  })
})
