import { describe, expect, it } from 'vitest'
import { Timeouts } from '../src/runtime/timeouts.js'

describe('execution timeouts', () => {
  it('expires exactly the timeouts not removed in time, each once, earliest first, over several lengths', async () => {
    const expired: string[] = []
    let done: () => void = () => {}
    const allExpired = new Promise<void>((resolve) => {
      done = resolve
    })
    const timeouts = new Timeouts<string>((item) => {
      expired.push(item)
      if (expired.length === 4) done()
    })
    const a = timeouts.add('a', 20)
    timeouts.add('b', 20)
    const c = timeouts.add('c', 5)
    timeouts.add('d', 5)
    timeouts.add('e', 40)
    const f = timeouts.add('f', 20)
    timeouts.remove(a)
    timeouts.remove(c)
    timeouts.remove(c)
    timeouts.add('g', 5)
    timeouts.remove(f)
    await allExpired
    expect(expired).toEqual(['d', 'g', 'b', 'e'])
    timeouts.clear()
  })

  it('never expires anything after clear()', async () => {
    const expired: string[] = []
    const timeouts = new Timeouts<string>((item) => expired.push(item))
    timeouts.add('x', 1)
    timeouts.clear()
    // A later timeout proves the cleared one's time has passed.
    await new Promise<void>((resolve) => new Timeouts<string>(() => resolve()).add('probe', 10))
    expect(expired).toEqual([])
  })
})
