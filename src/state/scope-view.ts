/**
 * `ScopeView`: how one state scope behaves for one execution — the contract every isolation level's module
 * implements (`level-isolated.ts`, `level-shared.ts`, `level-synchronized.ts`, `level-serializable.ts`).
 * A level's rules live in its own module; the buffer, the transaction and the core only call these methods.
 *
 * Thread contract: a view belongs to one execution's buffer on one thread; every method is synchronous.
 *
 * @module
 */
import type { IsolationLevel } from '../config/index.js'
import { EXPECT_ABSENT, type RawValue, type WriteOp } from '../shm/index.js'
import type { BufferCore, UpdateStep } from './buffer-core.js'
import type { KeyGroup, KeyRef } from './codec.js'

/** A version as a read saw it: the key's slot and sequence number, or absent. */
export interface Version {
  slot: number
  seq: number
}

export const ABSENT_VERSION: Version = Object.freeze({ slot: EXPECT_ABSENT, seq: 0 })
/** What a lookup returns for a key that is not there (`undefined` may be a stored value's decoding). */
export const ABSENT = Symbol('absent')

/** One scope as one execution sees it, under one isolation level. */
export abstract class ScopeView {
  /**
   * True when this scope's writes stay private to the execution until {@link BufferCore.commitDeferred}
   * (`serializable`): a transaction then hands its writes of this scope to the view instead of committing.
   */
  readonly deferred: boolean = false

  constructor(
    readonly group: KeyGroup,
    readonly level: IsolationLevel,
  ) {}

  /** The value of `name` in this execution's view, or {@link ABSENT}. */
  abstract lookup(c: BufferCore, name: string): unknown

  /** Every key of the scope in this execution's view, as raw values (NONE entries are left out). */
  abstract entries(c: BufferCore): Map<string, RawValue>

  /**
   * `write` (`raw` set) or `delete` (`raw` undefined) of `name`; `r` is its encoding, made after any read.
   * Returns whether the key existed before (only `delete` needs it; a write may return anything).
   */
  abstract put(c: BufferCore, name: string, raw: RawValue | undefined, operation: string, r: KeyRef): boolean

  /** `update(key, fn)`: by default an atomic read-modify-write of the committed value. */
  update(c: BufferCore, step: UpdateStep): unknown {
    return c.updateCommitted(step)
  }

  /** `increment(key, delta)`: by default a commutative add to the committed value, at once. */
  increment(c: BufferCore, name: string, delta: number): void {
    c.incrementCommitted(this, name, delta)
  }

  /**
   * The version a write of `name` must still find when it commits outside of anything this execution read
   * inside a transaction; `undefined` writes blind.
   */
  expected(_name: string): Version | undefined {
    return undefined
  }

  /** After `op` on `name` committed: the view follows the committed state. */
  committed(_name: string, _op: WriteOp): void {}

  /** A transaction's write (or delete) of a deferred scope, handed over when the transaction ends. */
  stage(_c: BufferCore, _name: string, _raw: RawValue | undefined): void {
    throw new Error('agentpool internal: stage() on a scope whose writes are not deferred')
  }
}

/** A map key naming `name` in `sc` (keys of different scopes may share a name). */
export function slotKey(sc: ScopeView, name: string): string {
  return `${sc.group.scope}\u0000${name}`
}

export function isThenable(v: unknown): boolean {
  return typeof (v as { then?: unknown } | null)?.then === 'function'
}
