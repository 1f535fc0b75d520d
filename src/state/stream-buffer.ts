/**
 * `StreamBuffer`: one execution's view of the three state scopes, and `StateTransaction`.
 *
 * Thread contract: a buffer belongs to one execution on one thread (any thread, the main thread
 * included); every method is synchronous. Reads never take a lock and never wait on another key; a read
 * of a key whose commit is in flight retries until that commit ends (microseconds). Commits take the
 * store's commit lock for a few microseconds — on a worker that may block briefly; on the main thread it
 * spins at most `mainSpinMs` and then throws `StateBusyError` (the main thread never blocks).
 *
 * @module
 */
import type { IsolationLevel } from '../config/types.js'
import {
  InvalidArgumentError,
  PermissionError,
  StateBusyError,
  StateCapacityError,
  StateConflictError,
  StateKeyError,
} from '../errors.js'
import {
  CommitStatus,
  EXPECT_ABSENT,
  EXPECT_ANY,
  type RawValue,
  type ReadCheck,
  ReadOut,
  type ShmStore,
  StoreBusy,
  ValueTag,
  WriteOp,
} from '../shm/index.js'
import { decodeName, inlineTag, type KeyGroup, type KeyRef, noneValue, type ValueCodec } from './codec.js'
import type { ScopeOption, StateChange, StateHooks, StateScope } from './types.js'

/** A version as a read saw it: the key's slot and sequence number, or absent. */
interface Version {
  slot: number
  seq: number
}
const ABSENT_VERSION: Version = Object.freeze({ slot: EXPECT_ABSENT, seq: 0 })
const NO_CHECKS: readonly ReadCheck[] = []
const ABSENT = Symbol('absent')
/** Optimistic runs of a transaction before it runs under the commit lock. */
const OPTIMISTIC_TRIES = 8
const LOOKUP_ORDER: readonly StateScope[] = ['execution', 'stream', 'global']
const MERGE_ORDER: readonly StateScope[] = ['global', 'stream', 'execution']

/** How one scope behaves for one buffer. The execution scope behaves as `shared` (only it can reach it). */
class ScopeView {
  /** `isolated`: committed values as first read (NONE = absent then). */
  readonly pinned = new Map<string, RawValue>()
  /** `isolated`: this execution's private writes (NONE = deleted). */
  readonly overlay = new Map<string, RawValue>()
  /** `synchronized`: the version each key had when this execution last read or wrote it. */
  readonly seen = new Map<string, Version>()

  constructor(
    readonly group: KeyGroup,
    readonly level: IsolationLevel,
  ) {}
}

/** The read-modify-write step of `update()`, reused so the hot path allocates no closure. */
class UpdateStep {
  sc!: ScopeView
  key = ''
  fn: ((current: unknown) => unknown) | undefined = undefined
  next: unknown = undefined

  constructor(private readonly core: BufferCore) {}

  /**
   * The step of the inline-number path (`ShmStore.updateInline`), run with the commit lock held: `fn` on
   * the current number; true when it returned a number, which is then in the core's single op.
   */
  readonly numberStep = (current: number): boolean => {
    const next = this.fn!(current)
    this.next = next
    if (typeof next !== 'number') return false
    const op = this.core.single
    op.tag = inlineTag(next)
    op.num = next
    return true
  }

  /** Reads the committed value, runs `fn` on it and fills the core's single op expecting that version. */
  readonly prepare = (): void => {
    const c = this.core
    const found = c.fetch(this.sc, this.key)
    const slot = found ? c.out.slot : EXPECT_ABSENT
    const seq = c.out.seq
    const next = this.fn!(found ? c.codec.decode(c.out) : undefined)
    this.next = next
    if (typeof next === 'number') {
      c.op(this.sc, this.key, c.numberRaw(next), slot, seq, true)
      return
    }
    if (isThenable(next)) throw notSync('update fn')
    c.op(this.sc, this.key, c.codec.encode(this.key, next), slot, seq, true)
  }
}

/** Everything the buffers of one execution share (narrowed buffers share their parent's core). */
export class BufferCore {
  readonly out = new ReadOut()
  readonly updateStep: UpdateStep = new UpdateStep(this)
  private readonly views: Record<StateScope, ScopeView>

  constructor(
    readonly store: ShmStore,
    readonly codec: ValueCodec,
    readonly executionId: string,
    readonly streamId: string,
    groups: Record<StateScope, KeyGroup>,
    levels: { stream: IsolationLevel; global: IsolationLevel },
    readonly meta: Uint8Array,
    readonly hooks: StateHooks | undefined,
    readonly mainSpinMs: number,
  ) {
    this.views = {
      execution: new ScopeView(groups.execution, 'shared'),
      stream: new ScopeView(groups.stream, levels.stream),
      global: new ScopeView(groups.global, levels.global),
    }
  }

  view(scope: unknown): ScopeView {
    const v =
      scope === 'execution' || scope === 'stream' || scope === 'global' ? this.views[scope] : undefined
    if (v === undefined) {
      throw new InvalidArgumentError(
        `unknown state scope ${JSON.stringify(scope)}; use 'execution', 'stream' or 'global'`,
        {
          scope,
        },
      )
    }
    return v
  }

  /** Reads the committed value of `name` in `sc` (raw in `out`); true when present. */
  fetch(sc: ScopeView, name: string): boolean {
    const r = sc.group.ref(name, true)
    try {
      return this.store.get(r.key, r.keyLen, r.hash, this.out)
    } catch (err) {
      if (err instanceof StoreBusy) throw new StateBusyError('read', this.mainSpinMs)
      throw err
    }
  }

  /** The committed raw value, copied (NONE when absent). */
  fetchRaw(sc: ScopeView, name: string): RawValue {
    if (!this.fetch(sc, name)) return noneValue()
    return { tag: this.out.tag, num: this.out.num, bytes: this.out.bytes?.slice() }
  }

  /** The value `name` has in this execution's view of `sc`, or ABSENT. */
  lookup(sc: ScopeView, name: string): unknown {
    if (sc.level === 'isolated') {
      const raw = sc.overlay.get(name) ?? this.pin(sc, name)
      return raw.tag === ValueTag.NONE ? ABSENT : this.codec.decode(raw)
    }
    const found = this.fetch(sc, name)
    if (sc.level === 'synchronized')
      sc.seen.set(name, found ? { slot: this.out.slot, seq: this.out.seq } : ABSENT_VERSION)
    return found ? this.codec.decode(this.out) : ABSENT
  }

  pin(sc: ScopeView, name: string): RawValue {
    let raw = sc.pinned.get(name)
    if (raw === undefined) {
      raw = this.fetchRaw(sc, name)
      sc.pinned.set(name, raw)
    }
    return raw
  }

  /** Every key of `sc` in this execution's view, as raw values. */
  entries(sc: ScopeView): Map<string, RawValue> {
    const all = new Map<string, RawValue>()
    const members = this.store.readGroup(sc.group.head)
    if (members === undefined) throw new StateBusyError('readAll', this.mainSpinMs)
    for (const m of members) {
      const name = decodeName(m.name, 0)
      if (sc.level === 'isolated') {
        if (!sc.pinned.has(name)) sc.pinned.set(name, m.value)
      } else {
        if (sc.level === 'synchronized') sc.seen.set(name, { slot: m.slot, seq: m.seq })
        all.set(name, m.value)
      }
    }
    if (sc.level === 'isolated') {
      for (const [name, raw] of sc.pinned) all.set(name, raw)
      for (const [name, raw] of sc.overlay) all.set(name, raw)
      for (const [name, raw] of all) if (raw.tag === ValueTag.NONE) all.delete(name)
    }
    return all
  }

  /** The op single-key commits reuse (a commit is synchronous, so one per buffer core suffices). */
  readonly single = new WriteOp()
  private readonly singleList: WriteOp[] = [this.single]

  private readonly scratchRaw: RawValue = { tag: ValueTag.INT, num: 0, bytes: undefined }

  /**
   * The raw form of number `n` in a scratch object, valid until the next call: for values that go straight
   * into an op (which copies them), so a numeric write or update allocates nothing.
   */
  numberRaw(n: number): RawValue {
    const raw = this.scratchRaw
    raw.tag = inlineTag(n)
    raw.num = n
    return raw
  }

  /**
   * A write op for `name` in `sc` (`raw` undefined means delete), expecting the version `slot`/`seq`
   * ({@link EXPECT_ANY}: blind). `reuse` fills this core's single op instead of a new one; `r` is the
   * key's encoding when the caller has it (encoded after any read).
   */
  op(
    sc: ScopeView,
    name: string,
    raw: RawValue | undefined,
    slot: number,
    seq: number,
    reuse = false,
    // The single op is committed before this core encodes another key for a write, so its key may live in
    // the group's scratch (every path that fills it encodes its key last, after any reads).
    r: KeyRef = sc.group.ref(name, reuse),
  ): WriteOp {
    const op = reuse ? this.single : new WriteOp()
    op.key = r.key
    op.keyLen = r.keyLen
    op.keyWords = r.words
    op.hash = r.hash
    op.head = sc.group.head
    op.del = raw === undefined
    op.tag = raw === undefined ? ValueTag.NONE : raw.tag
    op.num = raw === undefined ? 0 : raw.num
    op.bytes = raw?.bytes
    op.expectSlot = slot
    op.expectSeq = seq
    op.record = sc.group.scope !== 'execution'
    return op
  }

  /**
   * `update()` of a key that holds a number, when `fn` returns one: read, `fn` and commit in one trip
   * through the commit lock (`ShmStore.updateInline`). False, having written nothing, when the key holds
   * something else (or nothing), or `fn` returned a non-number: the caller takes the general path.
   */
  updateNumber(step: UpdateStep): boolean {
    const sc = step.sc
    // A lasting encoding (not the scratch one): `fn` runs in the middle of this commit and may read keys.
    const r = sc.group.ref(step.key)
    const op = this.single
    op.key = r.key
    op.keyLen = r.keyLen
    op.keyWords = r.words
    op.hash = r.hash
    op.head = sc.group.head
    op.del = false
    op.bytes = undefined
    op.expectSlot = EXPECT_ANY
    op.expectSeq = 0
    op.record = sc.group.scope !== 'execution'
    op.hint = r.slot
    op.hintSeq = r.seq
    const status = this.store.updateInline(op, this.meta, step.numberStep)
    if (status === CommitStatus.NOT_INLINE) return false
    if (status !== CommitStatus.OK) this.check(status, `update(${JSON.stringify(step.key)})`)
    r.slot = op.outSlot
    r.seq = op.outSeq
    return true
  }

  /** Commits the single op (`retry`: see `ShmStore.commit`). */
  commitSingle(retry?: () => void): CommitStatus {
    return this.store.commit(this.singleList, NO_CHECKS, this.meta, retry)
  }

  /** Turns a commit status into the named error (OK and CONFLICT pass). */
  check(status: CommitStatus, operation: string): void {
    switch (status) {
      case CommitStatus.BUSY:
        throw new StateBusyError(operation, this.mainSpinMs)
      case CommitStatus.FULL_BYTES: {
        const s = this.store.stats()
        throw new StateCapacityError(
          `state is full: ${operation} needs more than the ${s.capacity} bytes the value region may use (state.maxBytes); nothing was written`,
          { operation, capacity: s.capacity, bytesUsed: s.bytesUsed },
        )
      }
      case CommitStatus.FULL_KEYS:
        throw new StateCapacityError(
          `state is full: ${operation} would exceed ${this.store.stats().maxKeys} live keys (state.maxKeys); nothing was written`,
          { operation, maxKeys: this.store.stats().maxKeys },
        )
      case CommitStatus.TOO_LARGE:
        throw new StateCapacityError(`${operation} touches too many keys for one atomic commit; split it`, {
          operation,
        })
      case CommitStatus.REENTRANT:
        throw new InvalidArgumentError(
          `${operation} was called while this thread holds the state commit lock (from inside an update or transaction function); those functions must be pure and use only their tx`,
        )
    }
  }

  /** After a successful commit of `op`: private views follow the commit, hooks hear of it. */
  after(sc: ScopeView, name: string, op: WriteOp): void {
    if (sc.level === 'isolated') {
      sc.overlay.delete(name)
      sc.pinned.set(name, op.del ? noneValue() : { tag: op.tag, num: op.num, bytes: op.bytes })
    } else if (sc.level === 'synchronized') {
      sc.seen.set(name, op.del ? ABSENT_VERSION : { slot: op.outSlot, seq: op.outSeq })
    }
    const onChange = this.hooks?.onChange
    if (onChange === undefined || !op.record || (op.del && op.found < 0)) return
    const change: StateChange = {
      key: name,
      scope: sc.group.scope as 'stream' | 'global',
      old: this.codec.decode(op.old),
      new: op.del ? undefined : this.codec.decode(op),
      executionId: this.executionId,
      streamId: this.streamId,
      timestamp: this.store.lastTimestamp,
      version: this.store.lastVersion,
    }
    onChange(change)
  }

  conflict(sc: ScopeView, name: string): StateConflictError {
    this.store.countConflict()
    const scope = sc.group.scope as 'stream' | 'global'
    this.hooks?.onConflict?.({ key: name, scope, executionId: this.executionId, streamId: this.streamId })
    return new StateConflictError(name, scope, { executionId: this.executionId, streamId: this.streamId })
  }
}

/** Which keys a narrowed buffer may read and write: exact names, `prefix*`, or `*`. */
class KeyFilter {
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

interface Permissions {
  read: KeyFilter[]
  write: KeyFilter[]
}

function isThenable(v: unknown): boolean {
  return typeof (v as { then?: unknown } | null)?.then === 'function'
}

function notSync(what: string): InvalidArgumentError {
  return new InvalidArgumentError(`${what} must be synchronous (it may be re-run); it returned a promise`)
}

/**
 * One execution's state: `execution` (private, freed when the execution ends), `stream` (one per entry
 * point) and `global` scopes, each with the isolation level configured for the entry point.
 *
 * **Isolation decisions** (docs/architecture.md, "Shared state"):
 *
 * - `isolated` — repeatable read per key: the first read of a key pins the committed value; later reads
 *   return the pin, or this execution's own private `write`/`delete`, which are discarded when the
 *   execution ends. `update()` and `transaction()` are the way out: they read and write the *committed*
 *   state atomically (so counters stay exact), and afterwards the private view shows the committed result
 *   for the keys they wrote (a private write to such a key is replaced).
 * - `shared` — reads see the latest committed value (never torn); `write` is last-writer-wins, atomic
 *   per key; a read-then-write can lose an update — use `update()`.
 * - `synchronized` — every read remembers the version it saw in each scope it looked in (absent
 *   included). A `write`/`delete` of a key this execution read commits only if the key is unchanged since
 *   (and then remembers the new version); otherwise it throws `StateConflictError` and reports a
 *   `state_conflict`. A key never read is written blind. `update()` re-reads inside its atomic step and
 *   never conflicts. In a `transaction`, keys read inside it are validated and the function re-run on a
 *   change; a key written in it that was read only *before* it keeps the conflict rule above.
 *
 * `update(key, fn)` and `transaction(fn)` are exact under every level. A transaction is optimistic: `fn`
 * runs on the committed values without any lock held, then the commit checks that nothing it read changed,
 * and re-runs `fn` if it did. `update` of a key holding a number runs `fn` with the commit lock held (read,
 * `fn` and commit in one trip); on other values it is optimistic too. So `fn` must be synchronous and pure.
 */
export class StreamBuffer {
  /** No `withPermissions` narrowing: every key may be read and written (checked once, not per call). */
  private readonly unrestricted: boolean

  /** @internal */
  constructor(
    private readonly core: BufferCore,
    private readonly perms: Permissions = { read: [], write: [] },
  ) {
    this.unrestricted = perms.read.length === 0 && perms.write.length === 0
  }

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
    this.allow('read', key)
    const v = this.resolve(key, opts)
    return (v === ABSENT ? undefined : v) as T | undefined
  }

  /** Whether `key` exists (same lookup as {@link read}). */
  has(key: string, opts?: ScopeOption): boolean {
    this.allow('read', key)
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
      for (const [name, raw] of c.entries(c.view(scope))) merged.set(name, raw)
    }
    const pairs: [string, unknown][] = []
    for (const [name, raw] of merged) if (this.permits('read', name)) pairs.push([name, c.codec.decode(raw)])
    return Object.fromEntries(pairs)
  }

  /** Stores `value` under `key` (default scope: execution). See the class doc for each level. */
  write(key: string, value: unknown, opts?: ScopeOption): void {
    this.allow('write', key)
    const c = this.core
    const sc = c.view(opts?.scope ?? 'execution')
    const r = sc.group.ref(key, true)
    if (sc.level === 'isolated') {
      sc.overlay.set(key, c.codec.encode(key, value))
      return
    }
    const raw = typeof value === 'number' ? c.numberRaw(value) : c.codec.encode(key, value)
    this.commitOne(sc, key, raw, 'write', r)
  }

  /** Removes `key` (default scope: execution). True when it existed. */
  delete(key: string, opts?: ScopeOption): boolean {
    this.allow('write', key)
    const c = this.core
    const sc = c.view(opts?.scope ?? 'execution')
    const r = sc.group.ref(key, true)
    if (sc.level === 'isolated') {
      const existed = c.lookup(sc, key) !== ABSENT
      sc.overlay.set(key, noneValue())
      return existed
    }
    return this.commitOne(sc, key, undefined, 'delete', r).found >= 0
  }

  /**
   * Atomic read-modify-write of the committed value (default scope: execution): `fn(current)` →
   * the new value, returned. Exact under every level. `fn` is synchronous, pure and may run more than
   * once. When the key holds a number, `fn` runs with the commit lock held (read, `fn`, commit in one trip:
   * a hot counter never redoes work); otherwise optimistically, and after a conflict its last run happens
   * with the lock held (so a hot key costs one extra run, not a retry storm). So it must not write state
   * (that throws `AGENTPOOL_INVALID_ARGUMENT`) and should be quick. Needs read and write permission on `key`.
   */
  update<T = unknown>(key: string, fn: (current: T | undefined) => T, opts?: ScopeOption): T {
    this.allow('read', key)
    this.allow('write', key)
    if (typeof fn !== 'function')
      throw new InvalidArgumentError(`update(${JSON.stringify(key)}): fn must be a function`)
    const c = this.core
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
      if (c.updateNumber(step)) {
        c.after(step.sc, key, c.single)
        return step.next as T
      }
      for (;;) {
        step.prepare()
        // On a conflict the commit re-runs `prepare` once under the lock, where nobody can interleave.
        const status = c.commitSingle(step.prepare)
        if (status === CommitStatus.CONFLICT) continue
        // The operation's name is built only for an error (it costs as much as a commit).
        if (status !== CommitStatus.OK) c.check(status, `update(${JSON.stringify(key)})`)
        c.after(step.sc, key, c.single)
        return step.next as T
      }
    } finally {
      step.fn = undefined
    }
  }

  /**
   * Runs `fn(tx)` and commits all its writes and deletes, over any keys and scopes, atomically — or none
   * of them. If a key `fn` read changed before the commit, `fn` runs again on fresh values; after 8 such
   * races it runs once more with the commit lock held, so it always finishes. So `fn` is synchronous and
   * pure: it uses `tx` only (state calls on a buffer from inside it throw `AGENTPOOL_INVALID_ARGUMENT`
   * when it runs under the lock). Returns what `fn` returns.
   */
  transaction<R>(fn: (tx: StateTransaction) => R): R {
    if (typeof fn !== 'function') throw new InvalidArgumentError('transaction(fn): fn must be a function')
    const c = this.core
    for (let attempt = 0; attempt < OPTIMISTIC_TRIES; attempt++) {
      const tx = new StateTransaction(c, this)
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
    const status = c.store.commitLocked(() => {
      tx = new StateTransaction(c, this)
      result = fn(tx)
      if (isThenable(result)) throw notSync('transaction fn')
      return tx.build()
    }, c.meta)
    c.check(status, 'transaction')
    // Under the lock nothing read inside `fn` can change; a conflict can only come from a key read before
    // the transaction (`synchronized`), for which settle() throws.
    if (!tx!.settle(status))
      throw new Error('agentpool internal: transaction conflicted under the commit lock')
    return result as R
  }

  /**
   * A buffer over the same execution that may read only keys matching `read` and write (write, update,
   * delete) only keys matching `write`. Patterns: exact keys, `prefix*`, or `*`. Narrowing twice keeps
   * only what both allow. Anything else throws `PermissionError` and changes nothing.
   */
  withPermissions(p: { read: string[]; write: string[] }): StreamBuffer {
    if (p === null || typeof p !== 'object')
      throw new InvalidArgumentError('withPermissions({ read, write }): expected an object')
    return new StreamBuffer(this.core, {
      read: [...this.perms.read, new KeyFilter(p.read, 'read')],
      write: [...this.perms.write, new KeyFilter(p.write, 'write')],
    })
  }

  /** @internal */
  permits(op: 'read' | 'write', key: string): boolean {
    const filters = this.perms[op]
    for (let i = 0; i < filters.length; i++) if (!filters[i]!.allows(key)) return false
    return true
  }

  /** @internal Throws PermissionError unless `op` on `key` is allowed. */
  allow(op: 'read' | 'write', key: string): void {
    if (typeof key !== 'string') throw new StateKeyError(`state key must be a string, got ${typeof key}`)
    if (this.unrestricted || this.permits(op, key)) return
    const last = this.perms[op].find((f) => !f.allows(key))!
    throw new PermissionError(op, key, last.patterns)
  }

  private resolve(key: string, opts: ScopeOption | undefined): unknown {
    const c = this.core
    if (opts?.scope !== undefined) return c.lookup(c.view(opts.scope), key)
    for (const scope of LOOKUP_ORDER) {
      const v = c.lookup(c.view(scope), key)
      if (v !== ABSENT) return v
    }
    return ABSENT
  }

  /** Commits one write or delete of `key`; `r` is its encoding, made after any read. */
  private commitOne(
    sc: ScopeView,
    key: string,
    raw: RawValue | undefined,
    operation: string,
    r: KeyRef,
  ): WriteOp {
    const c = this.core
    const seen = sc.level === 'synchronized' ? sc.seen.get(key) : undefined
    const op = c.op(sc, key, raw, seen ? seen.slot : EXPECT_ANY, seen ? seen.seq : 0, true, r)
    const status = c.commitSingle()
    if (status === CommitStatus.CONFLICT) throw c.conflict(sc, key)
    if (status !== CommitStatus.OK) c.check(status, `${operation}(${JSON.stringify(key)})`)
    c.after(sc, key, op)
    return op
  }
}

interface TxWrite {
  sc: ScopeView
  name: string
  raw: RawValue | undefined
}

interface TxRead {
  sc: ScopeView
  name: string
  version: Version
}

/**
 * The `tx` of {@link StreamBuffer.transaction}: reads see the committed state plus this transaction's
 * own pending writes; nothing is visible to others until the transaction commits. Same options as the
 * buffer (reads without scope: execution, stream, global; writes default to execution).
 */
export class StateTransaction {
  private readonly reads = new Map<string, TxRead>()
  private readonly writes = new Map<string, TxWrite>()

  /** @internal */
  constructor(
    private readonly core: BufferCore,
    private readonly buffer: StreamBuffer,
  ) {}

  read<T = unknown>(key: string, opts?: ScopeOption): T | undefined {
    this.buffer.allow('read', key)
    const v = this.resolve(key, opts)
    return (v === ABSENT ? undefined : v) as T | undefined
  }

  has(key: string, opts?: ScopeOption): boolean {
    this.buffer.allow('read', key)
    return this.resolve(key, opts) !== ABSENT
  }

  write(key: string, value: unknown, opts?: ScopeOption): void {
    this.buffer.allow('write', key)
    const sc = this.core.view(opts?.scope ?? 'execution')
    sc.group.ref(key, true)
    this.writes.set(slotKey(sc, key), { sc, name: key, raw: this.core.codec.encode(key, value) })
  }

  update<T = unknown>(key: string, fn: (current: T | undefined) => T, opts?: ScopeOption): T {
    const scope = opts?.scope ?? 'execution'
    const next = fn(this.read<T>(key, { scope }))
    if (isThenable(next)) throw notSync('update fn')
    this.write(key, next, { scope })
    return next
  }

  delete(key: string, opts?: ScopeOption): boolean {
    this.buffer.allow('write', key)
    const sc = this.core.view(opts?.scope ?? 'execution')
    const existed = this.lookup(sc, key) !== ABSENT
    this.writes.set(slotKey(sc, key), { sc, name: key, raw: undefined })
    return existed
  }

  private ops: WriteOp[] = []
  private fromRead: boolean[] = []
  private checks: ReadCheck[] = []

  /** @internal Builds the commit's ops (expecting the versions read) and checks (keys only read). */
  build(): { writes: readonly WriteOp[]; checks: readonly ReadCheck[] } {
    const c = this.core
    this.ops = []
    this.fromRead = []
    this.checks = []
    for (const [k, w] of this.writes) {
      const read = this.reads.get(k)
      const v = read ? read.version : w.sc.level === 'synchronized' ? w.sc.seen.get(w.name) : undefined
      this.ops.push(c.op(w.sc, w.name, w.raw, v ? v.slot : EXPECT_ANY, v ? v.seq : 0))
      this.fromRead.push(read !== undefined)
    }
    for (const [k, r] of this.reads) {
      if (this.writes.has(k)) continue
      const ref = r.sc.group.ref(r.name)
      this.checks.push({
        key: ref.key,
        keyLen: ref.keyLen,
        hash: ref.hash,
        expectSlot: r.version.slot,
        expectSeq: r.version.seq,
      })
    }
    return { writes: this.ops, checks: this.checks }
  }

  /** @internal Commits optimistically; false when a key read here changed (the caller re-runs the function). */
  commit(): boolean {
    if (this.writes.size === 0) return this.stillCurrent()
    const { writes, checks } = this.build()
    return this.settle(this.core.store.commit(writes, checks, this.core.meta))
  }

  /**
   * @internal After a commit of {@link build}'s ops: true when committed (private views and hooks
   * follow), false on a conflict with a key read here; throws on a conflict with a key this execution
   * read before the transaction (`synchronized`) and on every other failure.
   */
  settle(status: CommitStatus): boolean {
    const c = this.core
    if (status === CommitStatus.CONFLICT) {
      const at = c.store.conflictAt
      if (at < this.ops.length && !this.fromRead[at]) {
        const w = [...this.writes.values()][at]!
        throw c.conflict(w.sc, w.name)
      }
      return false
    }
    c.check(status, 'transaction')
    let i = 0
    for (const w of this.writes.values()) c.after(w.sc, w.name, this.ops[i++]!)
    return true
  }

  /** A read-only transaction: its reads form one snapshot if every version is still current. */
  private stillCurrent(): boolean {
    const c = this.core
    for (const r of this.reads.values()) {
      const found = c.fetch(r.sc, r.name)
      const now: Version = found ? { slot: c.out.slot, seq: c.out.seq } : ABSENT_VERSION
      if (now.slot !== r.version.slot || now.seq !== r.version.seq) return false
    }
    return true
  }

  private resolve(key: string, opts: ScopeOption | undefined): unknown {
    const c = this.core
    if (opts?.scope !== undefined) return this.lookup(c.view(opts.scope), key)
    for (const scope of LOOKUP_ORDER) {
      const v = this.lookup(c.view(scope), key)
      if (v !== ABSENT) return v
    }
    return ABSENT
  }

  private lookup(sc: ScopeView, name: string): unknown {
    const k = slotKey(sc, name)
    const w = this.writes.get(k)
    if (w !== undefined) return w.raw === undefined ? ABSENT : this.core.codec.decode(w.raw)
    const c = this.core
    const found = c.fetch(sc, name)
    if (!this.reads.has(k)) {
      this.reads.set(k, { sc, name, version: found ? { slot: c.out.slot, seq: c.out.seq } : ABSENT_VERSION })
    }
    return found ? c.codec.decode(c.out) : ABSENT
  }
}

function slotKey(sc: ScopeView, name: string): string {
  return `${sc.group.scope}\u0000${name}`
}
