/**
 * Crash triage: when a pool thread dies, which of the executions it carried killed it.
 *
 * A worker reports each attempt's end as an `end` record after every other record of that attempt, so
 * whatever ended before the death was already reported. When exactly one execution was unfinished on the
 * dead thread, it is the culprit and fails with `AGENTPOOL_WORKER_CRASHED` (or retries, within
 * `maxRetries`). A thread runs several messages at once, though, so when several were unfinished each is a
 * suspect and re-runs alone on a thread (`solo`): the culprit kills its thread again, alone, and is named;
 * the innocent complete. An execution whose handler had started counts the lost run as an attempt (its
 * records carry that attempt). Main thread only.
 *
 * @module
 */
import { WorkerCrashedError } from '../errors.js'
import type { Batch } from './dispatch.js'
import type { Execution } from './execution-stream.js'

/**
 * A thread is gone; `onThread` are the messages it was running (called after its records were drained and
 * before its messages reject). When exactly one unfinished execution was running there, and the engine did
 * not stop the thread itself, that one is marked as the culprit.
 */
export function judgeThreadExit(onThread: Batch[]): void {
  const unfinished: { batch: Batch; id: string }[] = []
  for (const b of onThread) {
    b.started = true
    for (const e of b.executions)
      if (!b.ended.has(e.id) && e.phase === 'running') unfinished.push({ batch: b, id: e.id })
  }
  const only = unfinished.length === 1 ? unfinished[0]! : undefined
  if (only !== undefined && !only.batch.killedByUs) only.batch.culprits = new Set([only.id])
}

/**
 * What happens to `e`, still running when its message `batch` settled (its thread died, or was stopped):
 * the crash error when it is the culprit; otherwise `undefined`, and `e` is ready to run again (alone, if a
 * suspect), its attempt counted when its handler had started.
 */
export function triageUnfinished(batch: Batch, e: Execution, err: unknown): WorkerCrashedError | undefined {
  const culprit = batch.culprits?.has(e.id) === true
  if (culprit) {
    return new WorkerCrashedError(
      `the thread running execution ${e.id} died: ${err instanceof Error ? err.message : String(err)}`,
      { executionId: e.id },
    )
  }
  // A handler that ran (even partly) made an attempt, whose records are kept; the re-run is a new one.
  if (batch.started) e.attempt++
  // Stopped for another execution's sake, it simply runs again; a suspect of a thread death runs alone.
  if (!batch.killedByUs) e.solo = true
  return undefined
}
