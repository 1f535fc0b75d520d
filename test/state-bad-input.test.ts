import { describe, expect, it } from 'vitest'
import { SharedBufferManager } from '../src/state/index.js'

function buffer() {
  const mgr = SharedBufferManager.create({
    maxBytes: 4 << 20,
    maxKeys: 256,
    historySize: 10,
    maxValueBytes: 1024,
    maxKeyBytes: 64,
  })
  return { mgr, buf: mgr.createBuffer('e', 's', 'shared') }
}

const code = (c: string) => expect.objectContaining({ code: c })

describe('bad input is refused with a clear error and the old value stays', () => {
  it('values msgpack cannot carry faithfully are refused with AGENTPOOL_STATE_VALUE', () => {
    const { buf } = buffer()
    buf.write('k', 'old')
    const cyclic: any = { a: 1 }
    cyclic.self = cyclic
    class Point {
      x = 1
    }
    for (const bad of [
      () => 1,
      Symbol('s'),
      { nested: [1, { fn: () => 2 }] },
      cyclic,
      new Point(),
      undefined,
      'x'.repeat(2000),
    ]) {
      expect(() => buf.write('k', bad)).toThrow(code('AGENTPOOL_STATE_VALUE'))
      expect(() => buf.update('k', () => bad)).toThrow(code('AGENTPOOL_STATE_VALUE'))
      expect(() => buf.transaction((tx) => tx.write('k', bad))).toThrow(code('AGENTPOOL_STATE_VALUE'))
      expect(buf.read('k')).toBe('old')
    }
    expect(() => buf.write('k', { s: Symbol('x') })).toThrow(/symbol/)
  })

  it('keys that are not strings or are too long are refused with AGENTPOOL_STATE_KEY', () => {
    const { buf } = buffer()
    for (const bad of [1, null, undefined, {}, Symbol('k')]) {
      expect(() => buf.write(bad as any, 1)).toThrow(code('AGENTPOOL_STATE_KEY'))
      expect(() => buf.read(bad as any)).toThrow(code('AGENTPOOL_STATE_KEY'))
    }
    expect(() => buf.write('k'.repeat(65), 1)).toThrow(code('AGENTPOOL_STATE_KEY'))
    expect(() => buf.write('é'.repeat(33), 1)).toThrow(code('AGENTPOOL_STATE_KEY')) // 66 UTF-8 bytes
    buf.write('é'.repeat(32), 1) // 64 bytes: at the limit
    expect(buf.read('é'.repeat(32))).toBe(1)
  })

  it('keys like __proto__ and constructor are plain keys', () => {
    const { buf } = buffer()
    buf.write('__proto__', { polluted: true }, { scope: 'global' })
    buf.write('constructor', 5, { scope: 'global' })
    expect(buf.read('__proto__')).toEqual({ polluted: true })
    const all = buf.readAll({ scope: 'global' })
    expect(Object.keys(all).sort()).toEqual(['__proto__', 'constructor'])
    expect(Object.getPrototypeOf(all)).toBe(Object.prototype)
    expect(({} as any).polluted).toBeUndefined()
    expect(buf.delete('__proto__', { scope: 'global' })).toBe(true)
    expect(buf.has('__proto__')).toBe(false)
  })

  it('Map, Set, Date, bigint and Uint8Array values come back as themselves', () => {
    const { buf } = buffer()
    const v = {
      m: new Map<unknown, unknown>([
        ['a', 1],
        [2, { b: 3 }],
      ]),
      s: new Set([1, 'x']),
      d: new Date(5),
      n: 2n ** 70n,
      u: new Uint8Array([1, 2, 3]),
    }
    buf.write('v', v)
    expect(buf.read('v')).toEqual(v)
    for (const x of [-0, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 31, -(2 ** 31), 1.5]) {
      buf.write('n', x)
      expect(Object.is(buf.read('n'), x)).toBe(true)
    }
  })

  it('withPermissions narrows reads and writes; anything outside is PermissionError and changes nothing', () => {
    const { buf } = buffer()
    buf.write('allowed', 1, { scope: 'stream' })
    buf.write('secret', 2, { scope: 'stream' })
    buf.write('ticket:1', 3, { scope: 'stream' })
    const narrow = buf.withPermissions({ read: ['allowed', 'ticket:*'], write: ['allowed'] })
    expect(narrow.read('allowed')).toBe(1)
    expect(narrow.read('ticket:1')).toBe(3)
    expect(() => narrow.read('secret')).toThrow(code('AGENTPOOL_PERMISSION'))
    expect(() => narrow.has('secret')).toThrow(code('AGENTPOOL_PERMISSION'))
    expect(narrow.readAll({ scope: 'stream' })).toEqual({ allowed: 1, 'ticket:1': 3 })
    expect(() => narrow.write('ticket:1', 9, { scope: 'stream' })).toThrow(code('AGENTPOOL_PERMISSION'))
    expect(() => narrow.update('secret', () => 9, { scope: 'stream' })).toThrow(code('AGENTPOOL_PERMISSION'))
    expect(() => narrow.delete('secret', { scope: 'stream' })).toThrow(code('AGENTPOOL_PERMISSION'))
    expect(() => narrow.transaction((tx) => tx.write('secret', 9, { scope: 'stream' }))).toThrow(
      code('AGENTPOOL_PERMISSION'),
    )
    narrow.write('allowed', 10, { scope: 'stream' })
    expect(buf.read('allowed')).toBe(10)
    expect(buf.read('secret')).toBe(2)
    expect(buf.read('ticket:1')).toBe(3)
    // Narrowing again keeps only what both allow.
    const narrower = narrow.withPermissions({ read: ['*'], write: ['*'] })
    expect(() => narrower.read('secret')).toThrow(code('AGENTPOOL_PERMISSION'))
    expect(() => narrower.write('ticket:1', 1)).toThrow(code('AGENTPOOL_PERMISSION'))
  })

  it('bad scopes, isolation levels, ids and manager options name what was wrong', () => {
    const { mgr, buf } = buffer()
    expect(() => buf.read('k', { scope: 'tenant' as any })).toThrow(/unknown state scope "tenant"/)
    expect(() => mgr.createBuffer('e', 's', 'snapshot' as any)).toThrow(/isolation must be one of/)
    expect(() => mgr.createBuffer('e', 's', { stream: 'nope' as any })).toThrow(/isolation.stream/)
    expect(() => mgr.createBuffer(7 as any, 's', 'shared')).toThrow(/executionId must be a string/)
    expect(() => SharedBufferManager.create({ maxBytes: -1, maxKeys: 10, historySize: 1 })).toThrow(
      /maxBytes/,
    )
    expect(() =>
      SharedBufferManager.create({ maxBytes: 1 << 20, maxKeys: 1_000_000, historySize: 1 }),
    ).toThrow(/raise maxBytes or lower maxKeys/)
  })

  it('recentChanges reports stream and global changes, newest first, bounded by historySize', () => {
    const { mgr, buf } = buffer()
    buf.write('private', 1) // execution scope: not recorded
    for (let i = 0; i < 15; i++) buf.write('g', i, { scope: 'global' })
    buf.write('s', 'y'.repeat(600), { scope: 'stream' })
    // Old and new together are too large for one history entry: the values are left out and flagged.
    buf.write('s', 'z'.repeat(600), { scope: 'stream' })
    const changes = mgr.recentChanges()
    expect(changes).toHaveLength(10)
    expect(changes[0]).toMatchObject({
      key: 's',
      scope: 'stream',
      executionId: 'e',
      streamId: 's',
      truncated: true,
    })
    expect(changes[1]).toMatchObject({ key: 's', old: undefined, new: 'y'.repeat(600) })
    expect(changes[2]).toMatchObject({ key: 'g', scope: 'global', old: 13, new: 14 })
    expect(changes[2]!.version).toBeGreaterThan(changes[3]!.version)
    expect(mgr.recentChanges(2)).toHaveLength(2)
  })

  it('cleanup is idempotent and cheap when there is nothing to clean', () => {
    const { mgr, buf } = buffer()
    buf.write('a', 1)
    buf.write('b', 1, { scope: 'stream' })
    mgr.cleanupExecution('e')
    mgr.cleanupExecution('e')
    mgr.cleanupExecution('never-existed')
    expect(buf.read('a')).toBeUndefined()
    expect(buf.read('b')).toBe(1)
    mgr.cleanupStream('s')
    expect(buf.read('b')).toBeUndefined()
    expect(mgr.stats().keys).toBe(0)
  })
})

describe('update and transaction functions must be pure', () => {
  it('state calls from inside an update function are refused and leave the lock free', () => {
    const mgr = SharedBufferManager.create({ maxBytes: 4 << 20, maxKeys: 64, historySize: 4 })
    const buf = mgr.createBuffer('e', 's', 'shared')
    buf.write('n', 1)
    expect(() => buf.update('n', (v: number | undefined) => buf.update('m', () => v ?? 0))).toThrow(
      expect.objectContaining({ code: 'AGENTPOOL_INVALID_ARGUMENT' }),
    )
    expect(buf.read('n')).toBe(1)
    expect(buf.has('m')).toBe(false)
    expect(mgr.engine.lockOwner()).toBe(-1)
    expect(buf.update('n', (v: number | undefined) => v! + 1)).toBe(2)
  })
})
