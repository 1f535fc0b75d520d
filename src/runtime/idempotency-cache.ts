/**
 * Remembers which execution an idempotency key started, for `ttlMs`, at most `maxKeys` keys (the oldest
 * is evicted first). Main thread only.
 *
 * @module
 */

interface Entry {
  executionId: string
  expiresAt: number
}

export class IdempotencyCache {
  // A Map iterates in insertion order, so its first entry is always the oldest key.
  private readonly entries = new Map<string, Entry>()

  constructor(
    private readonly ttlMs: number,
    private readonly maxKeys: number,
  ) {}

  /** The execution id remembered for `key`, if its TTL has not passed. */
  get(key: string, now = Date.now()): string | undefined {
    const entry = this.entries.get(key)
    if (entry === undefined) return undefined
    if (entry.expiresAt <= now) {
      this.entries.delete(key)
      return undefined
    }
    return entry.executionId
  }

  /** Remembers `key` for `ttlMs` from `now`; returns when it expires. */
  set(key: string, executionId: string, now = Date.now()): number {
    return this.restore(key, executionId, now + this.ttlMs, now)
  }

  /** Remembers `key` until `expiresAt` (a key read back from the run log keeps its first expiry). */
  restore(key: string, executionId: string, expiresAt: number, now = Date.now()): number {
    this.entries.delete(key)
    this.entries.set(key, { executionId, expiresAt })
    this.evict(now)
    return expiresAt
  }

  private evict(now: number): void {
    for (const [key, entry] of this.entries) {
      if (this.entries.size <= this.maxKeys && entry.expiresAt > now) break
      this.entries.delete(key)
    }
  }
}
