/**
 * The Piscina worker entry: runs the executions of one pool message on this thread.
 *
 * At load (once per thread) it claims this thread's record ring, attaches the shared state regions, joins
 * the control channel and connects the delegation channel. For each execution it loads the handler module
 * (once per thread and path), builds `ctx`, runs the handler, and reports the end as an `end` record
 * after every other record of that attempt. Records are flushed as one frame per turn of the event loop,
 * and always before the pool message returns.
 *
 * @module
 */
import { BroadcastChannel, threadId, workerData } from 'node:worker_threads'
import { pathToFileURL } from 'node:url'
import { ExecutionCancelledError, HandlerModuleError, RecordInvalidError, serializeError } from '../src/errors.js'
import { createExecutionRecorder, RecordWriter } from '../src/outcomes/index.js'
import type { BatchResult, BatchTask, ControlMessage, EndRecord, ExecutionTask, WireRecord } from '../src/protocol.js'
import { controlChannelName } from '../src/protocol.js'
import { connectDelegation } from '../src/runtime/delegation.js'
import type { WorkerSetup } from '../src/runtime/worker-pool.js'
import { SharedBufferManager } from '../src/state/index.js'
import type { Handler, HandlerContext } from '../src/handler.js'

const setup = workerData as WorkerSetup
const writer = RecordWriter.attach(setup.channel as Parameters<typeof RecordWriter.attach>[0], threadId)
const state = SharedBufferManager.attach(setup.state as Parameters<typeof SharedBufferManager.attach>[0])
const delegate = connectDelegation(setup.runtimeId)
const messageThreads = new Int32Array(setup.messageThreads!)
const aborts = new Map<string, AbortController>()
/**
 * Aborts heard for executions not running here. One may be for an execution whose pool message still waits
 * for this thread: it must then never start. Every thread hears every abort, so only the latest are kept.
 */
const earlyAborts = new Map<string, ControlMessage['reason']>()
const EARLY_ABORTS_KEPT = 4096
const handlers = new Map<string, Promise<Handler>>()

const control = new BroadcastChannel(controlChannelName(setup.runtimeId))
control.onmessage = (event: unknown) => {
  const message = (event as { data: ControlMessage }).data
  if (message.kind !== 'abort') return
  const running = aborts.get(message.executionId)
  if (running !== undefined) {
    running.abort(message.reason)
    return
  }
  earlyAborts.set(message.executionId, message.reason)
  if (earlyAborts.size > EARLY_ABORTS_KEPT) earlyAborts.delete(earlyAborts.keys().next().value!)
}
// The control channel must not keep an idle thread alive.
control.unref()

let flushScheduled = false
const sink = {
  push(record: WireRecord): void {
    writer.push(record)
    scheduleFlush()
  },
}

function scheduleFlush(): void {
  if (flushScheduled) return
  flushScheduled = true
  setImmediate(() => {
    flushScheduled = false
    writer.flush()
  })
}

function loadHandler(path: string): Promise<Handler> {
  let loaded = handlers.get(path)
  if (loaded === undefined) {
    loaded = import(pathToFileURL(path).href).then(
      (mod: Record<string, unknown>) => {
        const exported = mod.default ?? mod.handler
        if (typeof exported !== 'function') {
          throw new HandlerModuleError(
            `handler module ${path} does not export a handler: export default defineHandler(async (input, ctx) => …)`,
            { handler: path },
          )
        }
        return exported as Handler
      },
      (err: unknown) => {
        throw new HandlerModuleError(
          `handler module ${path} could not be loaded: ${err instanceof Error ? err.message : String(err)}`,
          { handler: path },
        )
      },
    )
    handlers.set(path, loaded)
  }
  return loaded
}

function buildContext(task: ExecutionTask, signal: AbortSignal): { ctx: HandlerContext; close(): void } {
  const ids = {
    executionId: task.executionId,
    streamId: task.streamId,
    entryPointId: task.entryPointId,
    correlationId: task.correlationId,
    attempt: task.attempt,
  }
  const recorder = createExecutionRecorder(sink, ids)
  const buffer = state.createBuffer(task.executionId, task.streamId, task.isolation, {
    onChange(change) {
      sink.push({
        k: 'state_change',
        executionId: task.executionId,
        streamId: task.streamId,
        attempt: task.attempt,
        key: change.key,
        scope: change.scope,
        old: change.old,
        new: change.new,
        timestamp: change.timestamp,
      })
    },
    onConflict(info) {
      sink.push({
        k: 'state_conflict',
        executionId: task.executionId,
        streamId: task.streamId,
        attempt: task.attempt,
        key: info.key,
        scope: info.scope,
        timestamp: Date.now(),
      })
    },
  })
  const ctx: HandlerContext = {
    ...ids,
    meta: task.meta,
    signal,
    state: buffer,
    decide: recorder.decide,
    recordOutcome: recorder.recordOutcome,
    reportProblem: recorder.reportProblem,
    violateConstraint: recorder.violateConstraint,
    emit: recorder.emit,
    trigger: (entryPointId: string, input: unknown) =>
      delegate(entryPointId, input, { executionId: task.executionId, correlationId: task.correlationId }, signal),
  }
  // After the end, a late call (from a timer the handler left behind) is refused rather than recorded.
  return { ctx, close: recorder.close }
}

async function runOne(task: ExecutionTask, largeOutputs: Record<string, unknown>): Promise<void> {
  const aborted = earlyAborts.get(task.executionId)
  if (aborted !== undefined) {
    // Already final on the main thread (timed out or cancelled while its message waited): never run it.
    earlyAborts.delete(task.executionId)
    const reason = `aborted (${aborted}) before it started on its thread`
    const now = Date.now()
    pushEnd(
      {
        k: 'end',
        executionId: task.executionId,
        streamId: task.streamId,
        attempt: task.attempt,
        ok: false,
        startedAt: now,
        completedAt: now,
        error: serializeError(new ExecutionCancelledError(task.executionId, reason)),
      },
      largeOutputs,
    )
    return
  }
  const controller = new AbortController()
  aborts.set(task.executionId, controller)
  const startedAt = Date.now()
  let ok = false
  let output: unknown
  let error: EndRecord['error']
  let close = (): void => {}
  try {
    const handler = await loadHandler(task.handler)
    const built = buildContext(task, controller.signal)
    close = built.close
    output = await handler(task.input, built.ctx)
    ok = true
  } catch (err) {
    error = serializeError(err)
    error.code ??= 'AGENTPOOL_HANDLER_FAILED'
  } finally {
    close()
    aborts.delete(task.executionId)
    state.cleanupExecution(task.executionId)
  }
  const end: EndRecord = {
    k: 'end',
    executionId: task.executionId,
    streamId: task.streamId,
    attempt: task.attempt,
    ok,
    startedAt,
    completedAt: Date.now(),
  }
  if (ok) end.output = output
  else end.error = error
  pushEnd(end, largeOutputs)
}

/** Pushes an end record; an output too large for the ring travels in the pool message's result instead. */
function pushEnd(end: EndRecord, largeOutputs: Record<string, unknown>): void {
  try {
    sink.push(end)
  } catch (err) {
    if (end.ok && err instanceof RecordInvalidError && err.details?.tooLarge === true) {
      largeOutputs[end.executionId] = end.output
      sink.push({ ...end, output: undefined, largeOutput: true })
      return
    }
    // The end itself cannot be encoded: the attempt fails with the reason, not silently.
    sink.push({ ...end, ok: false, output: undefined, error: serializeError(err) })
  }
}

/** Runs every execution of one pool message concurrently; resolves when all have ended. */
export default async function run(task: BatchTask): Promise<BatchResult> {
  // Release: tells the main thread which thread to terminate if this message must be stopped.
  if (task.slot !== undefined && task.slot >= 0) Atomics.store(messageThreads, task.slot, threadId + 1)
  if (task.warmup !== undefined) {
    // A module that fails to load fails each execution that needs it, with the reason; not the warm-up.
    await Promise.allSettled(task.warmup.map(loadHandler))
    return {}
  }
  const largeOutputs: Record<string, unknown> = {}
  if (task.executions.length === 1) await runOne(task.executions[0]!, largeOutputs)
  else await Promise.all(task.executions.map((t) => runOne(t, largeOutputs)))
  // Every end must be in shared memory before the pool message returns.
  writer.flush()
  for (const _ in largeOutputs) return { largeOutputs }
  return {}
}
