import { randomUUID } from 'node:crypto'
import { BroadcastChannel } from 'node:worker_threads'
import { afterEach, describe, expect, it } from 'vitest'
import { api, startRuntime } from './helpers/runtime.js'

const cleanups: (() => Promise<void>)[] = []
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c()
})

/** Resolves with the first message posted on a fresh BroadcastChannel; the channel's name. */
function listen(): { name: string; message: Promise<unknown> } {
  const name = `leftover-${randomUUID()}`
  const channel = new BroadcastChannel(name)
  const message = new Promise((resolve) => {
    channel.onmessage = (event) => {
      channel.close()
      resolve((event as { data: unknown }).data)
    }
  })
  cleanups.push(async () => channel.close())
  return { name, message }
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
