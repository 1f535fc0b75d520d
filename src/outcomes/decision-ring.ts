/**
 * The aggregator's bounded memory of recent decisions and their outcomes.
 *
 * Decision `n` (0-based, counted since construction) lives in slot `n % size` while it is among the last
 * `size` decisions. A slot keeps what lookups need in typed arrays and plain references: the execution
 * id (also the key of the lookup map), the stream's counters object (shared by every decision of the
 * stream), the attempt and sequence numbers, and the link to the previous retained decision of the same
 * execution id. The decision itself is kept either as the decoded record or — when it came through the
 * record channel — as its place in a {@link RetainedFrame}, decoded again only when someone asks for it.
 * Kept as bytes, a retained decision is a handful of numbers rather than an object graph that survives
 * young-generation collections and has to be promoted and marked; the same goes for its outcome.
 *
 * An execution's latest decision is found through a map keyed by the execution id the record already
 * carries. The map is never deleted from: it has two generations, and the older one is dropped once the
 * newer has seen `size` executions (by then every decision only the older one knows has left the ring).
 * The map and the per-execution links are brought up to date lazily, by the first lookup that needs them.
 * {@link DecisionRing.find} looks first along its stream's own chain of decisions (each slot links to the
 * previous decision of the same stream, and {@link StreamCounters} holds the newest): an outcome that
 * follows its decision closely in its stream — the common case, even while other streams and threads
 * interleave — is matched there without hashing anything. Each decision is indexed at most once, so a
 * workload whose outcomes come late pays what an eager index would.
 *
 * Main thread only.
 *
 * @module
 */

import { RetainedFrame } from '../channel/index.js'
import type { DecisionRecord, OutcomeRecord } from '../protocol.js'
import type { StreamOutcomeStats } from './types.js'

/** Newest decisions of its stream {@link DecisionRing.find} compares directly before it looks the execution id up. */
const RECENT_IN_STREAM = 8

/** A stream's counters, and the newest retained decision of the stream (for {@link DecisionRing.find}). */
export class StreamCounters implements StreamOutcomeStats {
  decisions = 0
  successfulOutcomes = 0
  failedOutcomes = 0
  problems = 0
  violations = 0
  /** Number of the stream's newest decision pushed into the ring, or −1. */
  lastDecision = -1

  /** The public counters, as a new plain object. */
  toStats(): StreamOutcomeStats {
    return {
      decisions: this.decisions,
      successfulOutcomes: this.successfulOutcomes,
      failedOutcomes: this.failedOutcomes,
      problems: this.problems,
      violations: this.violations,
    }
  }
}

/** Outcome states of a slot. */
export const OutcomeState = { NONE: 0, SUCCEEDED: 1, FAILED: 2 } as const
export type OutcomeState = (typeof OutcomeState)[keyof typeof OutcomeState]

export class DecisionRing {
  readonly size: number
  /** Decisions pushed so far; the next one's number. */
  private total = 0

  private readonly executionIds: (string | undefined)[]
  private readonly streams: (StreamCounters | undefined)[]
  private readonly attempts: Int32Array
  private readonly seqs: Int32Array
  /** Number of the previous retained decision of the same execution id, or −1. */
  private readonly prev: Float64Array
  /** Number of the previous decision of the same stream, or −1. */
  private readonly streamPrev: Float64Array
  /** The decoded decision record, or its bytes. */
  private readonly records: (DecisionRecord | RetainedFrame | undefined)[]
  private readonly recordStart: Int32Array
  private readonly recordEnd: Int32Array
  /** The outcome record, or its bytes; with its success and stream kept apart for recounting. */
  private readonly outcomes: (OutcomeRecord | RetainedFrame | undefined)[]
  private readonly outcomeStart: Int32Array
  private readonly outcomeEnd: Int32Array
  private readonly outcomeState: Uint8Array
  private readonly outcomeStreams: (StreamCounters | undefined)[]

  private latest = new Map<string, number>()
  private latestOld = new Map<string, number>()
  /** Decisions before this number are in the lookup map and have their `prev` link. */
  private indexed = 0

  constructor(size: number) {
    this.size = size
    this.executionIds = new Array(size)
    this.streams = new Array(size)
    this.attempts = new Int32Array(size)
    this.seqs = new Int32Array(size)
    this.prev = new Float64Array(size)
    this.streamPrev = new Float64Array(size)
    this.records = new Array(size)
    this.recordStart = new Int32Array(size)
    this.recordEnd = new Int32Array(size)
    this.outcomes = new Array(size)
    this.outcomeStart = new Int32Array(size)
    this.outcomeEnd = new Int32Array(size)
    this.outcomeState = new Uint8Array(size)
    this.outcomeStreams = new Array(size)
  }

  /** Decisions retained now. */
  get retained(): number {
    return Math.min(this.total, this.size)
  }

  /** The oldest retained decision's number. */
  get oldest(): number {
    return this.total - this.retained
  }

  /** The number after the newest retained decision's. */
  get end(): number {
    return this.total
  }

  /**
   * Retains a decision (dropping the oldest when full). With `frame`, only its place there (`start`, `end`)
   * is kept; without, `r` itself.
   * @returns whether an older decision was dropped to make room. Never call with `size` 0.
   */
  push(
    r: DecisionRecord,
    stream: StreamCounters,
    frame: RetainedFrame | undefined,
    start: number,
    end: number,
  ): boolean {
    const dropped = this.total >= this.size
    const n = this.total++
    const slot = n % this.size
    this.executionIds[slot] = ownString(r.executionId)
    this.streams[slot] = stream
    this.streamPrev[slot] = stream.lastDecision
    stream.lastDecision = n
    this.attempts[slot] = r.attempt
    this.seqs[slot] = r.seq
    if (frame === undefined) {
      this.records[slot] = r
    } else {
      this.records[slot] = frame
      this.recordStart[slot] = start
      this.recordEnd[slot] = end
    }
    this.outcomes[slot] = undefined
    this.outcomeStreams[slot] = undefined
    this.outcomeState[slot] = OutcomeState.NONE
    return dropped
  }

  /** Indexes every retained decision pushed since the last lookup: the map, and each one's `prev` link. */
  private catchUp(): void {
    const oldest = this.oldest
    for (let n = Math.max(this.indexed, oldest); n < this.total; n++) {
      const slot = n % this.size
      const executionId = this.executionIds[slot]!
      const latest = this.latest.get(executionId)
      this.prev[slot] =
        latest !== undefined && latest >= oldest ? latest : this.latestIn(this.latestOld, executionId)
      if (latest === undefined && this.latest.size >= this.size) {
        this.latestOld = this.latest
        this.latest = new Map()
      }
      this.latest.set(executionId, n)
    }
    this.indexed = this.total
  }

  /** Number of the latest retained decision of `executionId`, or −1. */
  latestOf(executionId: string): number {
    if (this.indexed < this.total) this.catchUp()
    const n = this.latest.get(executionId)
    return n !== undefined ? (n >= this.oldest ? n : -1) : this.latestIn(this.latestOld, executionId)
  }

  private latestIn(map: Map<string, number>, executionId: string): number {
    const n = map.get(executionId)
    return n !== undefined && n >= this.oldest ? n : -1
  }

  /** The previous retained decision of the same execution id as decision `n` (from {@link latestOf}), or −1. */
  previous(n: number): number {
    const p = this.prev[n % this.size]!
    return p >= this.oldest ? p : -1
  }

  /**
   * The retained decision `${executionId}:${attempt}:${seq}`, or −1. When the id recurs (only if execution
   * ids are reused), the newest one in `stream` wins, else the newest one in any stream.
   */
  find(executionId: string, attempt: number, seq: number, stream: StreamCounters): number {
    // An outcome usually follows its decision closely in its stream: look there before hashing the id.
    const oldest = this.oldest
    let n = stream.lastDecision
    for (let steps = 0; n >= oldest && steps < RECENT_IN_STREAM; steps++) {
      const slot = n % this.size
      if (this.isDecision(slot, executionId, attempt, seq)) return n
      n = this.streamPrev[slot]!
    }
    let newest = -1
    for (let m = this.latestOf(executionId); m >= 0; m = this.previous(m)) {
      const slot = m % this.size
      if (this.isDecision(slot, executionId, attempt, seq)) {
        if (this.streams[slot] === stream) return m
        if (newest < 0) newest = m
      }
    }
    return newest
  }

  /** Whether `slot` holds decision `${executionId}:${attempt}:${seq}` (the cheap comparisons first). */
  private isDecision(slot: number, executionId: string, attempt: number, seq: number): boolean {
    return (
      this.seqs[slot] === seq && this.attempts[slot] === attempt && this.executionIds[slot] === executionId
    )
  }

  /** The stream counters of retained decision `n`. */
  streamOf(n: number): StreamCounters {
    return this.streams[n % this.size]!
  }

  /** Retained decision `n` as its record (decoded again if it was kept as bytes). */
  decision(n: number): DecisionRecord {
    const slot = n % this.size
    const kept = this.records[slot]!
    return isFrame(kept)
      ? (kept.decode(this.recordStart[slot]!, this.recordEnd[slot]!) as DecisionRecord)
      : kept
  }

  /** The outcome recorded for retained decision `n`, if any (decoded again if it was kept as bytes). */
  outcome(n: number): OutcomeRecord | undefined {
    const slot = n % this.size
    const kept = this.outcomes[slot]
    if (kept === undefined) return undefined
    return isFrame(kept)
      ? (kept.decode(this.outcomeStart[slot]!, this.outcomeEnd[slot]!) as OutcomeRecord)
      : kept
  }

  /** Retained decision `n`: the record, or what `keep` makes of its bytes when it was kept as bytes. */
  decisionKept<T>(
    n: number,
    keep: (frame: RetainedFrame, start: number, end: number) => T,
  ): DecisionRecord | T {
    const slot = n % this.size
    const kept = this.records[slot]!
    return isFrame(kept) ? keep(kept, this.recordStart[slot]!, this.recordEnd[slot]!) : kept
  }

  /** {@link decisionKept} for decision `n`'s outcome, if it has one. */
  outcomeKept<T>(
    n: number,
    keep: (frame: RetainedFrame, start: number, end: number) => T,
  ): OutcomeRecord | T | undefined {
    const slot = n % this.size
    const kept = this.outcomes[slot]
    if (kept === undefined) return undefined
    return isFrame(kept) ? keep(kept, this.outcomeStart[slot]!, this.outcomeEnd[slot]!) : kept
  }

  /** Whether decision `n` has an outcome, and whether it succeeded: {@link OutcomeState}. */
  outcomeStateOf(n: number): OutcomeState {
    return this.outcomeState[n % this.size] as OutcomeState
  }

  /** The stream of the execution that recorded decision `n`'s outcome (when it has one). */
  outcomeStreamOf(n: number): StreamCounters {
    return this.outcomeStreams[n % this.size]!
  }

  /** Attaches an outcome to retained decision `n`, replacing any earlier one; with `frame`, as its bytes. */
  setOutcome(
    n: number,
    r: OutcomeRecord,
    stream: StreamCounters,
    frame: RetainedFrame | undefined,
    start: number,
    end: number,
  ): void {
    const slot = n % this.size
    if (frame === undefined) {
      this.outcomes[slot] = r
    } else {
      this.outcomes[slot] = frame
      this.outcomeStart[slot] = start
      this.outcomeEnd[slot] = end
    }
    this.outcomeState[slot] = r.success ? OutcomeState.SUCCEEDED : OutcomeState.FAILED
    this.outcomeStreams[slot] = stream
  }
}

/**
 * `s` as a string that holds no other string alive. A string decoded from a record-channel frame is often
 * a slice of one string msgpackr made of every string in the frame, so keeping the execution id of each
 * retained decision as decoded would keep every such frame's strings too (measured: about 4 KiB per frame,
 * several MiB surviving each young-generation collection at the default retention). Concatenating and
 * slicing again copies the characters into a string of their own — in V8, the cheapest copy there is.
 */
function ownString(s: string): string {
  return ` ${s}`.slice(1)
}

function isFrame(kept: object): kept is RetainedFrame {
  return kept instanceof RetainedFrame
}
