/**
 * How the run log stores values (inputs, meta, outputs, state values, records): msgpack with structured
 * clone semantics, so a `Map`, `Set`, `Date`, `bigint` or `Uint8Array` comes back as what it was.
 *
 * @module
 */
import { Packr } from 'msgpackr'

const packr = new Packr({ structuredClone: true, useRecords: false })

export function pack(value: unknown): Buffer {
  return packr.pack(value)
}

export function unpack(bytes: Buffer | null | undefined): unknown {
  return bytes === null || bytes === undefined ? undefined : packr.unpack(bytes)
}
