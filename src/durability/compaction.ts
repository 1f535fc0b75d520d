/**
 * Compaction: the writer thread folds the records the log holds into a snapshot of the aggregator, so a
 * restart restores the snapshot and replays only the records written after it, and the records it covers
 * can be deleted with their runs (`LogStore.prune`). Without it, the log would keep every decision and
 * outcome ever made, and every start would replay them all.
 *
 * The snapshot is built here, off the main thread, from the log itself: the aggregator of the last
 * snapshot is restored into an {@link OutcomeAggregator} of the runtime's goal and options, the records
 * after it are read back in the order they were written (the order the runtime's aggregator consumed them)
 * and ingested, and the result is written as the new snapshot, covering the last record read. The
 * aggregator is deterministic, so this is the runtime's own aggregator as it stood after that record
 * (`test/outcomes-snapshot.test.ts` holds a restored snapshot plus the rest against the whole). The main
 * thread pays nothing for it.
 *
 * A compaction starts once {@link CompactionSetup.every} records have been written since the last snapshot,
 * and runs in steps of {@link ROWS_PER_STEP} rows between the writer's commits, so a commit waits at most
 * one step for it: a few milliseconds, and for the last two, which pack the snapshot and write it, tens
 * of milliseconds each at the default 10 000 retained decisions. A clean close finishes it, so a restart after a
 * clean stop replays nothing.
 *
 * @module
 */
import { FrameSource, RetainedFrame } from '../channel/index.js'
import type { Goal } from '../config/index.js'
import { type AggregatedRecord, type AggregatorSnapshot, OutcomeAggregator } from '../outcomes/index.js'
import type { OutcomeAggregatorOptions } from '../outcomes/types.js'
import { decodeRecord, MARK, packSnapshot, recordUnpackr, unpack, unpackRecords } from './codec.js'
import type { LogStore } from './log-store.js'

/** What compaction needs to know of the runtime: its goal and aggregator options, and how often to run. */
export interface CompactionSetup {
  goal: Goal | undefined
  outcomes: OutcomeAggregatorOptions
  /** Records written since the last snapshot that start a compaction. */
  every: number
}

/**
 * Rows of records a step reads and ingests (a row holds one execution's records written together): a
 * few milliseconds of the writer's time.
 */
export const ROWS_PER_STEP = 500

export class Compactor {
  /** The aggregator being brought up to date, while a compaction runs. */
  private aggregator: OutcomeAggregator | undefined
  /** The last record ingested into {@link aggregator}. */
  private consumed = 0
  /** The last record the log's snapshot covers. */
  private through: number
  /** The new snapshot, packed, covering records up to {@link consumed}: the next step writes it. */
  private packed: Buffer | undefined
  private readonly source = new RowSource()

  constructor(
    private readonly store: LogStore,
    private readonly setup: CompactionSetup,
  ) {
    this.through = store.snapshotThrough()
  }

  /** Whether a compaction is under way, or enough records were written since the last snapshot to start one. */
  get due(): boolean {
    return (
      this.aggregator !== undefined ||
      this.packed !== undefined ||
      this.store.lastRecord - this.through >= this.setup.every
    )
  }

  /**
   * Ingests up to {@link ROWS_PER_STEP} more rows of records, starting a compaction if one is due; once it
   * has read every row written, packs the snapshot, and the next step writes it (each of the two is about
   * half the work of the snapshot, so a commit waits for no more than one).
   * @returns whether the compaction needs more steps.
   * @throws when the log cannot be read or written, or holds a snapshot this version cannot read.
   */
  step(): boolean {
    if (!this.due) return false
    if (this.packed !== undefined) {
      this.store.saveSnapshot(this.consumed, this.packed)
      this.through = this.consumed
      this.packed = undefined
      return false
    }
    const aggregator = this.aggregator ?? this.begin()
    const rows = this.store.recordRows(this.consumed, ROWS_PER_STEP)
    aggregator.batch(() => {
      for (const row of rows) this.ingestRow(aggregator, row.body)
    })
    if (rows.length > 0) this.consumed = rows[rows.length - 1]!.seq
    if (rows.length < ROWS_PER_STEP) {
      this.packed = packSnapshot(aggregator.snapshot(keepBytes))
      this.aggregator = undefined
    }
    return true
  }

  /** Compacts every record written since the last snapshot, however few (a clean close). */
  finish(): void {
    // A compaction under way (or due) first, then one of whatever is left, however few.
    while (this.step()) {}
    if (this.store.lastRecord === this.through) return
    this.begin()
    while (this.step()) {}
  }

  /**
   * Ingests the records of one row. Each is decoded for counting, and kept (when retained) as its bytes in
   * the row, like the runtime keeps records as bytes of their frames: thousands of retained decisions are
   * then a few buffers each instead of object graphs that every collection has to promote and mark.
   */
  private ingestRow(aggregator: OutcomeAggregator, body: Buffer): void {
    const header = arrayHeader(body)
    if (header < 0) {
      // One record, or (rarely) records that held a cycle, written as a value: decoded as such.
      if (body[0] === MARK) {
        for (const record of unpackRecords(body)) aggregator.ingest(record as AggregatedRecord)
        return
      }
      const record = decodeRecord(body) as AggregatedRecord
      this.source.row(body).add(0, body.length)
      aggregator.ingest(record, this.source, 0)
      return
    }
    const records: AggregatedRecord[] = []
    const source = this.source.row(body)
    // The array's elements are msgpack values one after another: each decoded with its byte range.
    recordUnpackr.unpackMultiple(body.subarray(header), (record, start, end) => {
      records.push(record as AggregatedRecord)
      source.add(header + start!, header + end!)
    })
    for (let i = 0; i < records.length; i++) aggregator.ingest(records[i]!, source, i)
  }

  private begin(): OutcomeAggregator {
    const aggregator = new OutcomeAggregator(this.setup.goal, this.setup.outcomes)
    const kept = this.store.snapshot()
    if (kept !== undefined) aggregator.restore(unpack(kept.body) as AggregatorSnapshot, decodeRecord)
    this.consumed = kept?.through ?? 0
    this.aggregator = aggregator
    return aggregator
  }
}

/** The length of the array header `body` starts with, or −1 when it does not start with an array. */
function arrayHeader(body: Buffer): number {
  const b = body[0]!
  if (b >= 0x90 && b <= 0x9f) return 1
  if (b === 0xdc) return 3
  if (b === 0xdd) return 5
  return -1
}

/** Records kept as their bytes in a row of the log, decoded again (plain msgpack) when asked for. */
class RowBytes extends RetainedFrame {
  constructor(private readonly body: Buffer) {
    super(body, [])
  }

  override decode(start: number, end: number): unknown {
    return decodeRecord(this.body.subarray(start, end))
  }

  /** The bytes of the record in `[start, end)`, as they are (not a copy). */
  slice(start: number, end: number): Uint8Array {
    return this.body.subarray(start, end)
  }
}

/**
 * Rows up to this size are kept whole for their retained records; from a larger one only the record's own
 * bytes are copied, so a small decision never pins a row of large records.
 */
const WHOLE_ROW_BYTES = 16 * 1024

/**
 * Where each record of the row being ingested lies, for the aggregator to keep it as bytes (the role a
 * {@link FrameSource} plays for a record channel's frame).
 */
class RowSource extends FrameSource {
  private body: Buffer | undefined
  private kept: RowBytes | undefined
  private readonly at: number[] = []

  /** Starts a row. */
  row(body: Buffer): this {
    this.body = body
    this.kept = undefined
    this.at.length = 0
    return this
  }

  override add(start: number, end: number): void {
    this.at.push(start, end)
  }

  override keepFrame(index: number): RetainedFrame {
    const body = this.body!
    const start = this.at[2 * index]!
    const end = this.at[2 * index + 1]!
    if (body.length > WHOLE_ROW_BYTES) {
      this.keptStart = 0
      this.keptEnd = end - start
      return new RowBytes(Buffer.from(body.subarray(start, end)))
    }
    this.kept ??= new RowBytes(body)
    this.keptStart = start
    this.keptEnd = end
    return this.kept
  }
}

/**
 * A retained record in the snapshot: the bytes it was written in, copied as they are (no decoding and
 * encoding again). Every record this aggregator keeps as bytes came from a {@link RowSource}.
 */
function keepBytes(frame: RetainedFrame, start: number, end: number): Uint8Array {
  return (frame as RowBytes).slice(start, end)
}
