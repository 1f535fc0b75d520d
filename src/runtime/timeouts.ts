/**
 * The timeouts of running executions, without a Node timer each. An execution's timeout starts when it
 * is dispatched, and executions of one timeout length are dispatched in order, so their deadlines come in
 * order too: one list per length, ordered by deadline, with one timer for its earliest. Adding and removing
 * an execution is a few pointer writes (a `setTimeout` and `clearTimeout` per execution cost more main-
 * thread time than the rest of its dispatch). Main thread only.
 *
 * @module
 */

/** One armed timeout; remove it with {@link Timeouts.remove} when its execution ends first. */
export interface TimeoutEntry<T> {
  readonly item: T
  /** `performance.now()` at which it expires. */
  readonly at: number
  prev: TimeoutEntry<T> | undefined
  next: TimeoutEntry<T> | undefined
  lane: Lane<T> | undefined
}

interface Lane<T> {
  head: TimeoutEntry<T> | undefined
  tail: TimeoutEntry<T> | undefined
  timer: NodeJS.Timeout | undefined
}

export class Timeouts<T> {
  private readonly lanes = new Map<number, Lane<T>>()

  /** `onExpire` is called once for each entry whose time came before it was removed. */
  constructor(private readonly onExpire: (item: T) => void) {}

  /** Arms a timeout of `ms` milliseconds (> 0) for `item`. */
  add(item: T, ms: number): TimeoutEntry<T> {
    let lane = this.lanes.get(ms)
    if (lane === undefined) {
      lane = { head: undefined, tail: undefined, timer: undefined }
      this.lanes.set(ms, lane)
    }
    const entry: TimeoutEntry<T> = {
      item,
      at: performance.now() + ms,
      prev: lane.tail,
      next: undefined,
      lane,
    }
    if (lane.tail === undefined) lane.head = entry
    else lane.tail.next = entry
    lane.tail = entry
    if (lane.timer === undefined) this.arm(lane, ms)
    return entry
  }

  /** Disarms `entry` (its execution ended in time). Idempotent. */
  remove(entry: TimeoutEntry<T>): void {
    const lane = entry.lane
    if (lane === undefined) return
    entry.lane = undefined
    if (entry.prev === undefined) lane.head = entry.next
    else entry.prev.next = entry.next
    if (entry.next === undefined) lane.tail = entry.prev
    else entry.next.prev = entry.prev
    entry.prev = undefined
    entry.next = undefined
    // The lane's timer stays armed: when it fires early it re-arms for the new earliest entry.
  }

  /** Stops every timer; armed entries never expire. */
  clear(): void {
    for (const lane of this.lanes.values()) {
      if (lane.timer !== undefined) clearTimeout(lane.timer)
      lane.timer = undefined
      for (let e = lane.head; e !== undefined; e = e.next) e.lane = undefined
      lane.head = undefined
      lane.tail = undefined
    }
  }

  private arm(lane: Lane<T>, ms: number): void {
    lane.timer = setTimeout(() => this.fire(lane), Math.max(1, ms))
  }

  private fire(lane: Lane<T>): void {
    lane.timer = undefined
    const now = performance.now()
    for (let e = lane.head; e !== undefined && e.at <= now; e = lane.head) {
      this.remove(e)
      this.onExpire(e.item)
    }
    if (lane.head !== undefined && lane.timer === undefined) this.arm(lane, Math.ceil(lane.head.at - now))
  }
}
