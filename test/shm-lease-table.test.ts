import { describe, expect, it } from 'vitest'
import { LockWatchdog } from '../src/runtime/lock-watchdog.js'
import { LeaseEnd, LeaseTable } from '../src/shm/index.js'

describe('the lease table', () => {
  it('refuses a stale lease once its slot is opened again, and tells whoever ends a lease whether it was used', () => {
    const table = LeaseTable.create()
    const worker = LeaseTable.attach(table.buffer)
    const first = table.open()
    expect(worker.markUsed(first)).toBe(true)
    expect(worker.admit(first, 7)).toBe(true)
    expect(table.holds(first, 7)).toBe(true)
    expect(table.end(first)).toBe(LeaseEnd.USED)
    expect(table.end(first)).toBe(LeaseEnd.STALE)
    expect(worker.admit(first, 8)).toBe(false)
    expect(worker.markUsed(first)).toBe(false)
    table.release(first)
    const second = table.open()
    expect(second.slot).toBe(first.slot)
    expect(second.gen).not.toBe(first.gen)
    expect(worker.admit(first, 9)).toBe(false)
    expect(worker.admit(second, 9)).toBe(true)
    expect(worker.markUsed(second)).toBe(true)
    expect(worker.clearUsed(second)).toBe(true)
    expect(table.end(second)).toBe(LeaseEnd.CLEAN)
    expect(() => table.release(table.open())).toThrow('has not ended')
  })

  it('grows as more leases are open at once, and a worker attached before sees the new slots', () => {
    const table = LeaseTable.create()
    const worker = LeaseTable.attach(table.buffer)
    const leases = Array.from({ length: 1000 }, () => table.open())
    expect(new Set(leases.map((l) => l.slot)).size).toBe(1000)
    for (const l of leases) expect(worker.admit(l, 1)).toBe(true)
    for (const l of leases) expect(table.end(l)).toBe(LeaseEnd.CLEAN)
  })
})

describe('the lock watchdog', () => {
  it('reports one holding once, only after it lasted the budget, and never a lock that changes hands', () => {
    let word = 0
    const reported: number[] = []
    const dog = new LockWatchdog(
      () => word,
      100,
      (w) => reported.push(w),
    )
    const looks = (from: number, to: number) => {
      for (let t = from; t <= to; t += 10) dog.look(t)
    }
    word = 5
    looks(0, 90)
    expect(reported).toEqual([])
    // The same owner with a new acquisition count is a new holding: the clock starts again.
    word = 5 | (1 << 21)
    looks(100, 190)
    expect(reported).toEqual([])
    looks(200, 400)
    expect(reported).toEqual([5 | (1 << 21)])
    word = 0
    looks(410, 600)
    word = 9
    looks(610, 720)
    expect(reported).toEqual([5 | (1 << 21), 9])
  })

  it("starts a holding's clock again after a look a whole budget late (a starved process), not after a shorter gap", () => {
    let word = 3
    const reported: number[] = []
    const dog = new LockWatchdog(
      () => word,
      100,
      (w) => reported.push(w),
    )
    // A 60 ms gap (the main thread spun for the lock itself) still counts as watching: reported at 100.
    for (const t of [0, 10, 20, 30, 40, 100]) dog.look(t)
    expect(reported).toEqual([3])
    // A 150 ms gap (the main thread did not run for longer than the budget) starts the clock again.
    word = 4
    for (const t of [110, 120, 130, 280, 290, 300, 310, 320, 330, 340, 350, 360, 370]) dog.look(t)
    expect(reported).toEqual([3])
    dog.look(380)
    expect(reported).toEqual([3, 4])
  })
})
