import { afterEach, describe, expect, it } from 'vitest'
import { listen as listenOn } from './helpers/listen.js'
import { api, startRuntime } from './helpers/runtime.js'

const cleanups: (() => Promise<void>)[] = []
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c()
})

function listen() {
  return listenOn((fn) => cleanups.push(fn))
}

describe('work a handler leaves behind', () => {
  it('runs a timer a handler left behind while its pool thread has nothing else to do', async () => {
    const rt = await startRuntime(
      { pool: { threads: 1, tasksPerThread: 1 }, entryPoints: [api('leftover', 'leftover-timer')] },
      (fn) => cleanups.push(fn),
    )
    const heard = listen()
    const result = await rt.triggerAndWait('leftover', { channel: heard.name, tag: 'fired', delayMs: 20 })
    expect(result).toMatchObject({ status: 'completed', output: 'returned' })
    // Nothing else is sent to the pool: the thread is idle when the timer is due.
    expect(await heard.message).toBe('fired')
  })

  it('runs the leftover timers of every execution of a burst once the pool is idle again', async () => {
    const rt = await startRuntime({ entryPoints: [api('leftover', 'leftover-timer')] }, (fn) =>
      cleanups.push(fn),
    )
    const heard = Array.from({ length: 16 }, () => listen())
    const results = await Promise.all(
      heard.map((h, i) => rt.triggerAndWait('leftover', { channel: h.name, tag: `t${i}`, delayMs: 30 })),
    )
    expect(results.every((r) => r.status === 'completed')).toBe(true)
    expect(await Promise.all(heard.map((h) => h.message))).toEqual(heard.map((_, i) => `t${i}`))
  })
})
