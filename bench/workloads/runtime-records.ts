/**
 * Records a runtime's main thread has consumed from its record channel, for the CPU accounting's cost
 * per record. The channel is the runtime's private part, so this reaches in, in this one place; the
 * benchmark tests fail if the field moves.
 */

import type { RecordChannel } from '../../src/channel/index.js'
import type { AgentRuntime } from '../../src/index.js'

/** A running count of the records `runtime` has consumed. */
export function recordCounter(runtime: AgentRuntime): () => number {
  const channel = (runtime as unknown as { channel?: RecordChannel }).channel
  if (typeof channel?.recordsDelivered !== 'number') {
    throw new Error('bench: AgentRuntime no longer has a record channel with recordsDelivered')
  }
  return () => channel.recordsDelivered
}
