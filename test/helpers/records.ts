import { threadId } from 'node:worker_threads'
import { RecordChannel, RecordWriter } from '../../src/channel/index.js'
import { EventBus } from '../../src/events/index.js'
import { type AggregatedRecord, type OutcomeAggregator, routeRecords } from '../../src/outcomes/index.js'

/**
 * Feeds records to an aggregator through a real record channel, `perFrame` records a frame: retained
 * decisions and outcomes are then kept as bytes of the frames they came in, spread over many frames.
 */
export function feedThroughChannel(
  aggregator: OutcomeAggregator,
  records: readonly AggregatedRecord[],
  perFrame: number,
): void {
  const channel = RecordChannel.create({ slots: 1, ringBytes: 1 << 16 })
  channel.onRecords((batch, source) => {
    routeRecords(batch, { aggregator, bus: new EventBus() }, source)
  })
  const writer = RecordWriter.attach(channel.handles, threadId)
  records.forEach((r, i) => {
    writer.push(r)
    if (i % perFrame === perFrame - 1) {
      writer.flush()
      channel.drain()
    }
  })
  writer.flush()
  channel.drain()
  channel.close()
}
