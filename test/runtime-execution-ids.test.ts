import { describe, expect, it } from 'vitest'
import { newExecutionId } from '../src/runtime/execution-id.js'

const UUID_V7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/

describe('execution ids', () => {
  it('are version 7 UUIDs, all different', () => {
    const ids = Array.from({ length: 50_000 }, () => newExecutionId())
    for (const id of ids) expect(id).toMatch(UUID_V7)
    expect(new Set(ids).size).toBe(ids.length)
  })

  it('carry the millisecond they were made in, so ids of later milliseconds sort after earlier ones', () => {
    const before = Date.now()
    const first = newExecutionId()
    const after = Date.now()
    const ms = Number.parseInt(first.slice(0, 8) + first.slice(9, 13), 16)
    expect(ms).toBeGreaterThanOrEqual(before)
    expect(ms).toBeLessThanOrEqual(after)
    while (Date.now() <= after) {
      // The next millisecond.
    }
    const later = newExecutionId()
    expect(later > first).toBe(true)
  })
})
