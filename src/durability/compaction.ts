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
 * one step for it. A clean close finishes it, so a restart after a clean stop replays nothing.
 *
 * @module
 */
import type { Goal } from '../config/index.js'
import { type AggregatedRecord, type AggregatorSnapshot, OutcomeAggregator } from '../outcomes/index.js'
import type { OutcomeAggregatorOptions } from '../outcomes/types.js'
import { packSnapshot, unpack, unpackRecords } from './codec.js'
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

  constructor(
    private readonly store: LogStore,
    private readonly setup: CompactionSetup,
  ) {
    this.through = store.snapshotThrough()
  }

  /** Whether a compaction is under way, or enough records were written since the last snapshot to start one. */
  get due(): boolean {
    return this.aggregator !== undefined || this.store.lastRecord - this.through >= this.setup.every
  }

  /**
   * Ingests up to {@link ROWS_PER_STEP} more rows of records, starting a compaction if one is due; once it
   * has read every row written, writes the snapshot.
   * @returns whether the compaction needs more steps.
   * @throws when the log cannot be read or written, or holds a snapshot this version cannot read.
   */
  step(): boolean {
    if (!this.due) return false
    const aggregator = this.aggregator ?? this.begin()
    const rows = this.store.recordRows(this.consumed, ROWS_PER_STEP)
    aggregator.batch(() => {
      for (const row of rows)
        for (const record of unpackRecords(row.body)) aggregator.ingest(record as AggregatedRecord)
    })
    if (rows.length > 0) this.consumed = rows[rows.length - 1]!.seq
    if (rows.length === ROWS_PER_STEP) return true
    this.store.saveSnapshot(this.consumed, packSnapshot(aggregator.snapshot()))
    this.through = this.consumed
    this.aggregator = undefined
    return false
  }

  /** Compacts every record written since the last snapshot, however few (a clean close). */
  finish(): void {
    if (this.aggregator === undefined && this.store.lastRecord === this.through) return
    this.aggregator ??= this.begin()
    while (this.step()) {}
  }

  private begin(): OutcomeAggregator {
    const aggregator = new OutcomeAggregator(this.setup.goal, this.setup.outcomes)
    const kept = this.store.snapshot()
    if (kept !== undefined) aggregator.restore(unpack(kept.body) as AggregatorSnapshot)
    this.consumed = kept?.through ?? 0
    this.aggregator = aggregator
    return aggregator
  }
}
