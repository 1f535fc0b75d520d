/**
 * Everything the record channel asks of msgpackr, in one place, including the one private detail it
 * relies on: an `Unpackr`'s live structure table (`structures`), which a kept record needs to be decoded
 * again later. msgpackr replaces a structure when it is (re)defined and never edits one in place, so a
 * shallow copy of the table decodes, for good, any record read while the table looked like it.
 * `test/channel-msgpack-tables.test.ts` fails if a msgpackr release changes that.
 *
 * @module
 */
import { Packr, Unpackr } from 'msgpackr'

/** The worker side's encoder: record structures shared along a ring's frame sequence. */
export function newPackr(): Packr {
  return new Packr({ sequential: true, moreTypes: true })
}

/** An encoder that shares no structures: it tells whether a record encodes, without touching a ring's table. */
export function newCheckPackr(): Packr {
  return new Packr({ moreTypes: true })
}

let sizer: Packr | undefined

/** How many bytes msgpack encodes `value` in (no structures shared), or -1 when it cannot encode it. */
export function encodedBytes(value: unknown): number {
  sizer ??= newCheckPackr()
  try {
    return sizer.pack(value).length
  } catch {
    sizer = undefined
    return -1
  }
}

/** The main side's decoder for one ring, matching {@link newPackr}. */
export function newUnpackr(): Unpackr {
  return new Unpackr({ sequential: true, moreTypes: true })
}

/** The decoder's live structure table (msgpackr private; see the module doc). */
export function liveTable(unpackr: Unpackr): unknown[] {
  return (unpackr as unknown as { structures: unknown[] }).structures
}

/** Whether two tables hold the same structures. */
export function sameEntries(a: unknown[], b: unknown[]): boolean {
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false
  return true
}

/** Decoders for kept structure tables (several frames share a table while it does not change). */
const tableDecoders = new WeakMap<unknown[], Unpackr>()

/** Decodes `bytes` (one record) with a structure table kept by {@link liveTable} (copied). */
export function decodeWithTable(table: unknown[], bytes: Uint8Array): unknown {
  let decoder = tableDecoders.get(table)
  if (decoder === undefined) {
    // A copy again: the decoder marks its table, and the kept one is shared by frames.
    decoder = new Unpackr({ structures: table.slice() as object[], moreTypes: true })
    tableDecoders.set(table, decoder)
  }
  return decoder.unpack(bytes)
}
