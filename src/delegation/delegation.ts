/**
 * Delegation: `ctx.trigger(entryPointId, input)` in a worker starts an execution through the main
 * thread's runtime and waits for its result. comlink carries the call over two BroadcastChannels named
 * from the runtime id ({@link delegationChannelNames}): requests worker → main, replies main → worker.
 * Errors come back as their `AgentPoolError` class and code (serialized on the main side, rebuilt in the
 * worker).
 *
 * @module
 */
import { BroadcastChannel } from 'node:worker_threads'
import { type Endpoint, expose, wrap } from 'comlink'
import { deserializeError, serializeError } from '../errors.js'
import { type DelegationReply, delegationChannelNames } from '../protocol.js'
import type { ExecutionResult } from '../runtime/index.js'

/** The execution that delegates: the delegated one inherits its correlation id. */
export interface DelegationParent {
  executionId: string
  correlationId: string
}

/** Runs a delegated execution on the main thread. */
export type DelegationHandler = (
  entryPointId: string,
  input: unknown,
  parent: DelegationParent,
) => Promise<ExecutionResult>

/**
 * The worker-side call behind `ctx.trigger`. With `signal` (the delegating execution's `ctx.signal`), it
 * stops waiting and rejects with the signal's reason when that execution is aborted; the delegated
 * execution itself runs on.
 */
export type Delegate = (
  entryPointId: string,
  input: unknown,
  parent: DelegationParent,
  signal?: AbortSignal,
) => Promise<ExecutionResult>

/** The object comlink exposes on the main thread. */
interface DelegationApi {
  delegate(
    entryPointId: string,
    input: unknown,
    parent: DelegationParent,
  ): Promise<DelegationReply<ExecutionResult>>
}

type Listener = (event: { data: unknown }) => void

/**
 * A comlink endpoint that listens on one channel and posts on the other. `accept` drops messages the
 * side must not act on.
 */
function channelEndpoint(
  listenOn: BroadcastChannel,
  postOn: BroadcastChannel,
  accept: (data: unknown) => boolean,
): Endpoint {
  const wrapped = new Map<unknown, Listener>()
  return {
    postMessage(message: unknown) {
      postOn.postMessage(message)
    },
    addEventListener(_type: string, listener: unknown) {
      const fn: Listener = (event) => {
        if (accept(event.data)) (listener as Listener)(event)
      }
      wrapped.set(listener, fn)
      listenOn.addEventListener('message', fn as never)
    },
    removeEventListener(_type: string, listener: unknown) {
      const fn = wrapped.get(listener)
      if (fn === undefined) return
      wrapped.delete(listener)
      listenOn.removeEventListener('message', fn as never)
    },
  }
}

/** Only calls of `delegate` reach the exposed object: no property reads, sets or proxy releases. */
function isDelegateCall(data: unknown): boolean {
  const m = data as { type?: unknown; path?: unknown } | null
  return m?.type === 'APPLY' && Array.isArray(m.path) && m.path.length === 1 && m.path[0] === 'delegate'
}

/**
 * Main thread: answers `ctx.trigger` calls of every worker of runtime `runtimeId` with `handler`.
 * The channels do not keep the process alive. Call `close()` when the runtime stops.
 */
export function exposeDelegation(runtimeId: string, handler: DelegationHandler): { close(): void } {
  const names = delegationChannelNames(runtimeId)
  const requests = new BroadcastChannel(names.requests)
  const replies = new BroadcastChannel(names.replies)
  requests.unref()
  replies.unref()
  const api: DelegationApi = {
    async delegate(entryPointId, input, parent) {
      try {
        return { ok: true, result: await handler(entryPointId, input, parent) }
      } catch (err) {
        return { ok: false, error: serializeError(err) }
      }
    },
  }
  expose(api, channelEndpoint(requests, replies, isDelegateCall))
  return {
    close() {
      requests.close()
      replies.close()
    },
  }
}

/**
 * Worker thread: connects to the delegation channels of runtime `runtimeId`. The returned function
 * rejects with the main side's error rebuilt as its own class (e.g. `UnknownEntryPointError`). While a
 * call is pending the replies channel keeps the thread alive; otherwise it does not.
 */
export function connectDelegation(runtimeId: string): Delegate {
  const names = delegationChannelNames(runtimeId)
  const requests = new BroadcastChannel(names.requests)
  const replies = new BroadcastChannel(names.replies)
  requests.unref()
  replies.unref()
  const remote = wrap<DelegationApi>(channelEndpoint(replies, requests, () => true))
  let pending = 0
  return async (entryPointId, input, parent, signal) => {
    signal?.throwIfAborted()
    if (pending++ === 0) replies.ref()
    let reply: DelegationReply<ExecutionResult>
    try {
      const call: Promise<DelegationReply<ExecutionResult>> = remote.delegate(entryPointId, input, {
        executionId: parent.executionId,
        correlationId: parent.correlationId,
      })
      reply = signal === undefined ? await call : await abortable(call, signal)
    } finally {
      if (--pending === 0) replies.unref()
    }
    if (!reply.ok) throw deserializeError(reply.error)
    return reply.result
  }
}

/** Settles with `promise`, or rejects with the signal's reason as soon as it aborts (the call runs on). */
function abortable<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  return new Promise((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason)
    signal.addEventListener('abort', onAbort, { once: true })
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort)
        resolve(value)
      },
      (err: unknown) => {
        signal.removeEventListener('abort', onAbort)
        reject(err)
      },
    )
  })
}
