/**
 * The store's consistency audit, for tests and tools: the index, the group lists, the counters and the
 * allocator checked against each other. The caller holds the commit lock (so nothing moves meanwhile).
 *
 * @module
 */
import type { BlockAllocator } from './allocator.js'
import { type HashIndex, Slot, ValueTag } from './hash-index.js'
import { C_KEYS, C_USED_SLOTS } from './store-layout.js'

/** Lock holder. The problems found; an empty list means consistent. */
export function auditRegions(index: HashIndex, heap: BlockAllocator, ctrl: Int32Array): string[] {
  const problems: string[] = []
  // Another thread may have grown the data region since this thread last looked: see all of it.
  heap.refresh()
  const ix = index
  const allocated: [number, number][] = []
  const blockOf = (b: number) => [b, heap.i32[2 * b]!] as [number, number]
  let live = 0
  let used = 0
  const memberOf = new Map<number, number>()
  for (let s = 0; s < ix.slots; s++) {
    const h = ix.get(s, Slot.HASH)
    if (h === 0) continue
    used++
    if (ix.get(s, Slot.SEQ) & 1) problems.push(`slot ${s} has an odd seq`)
    if (h === 1) {
      problems.push(`slot ${s} is a tombstone outside a commit`)
      continue
    }
    // The probe invariant: no EMPTY slot between a key's home and its slot (else lookups would miss it).
    for (let t = ix.home(h); t !== s; t = t + 1 === ix.slots ? 0 : t + 1) {
      if (ix.get(t, Slot.HASH) === 0) {
        problems.push(`slot ${s} is unreachable from its home ${ix.home(h)} (slot ${t} is empty)`)
        break
      }
    }
    if (ix.get(s, Slot.KEY) > 0) allocated.push(blockOf(ix.get(s, Slot.KEY)))
    const tag = ix.get(s, Slot.TAG)
    if (tag === ValueTag.BYTES) allocated.push(blockOf(ix.get(s, Slot.V0)))
    if (tag === ValueTag.HEAD) {
      let n = 0
      for (let m = ix.get(s, Slot.NEXT); m !== 0 && n <= ix.slots; m = ix.get(m - 1, Slot.NEXT), n++) {
        memberOf.set(m - 1, s)
      }
      if (n !== ix.get(s, Slot.V0))
        problems.push(`group head ${s} counts ${ix.get(s, Slot.V0)} members, lists ${n}`)
    } else {
      live++
    }
  }
  for (let s = 0; s < ix.slots; s++) {
    const h = ix.get(s, Slot.HASH)
    if (h > 1 || h < 0) {
      if (ix.get(s, Slot.TAG) !== ValueTag.HEAD && !memberOf.has(s))
        problems.push(`slot ${s} is in no group list`)
    }
  }
  if (ix.moves() & 1) problems.push('the index move counter is odd outside a commit')
  if (live !== ctrl[C_KEYS]) problems.push(`keys counter ${ctrl[C_KEYS]}, live slots ${live}`)
  if (used !== ctrl[C_USED_SLOTS])
    problems.push(`used-slots counter ${ctrl[C_USED_SLOTS]}, non-empty ${used}`)
  problems.push(...heap.audit(allocated))
  return problems
}
