/**
 * Main side of outcomes: hands each decoded record to the aggregator and the event bus.
 *
 * @module
 */

import type { FrameSource } from '../channel/index.js'
import type { EventBus } from '../events/index.js'
import type { WireRecord } from '../protocol.js'
import type { OutcomeAggregator } from './outcome-aggregator.js'

/** Where {@link routeRecord} delivers. */
export interface RecordTargets {
  aggregator: OutcomeAggregator
  bus: EventBus
}

/**
 * Consumes one record from a worker: decisions, outcomes, problems and violations go to the aggregator
 * (which publishes goal and constraint events); problems, custom events, state changes and state
 * conflicts are published on the bus. Main thread only. With `source`, the channel frame the record is
 * number `index` of, the aggregator may keep the record as bytes.
 * @returns false for an `end` record, which is the runtime's to handle; true otherwise.
 */
export function routeRecord(
  record: WireRecord,
  { aggregator, bus }: RecordTargets,
  source?: FrameSource,
  index = -1,
): boolean {
  switch (record.k) {
    case 'end':
      return false
    case 'decision':
    case 'outcome':
      aggregator.ingest(record, source, index)
      return true
    case 'violation':
      aggregator.ingest(record)
      return true
    case 'problem': {
      aggregator.ingest(record)
      const data: {
        severity: typeof record.severity
        description: string
        decisionId?: string
        suggestedFix?: string
        attempt: number
      } = {
        severity: record.severity,
        description: record.description,
        attempt: record.attempt,
      }
      if (record.decisionId !== undefined) data.decisionId = record.decisionId
      if (record.suggestedFix !== undefined) data.suggestedFix = record.suggestedFix
      bus.publish({
        type: 'problem_reported',
        streamId: record.streamId,
        executionId: record.executionId,
        data,
        timestamp: record.timestamp,
      })
      return true
    }
    case 'event':
      bus.publishRecord(
        record.type,
        record.streamId,
        record.executionId,
        record.correlationId,
        record.data,
        record.timestamp,
      )
      return true
    case 'state_change':
      bus.publish({
        type: 'state_changed',
        streamId: record.streamId,
        executionId: record.executionId,
        data: {
          key: record.key,
          scope: record.scope,
          old: record.old,
          new: record.new,
          attempt: record.attempt,
          ...(record.truncated ? { truncated: true } : {}),
          ...(record.oldBytes !== undefined ? { oldBytes: record.oldBytes, newBytes: record.newBytes } : {}),
        },
        timestamp: record.timestamp,
      })
      return true
    case 'state_conflict':
      bus.publish({
        type: 'state_conflict',
        streamId: record.streamId,
        executionId: record.executionId,
        data: {
          key: record.key,
          scope: record.scope,
          attempt: record.attempt,
          level: record.level ?? 'synchronized',
        },
        timestamp: record.timestamp,
      })
      return true
  }
}

/**
 * Consumes a run of records (as decoded from one frame: `records[from, to)`, all by default) with
 * {@link routeRecord}, evaluating the goal once at the end of the run. Main thread only.
 * @param source the frame the records were decoded from, when they came through the record channel.
 * @returns how many records were consumed (every one but `end` records).
 */
export function routeRecords(
  records: readonly WireRecord[],
  targets: RecordTargets,
  source?: FrameSource,
  from = 0,
  to = records.length,
): number {
  // The aggregator's batch without a closure per frame.
  const aggregator = targets.aggregator
  aggregator.beginBatch()
  try {
    let consumed = 0
    for (let i = from; i < to; i++) if (routeRecord(records[i]!, targets, source, i)) consumed++
    return consumed
  } finally {
    aggregator.endBatch()
  }
}
