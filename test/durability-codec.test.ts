import fc from 'fast-check'
import { Packr } from 'msgpackr'
import { describe, expect, it } from 'vitest'
import { decodeBatch, encodeBatch, type LogRow, unpack, unpackRecords } from '../src/durability/codec.js'
import { MsgpackWriter } from '../src/durability/msgpack-writer.js'
import type { LogOp } from '../src/protocol.js'

const values = new Packr({ structuredClone: true, useRecords: false })
const frames = new Packr({ useRecords: false })

type Item =
  | { kind: 'str'; v: string }
  | { kind: 'num'; v: number }
  | { kind: 'nil' }
  | { kind: 'value'; v: unknown }

const item: fc.Arbitrary<Item> = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 300 }).map((v) => ({ kind: 'str' as const, v })),
  fc
    .string({ unit: 'grapheme-ascii', minLength: 200, maxLength: 400 })
    .map((v) => ({ kind: 'str' as const, v })),
  fc
    .oneof(
      fc.integer({ min: 0, max: 0xffffffff }),
      fc.integer(),
      fc.double({ noNaN: true }),
      fc.constantFrom(1_796_420_220_707, Number.MAX_SAFE_INTEGER, -0, 127, 128, 0xffff, 0x10000),
    )
    .map((v) => ({ kind: 'num' as const, v })),
  fc.constant({ kind: 'nil' as const }),
  fc
    .oneof(
      fc.jsonValue(),
      fc.string({ minLength: 300, maxLength: 70_000 }),
      fc.constant(new Map([['a', new Set([1, 2])]])),
      fc.constant(
        (() => {
          const shared = { twice: true }
          return { a: shared, b: shared, at: new Date(5) }
        })(),
      ),
    )
    .map((v) => ({ kind: 'value' as const, v })),
)

describe('durable runs: the log encoding', () => {
  it('decode with a plain msgpack reader to the strings, numbers, nils and packed values written', () => {
    fc.assert(
      fc.property(fc.array(fc.array(item, { maxLength: 20 }), { maxLength: 30 }), (rows) => {
        const w = new MsgpackWriter(16)
        const header = w.openArray()
        for (const row of rows) {
          w.array(row.length)
          for (const it of row) {
            if (it.kind === 'str') w.str(it.v)
            else if (it.kind === 'num') w.num(it.v)
            else if (it.kind === 'nil') w.nil()
            else w.value(values, it.v)
          }
        }
        w.setArrayLength(header, rows.length)
        const bytes = w.finish()
        expect(bytes.byteOffset).toBe(0)
        const decoded = frames.unpack(Buffer.from(bytes.buffer, 0, bytes.byteLength)) as unknown[][]
        expect(decoded.length).toBe(rows.length)
        for (const [r, row] of rows.entries()) {
          for (const [i, it] of row.entries()) {
            const got = decoded[r]![i]
            if (it.kind === 'nil') expect(got).toBeNull()
            else if (it.kind === 'value') expect(got).toEqual(values.pack(it.v))
            else expect(got).toEqual(it.kind === 'num' && Object.is(it.v, -0) ? 0 : it.v)
          }
        }
      }),
      { numRuns: 200, seed: 20261204 },
    )
  })

  it('keep a Map, Set, Date, bigint, typed array and cycle of a value as what it was', () => {
    const cycle: Record<string, unknown> = { name: 'loop' }
    cycle.self = cycle
    const value = {
      map: new Map<unknown, unknown>([
        ['a', 1],
        [2, { nested: new Map([['x', [1, 2]]]) }],
      ]),
      object: { a: 1 },
      set: new Set(['s']),
      at: new Date(1_796_420_220_707),
      big: 10n ** 30n,
      bytes: new Uint8Array([1, 2, 3]),
      cycle,
    }
    const [row] = decodeBatch(
      encodeBatch([
        { op: 'state', scope: 'global', streamId: '', key: 'k', value, deleted: false, version: 1 },
      ]),
    ) as Extract<LogRow, { 0: 3 }>[]
    const back = unpack(row![4]) as typeof value
    expect(back.map).toBeInstanceOf(Map)
    expect(back.object).not.toBeInstanceOf(Map)
    expect(back.cycle.self).toBe(back.cycle)
    expect(back).toEqual(value)
  })

  it('read values of logs written before values were marked as they were written', () => {
    const before = new Packr({ structuredClone: true, useRecords: false })
    expect(unpack(before.pack({ a: [1, 'b'], at: new Date(5) }))).toEqual({ a: [1, 'b'], at: new Date(5) })
    expect(unpack(before.pack('text'))).toBe('text')
  })

  it('keep records in order, one row for the records one execution made one after another', () => {
    const looped: Record<string, unknown> = { k: 'outcome', executionId: 'a', result: { when: new Date(7) } }
    looped.self = looped
    const rows = decodeBatch(
      encodeBatch([
        { op: 'record', executionId: 'a', record: { k: 'decision', executionId: 'a', seq: 0 } },
        { op: 'record', executionId: 'a', record: looped },
        { op: 'record', executionId: 'b', record: { k: 'decision', executionId: 'b', set: new Set([1]) } },
      ]),
    ) as Extract<LogRow, { 0: 4 }>[]
    expect(rows.map((r) => [r[1], r[2]])).toEqual([
      ['a', ''],
      ['b', 'decision'],
    ])
    const [first, second] = unpackRecords(rows[0]![3]) as Record<string, unknown>[]
    expect(first).toEqual({ k: 'decision', executionId: 'a', seq: 0 })
    expect(second!.self).toBe(second)
    expect(second!.result).toEqual({ when: new Date(7) })
    expect(unpackRecords(rows[1]![3])).toEqual([{ k: 'decision', executionId: 'b', set: new Set([1]) }])
  })

  it('read back every input, meta, output and state value as it was, however it was written', () => {
    const api = Object.freeze({ trigger: 'api' })
    const nested = Object.freeze({ trigger: 'api', inner: { n: 1 } })
    const open = { trigger: 'webhook', n: 1 }
    const scalar = fc.oneof(
      fc.double(),
      fc.integer(),
      fc.constantFrom(-0, 0xffffffff, 2 ** 32, Number.MAX_SAFE_INTEGER, Number.NaN, -Infinity),
      fc.string({ unit: 'grapheme-ascii', maxLength: 300 }),
      fc.string({ unit: 'binary', maxLength: 40 }),
      fc.constantFrom(api, nested, open, Object.freeze({}), Object.freeze([1, 2]), undefined, null, true),
    )
    fc.assert(
      fc.property(fc.array(fc.tuple(scalar, scalar, scalar), { minLength: 1, maxLength: 8 }), (runs) => {
        // A value the log wrote earlier changes after: what is written now must be the new one.
        open.n++
        nested.inner.n++
        const ops = runs.flatMap(([input, meta, output], i): LogOp[] => [
          {
            op: 'admit' as const,
            id: `r${i}`,
            entryPointId: 'api',
            input,
            priority: 0,
            correlationId: `r${i}`,
            meta: meta as Record<string, unknown>,
            timeoutMs: 1_000,
            depth: 0,
            admittedAt: 1,
          },
          {
            op: 'end' as const,
            id: `r${i}`,
            status: 'completed' as const,
            attempts: 1,
            output,
            startedAt: 1,
            completedAt: 2,
          },
          {
            op: 'state' as const,
            scope: 'global' as const,
            streamId: '',
            key: `k${i}`,
            value: input,
            deleted: false,
            version: i,
          },
        ])
        const rows = decodeBatch(encodeBatch(ops))
        // msgpack has no negative zero: msgpackr writes -0 as 0, and so does the log.
        const expected = (v: unknown) =>
          v === open
            ? { ...open }
            : v === nested
              ? { trigger: 'api', inner: { ...nested.inner } }
              : Object.is(v, -0)
                ? 0
                : v
        for (const [i, [input, meta, output]] of runs.entries()) {
          const run = rows[3 * i] as Extract<LogRow, { 0: 0 }>
          const end = rows[3 * i + 1] as Extract<LogRow, { 0: 2 }>
          const state = rows[3 * i + 2] as Extract<LogRow, { 0: 3 }>
          expect(unpack(run[9])).toEqual(expected(input))
          expect(unpack(run[10])).toEqual(expected(meta))
          expect(output === undefined ? end[3] : unpack(end[3])).toEqual(
            output === undefined ? null : expected(output),
          )
          expect(unpack(state[4])).toEqual(expected(input))
        }
      }),
      { numRuns: 300, seed: 20261205 },
    )
  })
})
