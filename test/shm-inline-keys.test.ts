import { describe, expect, it } from 'vitest'
import { SharedBufferManager } from '../src/state/index.js'

function manager(): SharedBufferManager {
  return SharedBufferManager.create({ maxBytes: 16 << 20, maxKeys: 4096, historySize: 100 })
}

/** Names whose full keys (group prefix included) fall on both sides of the 32 bytes a slot holds inline. */
function namesAroundTheInlineLimit(): string[] {
  const names: string[] = []
  for (let len = 1; len <= 48; len++) names.push('k'.repeat(len))
  // Multi-byte UTF-8 names straddling the limit: 'é' is 2 bytes, '€' 3.
  for (let n = 8; n <= 20; n++) names.push('é'.repeat(n), `${'€'.repeat(n - 4)}x`)
  return names
}

describe('keys short enough to live in their index slot, and longer ones', () => {
  for (const [what, streamId] of [
    ['global and a short stream id', 's'],
    ['global and a stream id that leaves no room inline', 'a-stream-id-longer-than-the-inline-bytes'],
  ] as const) {
    it(`write, read, update, readAll and delete are exact for keys around the limit (${what})`, () => {
      const mgr = manager()
      const buf = mgr.createBuffer('e', streamId, 'shared')
      const names = namesAroundTheInlineLimit()
      for (const scope of ['global', 'stream'] as const) {
        names.forEach((name, i) => buf.write(name, i, { scope }))
        names.forEach((name, i) => expect(buf.read(name, { scope })).toBe(i))
        names.forEach((name) => buf.update(name, (v: number | undefined) => v! + 1000, { scope }))
        const all = buf.readAll({ scope })
        expect(Object.keys(all).sort()).toEqual([...names].sort())
        names.forEach((name, i) => expect(all[name]).toBe(i + 1000))
      }
      expect(mgr.engine.audit()).toEqual([])
      const bytesWithKeys = mgr.stats().bytesUsed
      for (const scope of ['global', 'stream'] as const) {
        for (const name of names) expect(buf.delete(name, { scope })).toBe(true)
        for (const name of names) expect(buf.has(name, { scope })).toBe(false)
      }
      expect(mgr.stats().keys).toBe(0)
      // Every key block (keys too long to sit inline) and group head went back to the allocator.
      expect(mgr.stats().bytesUsed).toBe(0)
      expect(bytesWithKeys).toBeGreaterThan(0)
      expect(mgr.engine.audit()).toEqual([])
    })
  }

  it('an execution whose id is too long for its group head to sit inline is cleaned up completely', () => {
    const mgr = manager()
    const id = `execution-${'x'.repeat(60)}`
    const buf = mgr.createBuffer(id, 's', 'shared')
    for (let i = 0; i < 50; i++) buf.write(`key-${i}`, { i })
    expect(mgr.stats().keys).toBe(50)
    mgr.cleanupExecution(id)
    expect(mgr.stats().keys).toBe(0)
    expect(mgr.stats().bytesUsed).toBe(0)
    expect(mgr.engine.audit()).toEqual([])
    expect(buf.readAll({ scope: 'execution' })).toEqual({})
  })

  it('keys that share a hash bucket and a length are told apart by their bytes', () => {
    const mgr = manager()
    const buf = mgr.createBuffer('e', 's', 'shared')
    // Same length, same prefix, one byte apart: the inline comparison must read every byte.
    for (let i = 0; i < 200; i++)
      buf.write(`same-length-${String(i).padStart(3, '0')}`, i, { scope: 'global' })
    for (let i = 0; i < 200; i++)
      expect(buf.read(`same-length-${String(i).padStart(3, '0')}`, { scope: 'global' })).toBe(i)
    expect(buf.has('same-length-200', { scope: 'global' })).toBe(false)
  })
})
