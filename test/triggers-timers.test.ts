import { afterEach, describe, expect, it } from 'vitest'
import { ErrorCode, InvalidArgumentError, NotRunningError } from '../src/errors.js'
import type { AgentEvent } from '../src/events/index.js'
import type { TriggerRefusedData, Triggers } from '../src/triggers/index.js'
import { type FakeHost, startOnFakeHost } from './fixtures/triggers/fake-host.js'

const running: Triggers[] = []
afterEach(async () => {
  for (const t of running.splice(0)) await t.stop()
})

const start = (triggers: Record<string, Record<string, unknown>>) => startOnFakeHost(triggers, running)

/** Resolves with the next `n` events of `type` on `streamId`. */
function nextEvents(host: FakeHost, type: string, streamId: string, n: number): Promise<AgentEvent[]> {
  return new Promise((resolve) => {
    const seen: AgentEvent[] = []
    const sub = host.events.subscribe({
      types: [type],
      streamId,
      handler: (e) => {
        seen.push(e as AgentEvent)
        if (seen.length === n) {
          host.events.unsubscribe(sub)
          resolve(seen)
        }
      },
    })
  })
}

/** Resolves once `n` events of `type` on `streamId` have been published, counting those already in the history. */
function eventsSoFar(host: FakeHost, type: string, streamId: string, n: number): Promise<void> {
  return new Promise((resolve) => {
    let count = 0
    const sub = host.events.subscribe({
      types: [type],
      streamId,
      handler: () => {
        if (++count >= n) {
          host.events.unsubscribe(sub)
          resolve()
        }
      },
    })
    count = host.events.history({ types: [type], streamId }).length
    if (count >= n) {
      host.events.unsubscribe(sub)
      resolve()
    }
  })
}

describe('interval timers', () => {
  it('fire at a fixed rate with the slot in the input and ctx.meta, publishing trigger_fired', async () => {
    const { host, t } = await start({ tick: { type: 'timer', intervalMs: 25 } })
    const fired = await nextEvents(host, 'trigger_fired', 'tick', 4)
    expect(fired.map((e) => e.data)).toEqual(Array(4).fill({ entryPointId: 'tick', triggerType: 'timer' }))
    const calls = host.callsFor('tick').slice(0, 4)
    expect(calls.map((c) => c.executionId)).toEqual(fired.map((e) => e.executionId))
    const slots = calls.map((c) => (c.input as { scheduledAt: number }).scheduledAt)
    for (const [i, c] of calls.entries())
      expect(c.opts.meta).toEqual({ trigger: 'timer', scheduledAt: slots[i] })
    for (let i = 1; i < slots.length; i++) expect(slots[i]! - slots[i - 1]!).toBeGreaterThanOrEqual(25)
    const s = t.timerStats().tick!
    expect(s.paused).toBe(false)
    expect(s.fired).toBeGreaterThanOrEqual(4)
    expect(s.nextFireAt).toBeGreaterThan(slots[3]!)
  })

  it('fire once at start with runImmediately, long before the first period ends', async () => {
    const { host, t } = await start({ now: { type: 'timer', intervalMs: 3_600_000, runImmediately: true } })
    await eventsSoFar(host, 'trigger_fired', 'now', 1)
    expect(host.callsFor('now')).toHaveLength(1)
    expect(t.timerStats().now).toMatchObject({ fired: 1, skipped: 0, paused: false })
    expect(t.timerStats().now!.nextFireAt).toBeGreaterThan(Date.now() + 3_500_000)
  })

  it('pause stops the ticks and clears the next fire time; resume starts them again', async () => {
    const { host, t } = await start({
      a: { type: 'timer', intervalMs: 15 },
      ref: { type: 'timer', intervalMs: 15 },
    })
    await nextEvents(host, 'trigger_fired', 'a', 1)
    t.pauseTimer('a')
    const firedWhenPaused = t.timerStats().a!.fired
    expect(t.timerStats().a).toMatchObject({ paused: true, nextFireAt: null })
    await nextEvents(host, 'trigger_fired', 'ref', 6)
    expect(t.timerStats().a!.fired).toBe(firedWhenPaused)
    expect(host.callsFor('a')).toHaveLength(firedWhenPaused)
    t.resumeTimer('a')
    expect(t.timerStats().a!.paused).toBe(false)
    expect(t.timerStats().a!.nextFireAt).toBeGreaterThan(Date.now() - 1)
    await nextEvents(host, 'trigger_fired', 'a', 2)
    expect(t.timerStats().a!.fired).toBe(firedWhenPaused + 2)
  })

  it('skip and count a tick that finds the stream at maxConcurrent, publishing trigger_refused', async () => {
    const { host, t } = await start({ busy: { type: 'timer', intervalMs: 10 } })
    host.streams.busy!.running = host.streams.busy!.maxConcurrent
    const refused = await nextEvents(host, 'trigger_refused', 'busy', 3)
    expect(refused.map((e) => (e.data as TriggerRefusedData).reason)).toEqual([
      'at_capacity',
      'at_capacity',
      'at_capacity',
    ])
    expect((refused[0]!.data as TriggerRefusedData).scheduledAt).toEqual(expect.any(Number))
    const callsWhileBusy = host.callsFor('busy').length
    expect(t.timerStats().busy!.skipped).toBe(3)
    host.streams.busy!.running = 0
    await nextEvents(host, 'trigger_fired', 'busy', 1)
    expect(host.callsFor('busy').length).toBe(callsWhileBusy + 1)
    expect(t.timerStats().busy!.skipped).toBe(3)
  })

  it('count a tick the runtime refuses (full queue) as skipped, with the error in trigger_refused', async () => {
    const { host, t } = await start({ full: { type: 'timer', intervalMs: 10 } })
    host.full.add('full')
    const e = (await nextEvents(host, 'trigger_refused', 'full', 1))[0]!
    expect(e.data).toMatchObject({
      reason: 'refused',
      triggerType: 'timer',
      error: { code: ErrorCode.QUEUE_FULL },
    })
    expect(t.timerStats().full!.skipped).toBeGreaterThanOrEqual(1)
  })

  it('stop every tick on stop(), and refuse resume afterwards', async () => {
    const a = await start({ stopped: { type: 'timer', intervalMs: 10 } })
    const ref = await start({ ref: { type: 'timer', intervalMs: 10 } })
    await nextEvents(a.host, 'trigger_fired', 'stopped', 1)
    await a.t.stop()
    const calls = a.host.calls.length
    await nextEvents(ref.host, 'trigger_fired', 'ref', 5)
    expect(a.host.calls.length).toBe(calls)
    expect(a.t.timerStats().stopped!.nextFireAt).toBeNull()
    expect(() => a.t.resumeTimer('stopped')).toThrow(NotRunningError)
  })
})

describe('cron timers', () => {
  it('fire on a 6-field expression at whole seconds', async () => {
    const { host, t } = await start({ sec: { type: 'timer', cron: '* * * * * *' } })
    const next = t.timerStats().sec!.nextFireAt!
    expect(next % 1000).toBe(0)
    expect(next - Date.now()).toBeLessThanOrEqual(1000)
    await nextEvents(host, 'trigger_fired', 'sec', 2)
    const slots = host.callsFor('sec').map((c) => (c.opts.meta as { scheduledAt: number }).scheduledAt)
    expect(slots.every((s) => s % 1000 === 0)).toBe(true)
    expect(slots[1]! - slots[0]!).toBe(1000)
  })

  it('compute the next fire time of a 5-field expression in its time zone', async () => {
    const { t } = await start({ midnight: { type: 'timer', cron: '0 0 * * *', timezone: 'Asia/Kathmandu' } })
    const next = t.timerStats().midnight!.nextFireAt!
    // Kathmandu is UTC+05:45 all year: its midnight is 18:15 UTC.
    expect(new Date(next).toISOString().slice(11)).toBe('18:15:00.000Z')
    expect(next - Date.now()).toBeGreaterThan(0)
    expect(next - Date.now()).toBeLessThanOrEqual(86_400_000)
  })

  it('pause and resume a cron timer', async () => {
    const { t } = await start({ c: { type: 'timer', cron: '*/5 * * * *' } })
    t.pauseTimer('c')
    expect(t.timerStats().c).toMatchObject({ paused: true, nextFireAt: null })
    t.resumeTimer('c')
    expect(t.timerStats().c!.nextFireAt! % 300_000).toBe(0)
  })
})

describe('timer control', () => {
  it('refuses to pause or resume an entry point without a timer, naming the timers there are', async () => {
    const { t } = await start({ c: { type: 'timer', intervalMs: 60_000 }, api: { type: 'api' } })
    expect(() => t.pauseTimer('api')).toThrow(InvalidArgumentError)
    expect(() => t.resumeTimer('ghost')).toThrow('no timer trigger for entry point "ghost"; timers: "c"')
  })
})
