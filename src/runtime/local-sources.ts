/**
 * The in-process implementation of the admission and result seam: executions are admitted into this
 * process's engine and awaited there (and, with a run log, in the log for runs of an earlier process).
 * Main thread only.
 *
 * @module
 */
import type { RunLog } from '../durability/index.js'
import { InvalidArgumentError } from '../errors.js'
import type { RuntimeEngine } from './engine.js'
import type { AdmissionSource, AdmitRequest, ResultSource } from './sources.js'
import type { ExecutionResult } from './types.js'

export class LocalSources implements AdmissionSource, ResultSource {
  constructor(
    private readonly engine: RuntimeEngine,
    /** The run log once opened (durability), else undefined. */
    private readonly log: () => RunLog | undefined,
    /** A finished run of an earlier process, from the run log. */
    private readonly fromLog: (executionId: string) => Promise<ExecutionResult | undefined>,
  ) {}

  async admit(r: AdmitRequest): Promise<string> {
    const id = this.admitNow(r)
    // Acknowledged means durable: with a run log, the id is returned once the admission is committed. A
    // caller that waits for the result acknowledges nothing before it, and the result waits for the end:
    // the admission is held back to be written with its end.
    if (r.resultAwaited !== true) await this.log()?.committed()
    return id
  }

  /**
   * Admits and waits in one step, without an acknowledgement in between (`triggerAndWait`): the admission
   * is made at once and the promise is the result's.
   * @throws QueueFullError, NotRunningError, UnknownEntryPointError (synchronously): nothing admitted.
   */
  admitAndWait(r: AdmitRequest): Promise<ExecutionResult> {
    r.resultAwaited = true
    const id = this.admitNow(r)
    const waiting = this.engine.wait(id)
    if (waiting !== undefined) return this.durable(waiting)
    // A repeated idempotency key whose first run this process no longer remembers: the log may.
    return this.fromLog(id).then(
      (result) =>
        result ??
        Promise.reject(new InvalidArgumentError(`execution ${id} is not known to its result source`)),
    )
  }

  /** Admits into the engine and journals what the run log keeps beyond the admission itself. */
  private admitNow(r: AdmitRequest): string {
    const id = this.engine.admit(r.entryPointId, r.input, r.opts, r.depth, r.delegated)
    const log = this.log()
    if (log !== undefined && r.opts.meta?.trigger === 'timer') {
      // The slot it fired for: a restart carries the schedule on from there.
      const slot = r.opts.meta.scheduledAt
      log.append({
        op: 'timer',
        entryPointId: r.entryPointId,
        firedAt: typeof slot === 'number' ? slot : Date.now(),
      })
    }
    r.onAdmitted?.(id)
    if (r.resultAwaited === true) log?.hold(id)
    return id
  }

  wait(executionId: string): Promise<ExecutionResult | undefined> {
    const waiting = this.engine.wait(executionId)
    if (waiting === undefined) return this.fromLog(executionId)
    return this.durable(waiting)
  }

  /** A result is reported once its end is durable too; its commit may wait for other ends on their way. */
  private durable(waiting: Promise<ExecutionResult>): Promise<ExecutionResult> {
    const log = this.log()
    if (log === undefined) return waiting
    return waiting.then((result) => log.committed(true).then(() => result))
  }
}
