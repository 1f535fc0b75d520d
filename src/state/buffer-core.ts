/**
 * `BufferCore`: what the buffers of one execution share — the store, the codec, the three scope views
 * (one per level module), the reusable single-key op, and the committed (non-private) paths every level
 * falls back on: a single-key commit, the atomic read-modify-write of `update`, the commutative add of
 * `increment`, and the turning of commit statuses into named errors.
 *
 * Thread contract: one core per execution, used on one thread; every method is synchronous. Commits take
 * the store's commit lock for a few microseconds (on the main thread: a bounded spin, then
 * `StateBusyError`).
 *
 * Ending. Every commit goes through {@link BufferCore.commit}, {@link BufferCore.commitLocked} or the
 * inline update, which arm the commit lock's guard: holding the lock, before anything is written, it
 * refuses the commit with `ExecutionEndedError` once the buffer was ended on its thread ({@link end}) or its
 * attempt's lease was ended by the main thread (a timeout, a cancellation, a stop). Checked under the lock,
 * the answer cannot change before the commit point: a late write never lands after its execution's
 * state was freed.
 *
 * @module
 */
import type { IsolationLevel } from '../config/index.js'
import {
  ExecutionEndedError,
  InvalidArgumentError,
  StateBusyError,
  StateCapacityError,
  StateConflictError,
  StateValueError,
} from '../errors.js'
import {
  CommitStatus,
  EXPECT_ABSENT,
  EXPECT_ANY,
  type Lease,
  type LeaseTable,
  type RawValue,
  type ReadCheck,
  ReadOut,
  type ShmStore,
  StoreBusy,
  ValueTag,
  WriteOp,
} from '../shm/index.js'
import { inlineTag, KeyGroup, type KeyRef, metaOf, noneValue, type ValueCodec } from './codec.js'
import { IsolatedView } from './level-isolated.js'
import { SerializableLog, SerializableView } from './level-serializable.js'
import { SharedView } from './level-shared.js'
import { SynchronizedView } from './level-synchronized.js'
import { isThenable, type ScopeView } from './scope-view.js'
import { CHANGE_VALUE_MAX_BYTES, type StateChange, type StateHooks } from './types.js'

const NO_CHECKS: readonly ReadCheck[] = []

/** The read-modify-write step of `update()`, reused so the hot path allocates no closure. */
export class UpdateStep {
  sc!: ScopeView
  key = ''
  fn: ((current: unknown) => unknown) | undefined = undefined
  next: unknown = undefined

  /**
   * The step of the inline-number path (`ShmStore.updateInline`), run with the commit lock held: `fn` on
   * the current number; true when it returned a number, which is then in the core's single op.
   */
  readonly numberStep: (current: number) => boolean
  /** Reads the committed value, runs `fn` on it and fills the core's single op expecting that version. */
  readonly prepare: () => void

  constructor(private readonly core: BufferCore) {
    // Bound here rather than as arrow-function fields: a build that keeps function names would rename
    // both on every execution that updates.
    this.numberStep = (current) => {
      const next = this.fn!(current)
      this.next = next
      if (typeof next !== 'number') return false
      const op = this.core.single
      op.tag = inlineTag(next)
      op.num = next
      return true
    }
    this.prepare = () => {
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
}

/** An attempt's lease and the table it lives in. */
export interface LeaseRef {
  table: LeaseTable
  lease: Lease
}

/** Everything the buffers of one execution share (narrowed buffers share their parent's core). */
export class BufferCore {
  readonly out = new ReadOut()
  private step: UpdateStep | undefined
  /** The reusable step of `update`/`increment`, made on first use (most executions never update). */
  get updateStep(): UpdateStep {
    this.step ??= new UpdateStep(this)
    return this.step
  }
  /** The read set and commit of the `serializable` scopes (none when no scope is `serializable`). */
  readonly serializable: SerializableLog | undefined
  private readonly views: { stream: ScopeView; global: ScopeView }
  /** The execution scope's view, made on first use: most executions never touch that scope. */
  private executionView: ScopeView | undefined

  constructor(
    readonly store: ShmStore,
    readonly codec: ValueCodec,
    readonly executionId: string,
    readonly streamId: string,
    groups: { stream: KeyGroup; global: KeyGroup },
    levels: { stream: IsolationLevel; global: IsolationLevel },
    private readonly maxKeyBytes: number,
    readonly hooks: StateHooks | undefined,
    readonly mainSpinMs: number,
    readonly lease: LeaseRef | undefined,
  ) {
    const needsLog = levels.stream === 'serializable' || levels.global === 'serializable'
    this.serializable = needsLog ? new SerializableLog() : undefined
    this.views = {
      stream: this.makeView(groups.stream, levels.stream),
      global: this.makeView(groups.global, levels.global),
    }
  }

  /** Who commits, as history entries record it (valid until another execution of this thread commits). */
  get meta(): Uint8Array {
    return metaOf(this.executionId, this.streamId)
  }

  /** Whether the execution scope was used at all (if not, nothing of it was stored). */
  get executionScopeUsed(): boolean {
    return this.executionView !== undefined
  }

  private ended = false

  /** Ends the buffer on its own thread: every later write is refused. Idempotent. */
  end(): void {
    this.ended = true
  }

  /** Throws `ExecutionEndedError` once the buffer has ended (on its own thread). */
  assertOpen(operation: string): void {
    if (this.ended) throw new ExecutionEndedError(this.executionId, operation)
  }

  /** The commit lock's guard for this buffer's commits (see the module doc); made at the first commit. */
  private guardFn: ((ownerWord: number) => void) | undefined
  private get guard(): (ownerWord: number) => void {
    this.guardFn ??= (ownerWord) => {
      const l = this.lease
      if (this.ended || (l !== undefined && !l.table.admit(l.lease, ownerWord)))
        throw new ExecutionEndedError(this.executionId)
    }
    return this.guardFn
  }

  /** `ShmStore.commit` of this buffer's ops, refused once the buffer has ended. */
  commit(writes: readonly WriteOp[], checks: readonly ReadCheck[], retry?: () => void): CommitStatus {
    this.store.armGuard(this.guard)
    try {
      return this.store.commit(writes, checks, this.meta, retry)
    } finally {
      this.store.armGuard(undefined)
    }
  }

  /** `ShmStore.commitLocked` for this buffer, refused once the buffer has ended. */
  commitLocked(build: () => { writes: readonly WriteOp[]; checks: readonly ReadCheck[] }): CommitStatus {
    this.store.armGuard(this.guard)
    try {
      return this.store.commitLocked(build, this.meta)
    } finally {
      this.store.armGuard(undefined)
    }
  }

  private makeView(group: KeyGroup, level: IsolationLevel): ScopeView {
    switch (level) {
      case 'isolated':
        return new IsolatedView(group, level)
      case 'synchronized':
        return new SynchronizedView(group, level)
      case 'serializable':
        return new SerializableView(group, level, this.serializable!)
      default:
        return new SharedView(group, level)
    }
  }

  view(scope: unknown): ScopeView {
    if (scope === 'execution') {
      if (this.executionView === undefined) {
        // Before anything can be stored there: the main thread then knows to free it if it ends the lease.
        if (this.lease !== undefined) this.lease.table.markUsed(this.lease.lease)
        // Only its own execution reaches the execution scope: it behaves as `shared`.
        this.executionView = new SharedView(
          new KeyGroup('execution', this.executionId, this.maxKeyBytes),
          'shared',
        )
      }
      return this.executionView
    }
    const v = scope === 'stream' || scope === 'global' ? this.views[scope] : undefined
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

  /** The views whose writes wait for {@link commitDeferred}. */
  deferredViews(): ScopeView[] {
    return [this.views.stream, this.views.global].filter((v) => v.deferred)
  }

  /** The error of a main-thread `operation` that gave up waiting for the commit lock. */
  busy(operation: string): StateBusyError {
    return new StateBusyError(operation, this.mainSpinMs)
  }

  /** Reads the committed value of `name` in `sc` (raw in `out`); true when present. */
  fetch(sc: ScopeView, name: string): boolean {
    const r = sc.group.ref(name, true)
    try {
      return this.store.get(r.key, r.keyLen, r.hash, this.out)
    } catch (err) {
      if (err instanceof StoreBusy) throw this.busy('read')
      throw err
    }
  }

  /** The committed raw value, copied (NONE when absent). */
  fetchRaw(sc: ScopeView, name: string): RawValue {
    if (!this.fetch(sc, name)) return noneValue()
    return { tag: this.out.tag, num: this.out.num, bytes: this.out.bytes?.slice() }
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
   * Commits one write or delete of `name` at once, expecting what `sc` says it must find; a changed key
   * throws `StateConflictError`. Returns the op (its `found` tells whether the key existed).
   */
  commitOne(sc: ScopeView, name: string, raw: RawValue | undefined, operation: string, r: KeyRef): WriteOp {
    const seen = sc.expected(name)
    const op = this.op(sc, name, raw, seen ? seen.slot : EXPECT_ANY, seen ? seen.seq : 0, true, r)
    const status = this.commitSingle()
    if (status === CommitStatus.CONFLICT) throw this.conflict(sc, name)
    if (status !== CommitStatus.OK) this.check(status, `${operation}(${JSON.stringify(name)})`)
    this.after(sc, name, op)
    return op
  }

  /** `update(key, fn)` on the committed value: exact under every level, never a conflict. */
  updateCommitted(step: UpdateStep): unknown {
    if (this.updateNumber(step)) {
      this.after(step.sc, step.key, this.single)
      return step.next
    }
    for (;;) {
      step.prepare()
      // On a conflict the commit re-runs `prepare` once under the lock, where nobody can interleave.
      const status = this.commitSingle(step.prepare)
      if (status === CommitStatus.CONFLICT) continue
      // The operation's name is built only for an error (it costs as much as a commit).
      if (status !== CommitStatus.OK) this.check(status, `update(${JSON.stringify(step.key)})`)
      this.after(step.sc, step.key, this.single)
      return step.next
    }
  }

  private delta = 0
  private addDeltaFn: ((current: unknown) => unknown) | undefined
  private get addDelta(): (current: unknown) => unknown {
    this.addDeltaFn ??= (current) => addTo(current, this.delta, this.updateStep.key)
    return this.addDeltaFn
  }

  /** `increment(key, delta)` on the committed value at once: an `update` that adds. */
  incrementCommitted(sc: ScopeView, name: string, delta: number): void {
    const step = this.updateStep
    if (step.fn !== undefined)
      throw new InvalidArgumentError(
        `increment(${JSON.stringify(name)}) was called from inside an update() function; update functions must be pure`,
      )
    step.sc = sc
    step.key = name
    step.fn = this.addDelta
    this.delta = delta
    try {
      this.updateCommitted(step)
    } finally {
      step.fn = undefined
    }
  }

  /**
   * `update()` of a key that holds a number, when `fn` returns one: read, `fn` and commit in one trip
   * through the commit lock (`ShmStore.updateInline`). False, having written nothing, when the key holds
   * something else (or nothing), or `fn` returned a non-number: the caller takes the general path.
   */
  private updateNumber(step: UpdateStep): boolean {
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
    this.store.armGuard(this.guard)
    let status: CommitStatus
    try {
      status = this.store.updateInline(op, this.meta, step.numberStep)
    } finally {
      this.store.armGuard(undefined)
    }
    if (status === CommitStatus.NOT_INLINE) return false
    if (status !== CommitStatus.OK) this.check(status, `update(${JSON.stringify(step.key)})`)
    r.slot = op.outSlot
    r.seq = op.outSeq
    return true
  }

  /** Commits the single op (`retry`: see `ShmStore.commit`). */
  commitSingle(retry?: () => void): CommitStatus {
    return this.commit(this.singleList, NO_CHECKS, retry)
  }

  /**
   * Commits the private writes of every `serializable` scope in one atomic step, provided nothing this
   * execution read there changed; true when committed (or nothing was pending), false on a conflict
   * (nothing applied, the private writes dropped). Throws on a full region or an increment of a non-number.
   */
  commitDeferred(): boolean {
    return this.serializable === undefined ? true : this.serializable.commit(this)
  }

  /** Turns a commit status into the named error (OK and CONFLICT pass). */
  check(status: CommitStatus, operation: string): void {
    switch (status) {
      case CommitStatus.BUSY:
        throw this.busy(operation)
      case CommitStatus.FULL_BYTES: {
        const s = this.store.stats()
        throw new StateCapacityError(
          `state is full: ${operation} needs a block the value region cannot supply (data bytes full: ${s.bytesUsed} of ${s.capacity} bytes in use by ${s.keys} live keys, state.maxBytes); nothing was written`,
          { operation, full: 'bytes', capacity: s.capacity, bytesUsed: s.bytesUsed, keys: s.keys },
        )
      }
      case CommitStatus.FULL_KEYS: {
        const s = this.store.stats()
        throw new StateCapacityError(
          `state is full: ${operation} would exceed ${s.maxKeys} live keys (maxKeys full: ${s.keys} live, state.maxKeys); nothing was written`,
          { operation, full: 'keys', maxKeys: s.maxKeys, keys: s.keys },
        )
      }
      case CommitStatus.FULL_INDEX: {
        const s = this.store.stats()
        throw new StateCapacityError(
          `state is full: ${operation} finds no free index slot (index slots full: ${s.indexSlotsInUse} of ${s.indexSlots} in use by ${s.keys} live keys and their group heads); nothing was written`,
          {
            operation,
            full: 'index',
            indexSlots: s.indexSlots,
            indexSlotsInUse: s.indexSlotsInUse,
            keys: s.keys,
          },
        )
      }
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
    sc.committed(name, op)
    const hooks = this.hooks
    if (hooks?.onChange === undefined || !op.record || (op.del && op.found < 0)) return
    const oldBytes = storedBytes(op.old)
    const newBytes = op.del ? 0 : storedBytes(op)
    const change: StateChange = {
      key: name,
      scope: sc.group.scope as 'stream' | 'global',
      old: oldBytes > CHANGE_VALUE_MAX_BYTES ? undefined : this.codec.decode(op.old),
      new: op.del || newBytes > CHANGE_VALUE_MAX_BYTES ? undefined : this.codec.decode(op),
      executionId: this.executionId,
      streamId: this.streamId,
      timestamp: this.store.lastTimestamp,
      version: this.store.lastVersion,
      oldBytes,
      newBytes,
    }
    if (oldBytes > CHANGE_VALUE_MAX_BYTES || newBytes > CHANGE_VALUE_MAX_BYTES) change.truncated = true
    // A method call: the hooks may be an object whose methods use `this`.
    hooks.onChange(change)
  }

  /** A refused write: counted, reported to the hooks, returned as the error to throw. */
  conflict(sc: ScopeView, name: string): StateConflictError {
    this.store.countConflict()
    const scope = sc.group.scope as 'stream' | 'global'
    const level = sc.level === 'serializable' ? 'serializable' : 'synchronized'
    this.hooks?.onConflict?.({
      key: name,
      scope,
      level,
      executionId: this.executionId,
      streamId: this.streamId,
    })
    return new StateConflictError(name, scope, { executionId: this.executionId, streamId: this.streamId })
  }
}

/** Bytes a raw value takes in the store: its encoded bytes, 8 for an inline number, 0 when absent. */
function storedBytes(raw: RawValue): number {
  if (raw.tag === ValueTag.BYTES) return raw.bytes?.length ?? 0
  return raw.tag === ValueTag.INT || raw.tag === ValueTag.F64 ? 8 : 0
}

/** `current + delta` for `increment`: an absent key counts as 0; anything but a number is refused. */
export function addTo(current: unknown, delta: number, key: string): number {
  if (current === undefined) return delta
  if (typeof current !== 'number')
    throw new StateValueError(
      `increment(${JSON.stringify(key)}): the key holds ${current === null ? 'null' : typeof current}, not a number; nothing was written`,
      { key },
    )
  return current + delta
}

export function notSync(what: string): InvalidArgumentError {
  return new InvalidArgumentError(`${what} must be synchronous (it may be re-run); it returned a promise`)
}
