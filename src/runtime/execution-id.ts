/**
 * Execution ids: UUIDs of version 7 (RFC 9562), whose first 48 bits are the time in milliseconds and
 * the rest random. Ids made later sort after earlier ones, so an index of them (the run log's) grows at
 * its end instead of touching a random page of itself for every execution. Main thread only.
 *
 * @module
 */
import { randomFillSync } from 'node:crypto'

/** Random bytes per id: 12 bits after the version, 62 after the variant (whole bytes, some bits unused). */
const BYTES_PER_ID = 10
/** Random bytes drawn in bulk: one system call per 512 ids. */
const pool = new Uint8Array(BYTES_PER_ID * 512)
let used = pool.length
const HEX = Array.from({ length: 256 }, (_, b) => b.toString(16).padStart(2, '0'))

let lastMs = -1
let timePart = ''

/** A new execution id: `tttttttt-tttt-7rrr-vrrr-rrrrrrrrrrrr` (t: milliseconds since the epoch, r: random). */
export function newExecutionId(): string {
  const ms = Date.now()
  if (ms !== lastMs) {
    lastMs = ms
    const t = ms.toString(16).padStart(12, '0')
    timePart = `${t.slice(0, 8)}-${t.slice(8)}-7`
  }
  if (used === pool.length) {
    randomFillSync(pool)
    used = 0
  }
  const p = pool
  const i = used
  used += BYTES_PER_ID
  return (
    timePart +
    HEX[p[i]! & 0x0f]!.slice(1) +
    HEX[p[i + 1]!] +
    // The variant: the two high bits 10.
    `-${HEX[(p[i + 2]! & 0x3f) | 0x80]}${HEX[p[i + 3]!]}-` +
    HEX[p[i + 4]!] +
    HEX[p[i + 5]!] +
    HEX[p[i + 6]!] +
    HEX[p[i + 7]!] +
    HEX[p[i + 8]!] +
    HEX[p[i + 9]!]
  )
}
