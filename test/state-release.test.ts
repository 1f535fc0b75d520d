import { describe, expect, it } from 'vitest'
import { SharedBufferManager } from '../src/state/index.js'

function manager() {
  return SharedBufferManager.create({ maxBytes: 4 << 20, maxKeys: 256, historySize: 10 })
}

const g = { scope: 'global' as const }

describe('an execution ending frees its execution scope', () => {
  it('frees the execution-scope keys of an execution that stored some, and keeps its stream and global writes', () => {
    const mgr = manager()
    const buf = mgr.createBuffer('e1', 's', 'shared')
    buf.write('scratch', 1)
    buf.write('draft', { big: 'x'.repeat(100) })
    buf.update('count', (n: number | undefined) => (n ?? 0) + 1, g)
    buf.write('seen', true, { scope: 'stream' })
    mgr.releaseBuffer(buf)
    const after = mgr.createBuffer('e1', 's', 'shared')
    expect(after.readAll({ scope: 'execution' })).toEqual({})
    expect(after.read('count', g)).toBe(1)
    expect(after.read('seen', { scope: 'stream' })).toBe(true)
    expect(mgr.stats().keys).toBe(2)
  })

  it('leaves everything in place for an execution that only touched the global scope', () => {
    const mgr = manager()
    const other = mgr.createBuffer('e0', 's', 'shared')
    other.write('kept', 'by e0')
    const buf = mgr.createBuffer('e1', 's', 'shared')
    for (let i = 0; i < 5; i++) buf.update('count', (n: number | undefined) => (n ?? 0) + 1, g)
    mgr.releaseBuffer(buf)
    expect(other.read('kept')).toBe('by e0')
    expect(other.read('count', g)).toBe(5)
    expect(mgr.stats().keys).toBe(2)
  })

  it('still refuses an execution id longer than 256 bytes when the buffer is made', () => {
    const mgr = manager()
    expect(() => mgr.createBuffer('é'.repeat(129), 's', 'shared')).toThrow(
      expect.objectContaining({ code: 'AGENTPOOL_STATE_KEY' }),
    )
    expect(() => mgr.createBuffer('é'.repeat(128), 's', 'shared')).not.toThrow()
  })
})
