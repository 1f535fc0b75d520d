/**
 * Key permissions of a narrowed buffer (`StreamBuffer.withPermissions`): which keys it may read and which
 * it may write (write, update, increment, delete). Patterns are exact keys, `prefix*`, or `*`.
 *
 * @module
 */
import { InvalidArgumentError, PermissionError, StateKeyError } from '../errors.js'

/** Which keys a narrowed buffer may read and write: exact names, `prefix*`, or `*`. */
export class KeyFilter {
  private readonly exact = new Set<string>()
  private readonly prefixes: string[] = []
  private all = false

  constructor(
    readonly patterns: readonly string[],
    what: string,
  ) {
    if (!Array.isArray(patterns))
      throw new InvalidArgumentError(`withPermissions: ${what} must be an array of key patterns`)
    for (const p of patterns) {
      if (typeof p !== 'string')
        throw new StateKeyError(`withPermissions: ${what} holds ${typeof p}; patterns are strings`)
      if (p === '*') this.all = true
      else if (p.endsWith('*')) this.prefixes.push(p.slice(0, -1))
      else this.exact.add(p)
    }
  }

  allows(key: string): boolean {
    return this.all || this.exact.has(key) || this.prefixes.some((p) => key.startsWith(p))
  }
}

/** Every narrowing applied so far: a key must pass each filter of its kind. */
export class Permissions {
  /** No narrowing: every key may be read and written (checked once, not per call). */
  readonly unrestricted: boolean

  constructor(
    readonly read: readonly KeyFilter[] = [],
    readonly write: readonly KeyFilter[] = [],
  ) {
    this.unrestricted = read.length === 0 && write.length === 0
  }

  /** These permissions narrowed by `p` (only what both allow). */
  narrow(p: { read: string[]; write: string[] }): Permissions {
    if (p === null || typeof p !== 'object')
      throw new InvalidArgumentError('withPermissions({ read, write }): expected an object')
    return new Permissions(
      [...this.read, new KeyFilter(p.read, 'read')],
      [...this.write, new KeyFilter(p.write, 'write')],
    )
  }

  permits(op: 'read' | 'write', key: string): boolean {
    if (this.unrestricted) return true
    const filters = this[op]
    for (let i = 0; i < filters.length; i++) if (!filters[i]!.allows(key)) return false
    return true
  }

  /** Throws PermissionError unless `op` on `key` is allowed (and `StateKeyError` for a non-string key). */
  allow(op: 'read' | 'write', key: string): void {
    if (typeof key !== 'string') throw new StateKeyError(`state key must be a string, got ${typeof key}`)
    if (this.unrestricted || this.permits(op, key)) return
    const last = this[op].find((f) => !f.allows(key))!
    throw new PermissionError(op, key, last.patterns)
  }
}
