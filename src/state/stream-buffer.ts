/**
 * `StreamBuffer`: one execution's view of the three state scopes — the public facade. What each isolation
 * level means lives in its own module (`level-*.ts`); transactions in `transaction.ts`, permissions in
 * `permissions.ts`, the committed paths every level shares in `buffer-core.ts`.
 *
 * Thread contract: a buffer belongs to one execution on one thread (any thread, the main thread
 * included); every method is synchronous. Reads never take a lock and never wait on another key; a read
 * of a key whose commit is in flight retries until that commit ends (microseconds). Commits take the
 * store's commit lock for a few microseconds — on a worker that may block briefly; on the main thread it
 * spins at most `mainSpinMs` and then throws `StateBusyError` (the main thread never blocks).
 *
 * @module
 */
import { InvalidArgumentError } from '../errors.js'
import type { RawValue } from '../shm/index.js'
import { type BufferCore, notSync } from './buffer-core.js'
import { Permissions } from './permissions.js'
import { ABSENT, isThenable } from './scope-view.js'
import { LOOKUP_ORDER, StateTransaction } from './transaction.js'
import type { ScopeOption, StateScope } from './types.js'

/** Optimistic runs of a transaction before it runs under the commit lock. */
const OPTIMISTIC_TRIES = 8
const MERGE_ORDER: readonly StateScope[] = ['global', 'stream', 'execution']

/**
 * One execution's state: `execution` (private, freed when the execution ends), `stream` (one per entry
 * point) and `global` scopes, each with the isolation level configured for the entry point:
 *
 * - `isolated` — repeatable read per key, private writes discarded at the end (`level-isolated.ts`);
 * - `shared` — latest committed value, last writer wins per key (`level-shared.ts`);
 * - `synchronized` — a write of a key read since changed throws `StateConflictError` (`level-synchronized.ts`);
 * - `serializable` — the execution is one optimistic transaction: private writes, one atomic commit when
 *   the handler returns ({@link commit}), re-run from the start on a conflict (`level-serializable.ts`).
 *
 * The execution scope behaves as `shared` (only its own execution reaches it).
 *
 * `update(key, fn)`, `increment(key, delta)` and `transaction(fn)` are exact under every level. A
 * transaction is optimistic: `fn` runs on the committed values without any lock held, then the commit checks
 * that nothing it read changed, and re-runs `fn` if it did. `update` of a key holding a number runs `fn`
 * with the commit lock held (read, `fn` and commit in one trip); on other values it is optimistic too. So
 * `fn` must be synchronous and pure.
 */
export class StreamBuffer {
  /** @internal */
  constructor(
    /** @internal */
    readonly core: BufferCore,
    private readonly perms: Permissions = new Permissions(),
  ) {}

  /** The execution this buffer belongs to. */
  get executionId(): string {
    return this.core.executionId
  }

  /** The stream (entry point) this buffer belongs to. */
  get streamId(): string {
    return this.core.streamId
  }

  /** Version of this thread's last successful commit in the global commit order (0 before any). */
  get lastCommitVersion(): number {
    return this.core.store.lastVersion
  }

  /** The value of `key`, or `undefined`. Without a scope: execution, then stream, then global. */
  read<T = unknown>(key: string, opts?: ScopeOption): T | undefined {
    this.perms.allow('read', key)
    const v = this.resolve(key, opts)
    return (v === ABSENT ? undefined : v) as T | undefined
  }

  /** Whether `key` exists (same lookup as {@link read}). */
  has(key: string, opts?: ScopeOption): boolean {
    this.perms.allow('read', key)
    return this.resolve(key, opts) !== ABSENT
  }

  /**
   * Every readable key and value: of one scope, or merged (execution over stream over global). A scope's
   * keys are one consistent snapshot. Keys this buffer may not read are left out.
   */
  readAll(opts?: ScopeOption): Record<string, unknown> {
    const c = this.core
    const merged = new Map<string, RawValue>()
    for (const scope of opts?.scope !== undefined ? [opts.scope] : MERGE_ORDER) {
      for (const [name, raw] of c.view(scope).entries(c)) merged.set(name, raw)
    }
    const pairs: [string, unknown][] = []
    for (const [name, raw] of merged)
      if (this.perms.permits('read', name)) pairs.push([name, c.codec.decode(raw)])
    return Object.fromEntries(pairs)
  }

  /** Stores `value` under `key` (default scope: execution). See the class doc for each level. */
  write(key: string, value: unknown, opts?: ScopeOption): void {
    this.perms.allow('write', key)
    const c = this.core
    c.assertOpen('write')
    const sc = c.view(opts?.scope ?? 'execution')
    const r = sc.group.ref(key, true)
    const raw = typeof value === 'number' ? c.numberRaw(value) : c.codec.encode(key, value)
    sc.put(c, key, raw, 'write', r)
  }

  /** Removes `key` (default scope: execution). True when it existed. */
  delete(key: string, opts?: ScopeOption): boolean {
    this.perms.allow('write', key)
    const c = this.core
    c.assertOpen('delete')
    const sc = c.view(opts?.scope ?? 'execution')
    return sc.put(c, key, undefined, 'delete', sc.group.ref(key, true))
  }

  /**
   * Atomic read-modify-write of the committed value (default scope: execution): `fn(current)` →
   * the new value, returned. Exact under every level. `fn` is synchronous, pure and may run more than
   * once. When the key holds a number, `fn` runs with the commit lock held (read, `fn`, commit in one trip:
   * a hot counter never redoes work); otherwise optimistically, and after a conflict its last run happens
   * with the lock held (so a hot key costs one extra run, not a retry storm). So it must not write state
   * (that throws `AGENTPOOL_INVALID_ARGUMENT`) and should be quick. Needs read and write permission on `key`.
   * Under `serializable` it reads and writes the execution's private view (checked at its commit).
   */
  update<T = unknown>(key: string, fn: (current: T | undefined) => T, opts?: ScopeOption): T {
    this.perms.allow('read', key)
    this.perms.allow('write', key)
    if (typeof fn !== 'function')
      throw new InvalidArgumentError(`update(${JSON.stringify(key)}): fn must be a function`)
    const c = this.core
    c.assertOpen('update')
    const step = c.updateStep
    if (step.fn !== undefined) {
      throw new InvalidArgumentError(
        `update(${JSON.stringify(key)}) was called from inside an update() function; update functions must be pure`,
      )
    }
    step.sc = c.view(opts?.scope ?? 'execution')
    step.key = key
    step.fn = fn as (current: unknown) => unknown
    try {
      return step.sc.update(c, step) as T
    } finally {
      step.fn = undefined
    }
  }

  /**
   * Adds `delta` (a finite number) to the number under `key` (an absent key counts as 0; default scope:
   * execution). Commutative: it never conflicts, under any level. At `serializable` it is applied at the
   * execution's commit, against the latest value — the way to keep a hot counter there (reading the key
   * in the same execution makes it a read like any other). Elsewhere it is applied at once, atomically.
   * A key holding anything but a number is refused with `StateValueError`. Needs write permission on `key`.
   */
  increment(key: string, delta: number, opts?: ScopeOption): void {
    this.perms.allow('write', key)
    if (typeof delta !== 'number' || !Number.isFinite(delta))
      throw new InvalidArgumentError(
        `increment(${JSON.stringify(key)}): delta must be a finite number, got ${String(delta)}`,
        { key },
      )
    const c = this.core
    c.assertOpen('increment')
    const sc = c.view(opts?.scope ?? 'execution')
    sc.group.ref(key, true)
    sc.increment(c, key, delta)
  }

  /**
   * Runs `fn(tx)` and commits all its writes and deletes, over any keys and scopes, atomically — or none
   * of them. If a key `fn` read changed before the commit, `fn` runs again on fresh values; after 8 such
   * races it runs once more with the commit lock held, so it always finishes. So `fn` is synchronous and
   * pure: it uses `tx` only (state calls on a buffer from inside it throw `AGENTPOOL_INVALID_ARGUMENT`
   * when it runs under the lock). Returns what `fn` returns. Under `serializable`, its writes of that scope
   * become the execution's private writes (committed with the execution).
   */
  transaction<R>(fn: (tx: StateTransaction) => R): R {
    if (typeof fn !== 'function') throw new InvalidArgumentError('transaction(fn): fn must be a function')
    const c = this.core
    c.assertOpen('transaction')
    for (let attempt = 0; attempt < OPTIMISTIC_TRIES; attempt++) {
      const tx = new StateTransaction(c, this.perms)
      const result = fn(tx)
      if (isThenable(result)) throw notSync('transaction fn')
      if (tx.commit()) return result
    }
    return this.transactionLocked(fn)
  }

  /**
   * The fallback after {@link OPTIMISTIC_TRIES} conflicts: `fn` runs with the commit lock held, so no
   * other commit can move what it reads — a transaction that keeps losing to writers still finishes.
   */
  private transactionLocked<R>(fn: (tx: StateTransaction) => R): R {
    const c = this.core
    let tx: StateTransaction | undefined
    let result: R | undefined
    const status = c.commitLocked(() => {
      tx = new StateTransaction(c, this.perms)
      result = fn(tx)
      if (isThenable(result)) throw notSync('transaction fn')
      return tx.build()
    })
    c.check(status, 'transaction')
    // Under the lock nothing read inside `fn` can change; a conflict can only come from a key read before
    // the transaction (`synchronized`), for which settle() throws.
    if (!tx!.settle(status))
      throw new Error('agentpool internal: transaction conflicted under the commit lock')
    return result as R
  }

  /**
   * `serializable` scopes: applies this execution's private writes and increments in one atomic commit,
   * provided nothing it read there has changed since. True when committed (or nothing was pending); false
   * on a conflict — nothing was applied, a `state_conflict` was reported, and the buffer starts afresh, so
   * the work can be redone. A handler's buffer is committed by the runtime when the handler returns; call
   * this on buffers of your own (`SharedBufferManager.createBuffer`). Other levels commit as they go: true.
   * Throws `StateCapacityError` (nothing applied) when the commit does not fit.
   */
  commit(): boolean {
    return this.core.commitDeferred()
  }

  /**
   * @internal Drops the private writes of `serializable` scopes without committing (a failed attempt).
   * True when everything it read was still current — the failure was the handler's own; false when the
   * attempt had seen a state that has since changed (it conflicted, and is re-run instead).
   */
  abandon(): boolean {
    const log = this.core.serializable
    if (log === undefined) return true
    const current = log.current(this.core)
    log.reset()
    return current
  }

  /**
   * A buffer over the same execution that may read only keys matching `read` and write (write, update,
   * increment, delete) only keys matching `write`. Patterns: exact keys, `prefix*`, or `*`. Narrowing twice
   * keeps only what both allow. Anything else throws `PermissionError` and changes nothing.
   */
  withPermissions(p: { read: string[]; write: string[] }): StreamBuffer {
    return new StreamBuffer(this.core, this.perms.narrow(p))
  }

  private resolve(key: string, opts: ScopeOption | undefined): unknown {
    const c = this.core
    if (opts?.scope !== undefined) return c.view(opts.scope).lookup(c, key)
    for (const scope of LOOKUP_ORDER) {
      const v = c.view(scope).lookup(c, key)
      if (v !== ABSENT) return v
    }
    return ABSENT
  }
}
