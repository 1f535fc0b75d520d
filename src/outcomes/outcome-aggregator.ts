/**
 * The main-thread {@link OutcomeAggregator}: consumes decision, outcome, problem and violation records
 * from every stream, keeps exact counters and a bounded window of recent decisions, evaluates the goal,
 * and publishes `goal_progress`, `goal_achieved` and `constraint_violation` when they change.
 *
 * @module
 */

import type { FrameSource, RetainedFrame } from '../channel/index.js'
import { type Goal, type NormalizedCriterion, type NormalizedGoal, normalizeGoal } from '../config/index.js'
import { describeValue, InvalidArgumentError } from '../errors.js'
import type { CriterionProgressSummary, EventBus } from '../events/index.js'
import {
  type DecisionRecord,
  decisionId,
  type OutcomeRecord,
  type ProblemRecord,
  type ViolationRecord,
} from '../protocol.js'
import { DecisionRing, OutcomeState, StreamCounters } from './decision-ring.js'
import { checkDecision, checkOutcome, copyOutcomeFields, decisionRecord } from './execution-recorder.js'
import { criterionStanding, recommendationOf, resolveAggregatorOptions } from './goal.js'
import type {
  ConstraintViolationSummary,
  CriterionProgress,
  Decision,
  DecisionInput,
  GoalProgress,
  Outcome,
  OutcomeAggregatorOptions,
  OutcomeInput,
  OutcomeStats,
  ProblemSeverity,
  ResolvedOutcomeAggregatorOptions,
} from './types.js'

/** Execution ids of main-thread decisions whose next sequence number is remembered. */
const MAIN_EXECUTIONS_KEPT = 10_000

/** Records the aggregator consumes. */
export type AggregatedRecord = DecisionRecord | OutcomeRecord | ProblemRecord | ViolationRecord

/**
 * Everything an aggregator holds, as plain data ({@link OutcomeAggregator.snapshot}): its exact counters
 * and its retained decisions with their outcomes, oldest first. The run log keeps the latest one in place of
 * the records it covers, so a restart restores it and replays only the records made after it.
 * @internal
 */
export interface AggregatorSnapshot {
  v: 1
  totalDecisions: number
  successes: number
  failures: number
  orphanOutcomes: number
  replacedOutcomes: number
  droppedDecisions: number
  executionsTotal: number
  mainExecutions: number
  /** Next attempt-0 sequence number per execution id, oldest first. */
  mainSeqs: [string, number][]
  /** Counters of the goal's criteria: decisions, successes, failures. */
  criteria: [string, number, number, number][]
  /** Per stream: decisions, successful and failed outcomes, problems, violations. */
  streams: [string, number, number, number, number, number][]
  problems: Record<ProblemSeverity, number>
  violations: ConstraintViolationSummary[]
  hardViolations: number
  softViolations: number
  /**
   * Retained decisions, oldest first: the record, its outcome (or null) and the outcome's stream. A record
   * may be the bytes {@link OutcomeAggregator.snapshot}'s `keep` made of it; {@link OutcomeAggregator.restore}
   * then needs a `decode` that turns them back.
   */
  retained: [DecisionRecord | Uint8Array, OutcomeRecord | Uint8Array | null, string | null][]
  /** The stream and execution of the last goal-relevant record, for the goal events a restore publishes. */
  last: [string, string] | null
}

interface CriterionCounters {
  decisions: number
  successes: number
  failures: number
}

interface Snapshot {
  overall: number
  recommendation: GoalProgress['recommendation']
  /** Which criteria are met, in goal order. */
  met: boolean[]
}

/**
 * Aggregates outcomes across streams toward the runtime's goal. Main thread only.
 *
 * Counters (`metrics`, `stats`, criterion evidence) are exact over everything since construction or
 * `reset()`. Only the decisions themselves are bounded by `maxDecisions`; the oldest are dropped
 * first. `executionsTotal` counts a retried execution once as long as its earlier attempt's decisions are
 * still retained when the retry decides.
 *
 * Retention is built for a main thread that ingests hundreds of thousands of records per second (see
 * {@link DecisionRing}): decisions and outcomes that came through the record channel are kept as their
 * place in the frame they arrived in, not as decoded objects. {@link Decision} objects are built when
 * asked for, so each query returns fresh objects.
 */
export class OutcomeAggregator {
  private readonly goal: NormalizedGoal | undefined
  private readonly opts: ResolvedOutcomeAggregatorOptions
  private readonly bus: EventBus | undefined
  private readonly onMainRecord: ((record: DecisionRecord | OutcomeRecord) => void) | undefined
  /**
   * Main-thread decisions: the next sequence number per execution id (bounded), and the highest `main-<n>`
   * made so far. Decisions ingested from elsewhere (a run log restored at start) move both on, so a
   * restarted runtime never hands out a decision id it handed out before.
   */
  private readonly mainSeqs = new Map<string, number>()
  private mainExecutions = 0

  private ring!: DecisionRing
  private totalDecisions = 0
  private successes = 0
  private failures = 0
  private orphanOutcomes = 0
  private replacedOutcomes = 0
  private droppedDecisions = 0
  private executionsTotal = 0
  private criteria = new Map<string, CriterionCounters>()
  private streams = new Map<string, StreamCounters>()
  /** The criterion {@link criterion} found last, by id. */
  private lastCriterionId: string | undefined
  private lastCriterion: CriterionCounters | undefined
  /** The stream {@link stream} found last, by id. */
  private lastStreamId: string | undefined
  private lastStream: StreamCounters | undefined
  private problems: Record<ProblemSeverity, number> = { low: 0, medium: 0, high: 0, critical: 0 }
  private violations = new Map<string, ConstraintViolationSummary>()
  private hardViolations = 0
  private softViolations = 0
  /** The standing last published (initially the empty one: nothing to announce until it moves). */
  private published!: Snapshot
  private achieved = false
  private batchDepth = 0
  /** The last goal-relevant record ingested in the running batch: goal events name its stream and execution. */
  private batchCause: AggregatedRecord | undefined
  /** The stream and execution of the last goal-relevant record ingested (see {@link AggregatorSnapshot.last}). */
  private lastCause: AggregatedRecord | undefined

  /**
   * @param goal The runtime's goal (raw or resolved); without one, progress stays 0 and no goal events are published.
   * @param options Retention, recommendation thresholds and the bus to publish on.
   * @throws ConfigError for a bad goal; InvalidArgumentError for a bad option.
   */
  constructor(goal: Goal | undefined, options: OutcomeAggregatorOptions = {}) {
    this.goal = goal === undefined ? undefined : normalizeGoal(goal)
    this.opts = resolveAggregatorOptions(options)
    this.bus = options.bus
    this.onMainRecord = options.onMainRecord
    this.resetRetention()
    this.resetCriteria()
  }

  /** The resolved options. */
  get options(): Readonly<ResolvedOutcomeAggregatorOptions> {
    return this.opts
  }

  /**
   * Consumes one record from a worker. Called by the runtime's record router; records of one attempt
   * arrive in the order they were made. Goal events follow at once, or at the end of the enclosing
   * {@link batch}. With `source` (the record channel's frame the record is number `index` of), a retained
   * decision or outcome is kept as bytes and decoded again only when asked for.
   */
  ingest(record: AggregatedRecord, source?: FrameSource, index = -1): void {
    switch (record.k) {
      case 'decision':
        this.addDecision(record, source, index)
        break
      case 'outcome':
        this.addOutcome(record, source, index)
        break
      case 'problem':
        this.problems[record.severity]++
        this.stream(record.streamId).problems++
        return
      case 'violation':
        this.addViolation(record)
        break
    }
    this.lastCause = record
    if (this.batchDepth > 0) this.batchCause = record
    else this.publishChanges(record)
  }

  /**
   * @internal Everything this aggregator holds, as plain data: ingesting records into
   * {@link restore}`(snapshot())` of a fresh aggregator leaves it as ingesting them here would
   * (`test/outcomes-snapshot.test.ts`). A retained record kept as bytes of a frame is decoded, or, with
   * `keep`, is what `keep` makes of its bytes (the run log's compaction copies them as they are).
   */
  snapshot(keep?: (frame: RetainedFrame, start: number, end: number) => Uint8Array): AggregatorSnapshot {
    const ids = new Map<StreamCounters, string>()
    for (const [id, s] of this.streams) ids.set(s, id)
    const retained: AggregatorSnapshot['retained'] = []
    const ring = this.ring
    for (let n = ring.oldest; n < ring.end; n++) {
      const outcome = keep === undefined ? ring.outcome(n) : ring.outcomeKept(n, keep)
      retained.push([
        keep === undefined ? ring.decision(n) : ring.decisionKept(n, keep),
        outcome ?? null,
        outcome === undefined ? null : ids.get(ring.outcomeStreamOf(n))!,
      ])
    }
    const cause = this.lastCause
    return {
      v: 1,
      totalDecisions: this.totalDecisions,
      successes: this.successes,
      failures: this.failures,
      orphanOutcomes: this.orphanOutcomes,
      replacedOutcomes: this.replacedOutcomes,
      droppedDecisions: this.droppedDecisions,
      executionsTotal: this.executionsTotal,
      mainExecutions: this.mainExecutions,
      mainSeqs: [...this.mainSeqs],
      criteria: [...this.criteria].map(([id, c]) => [id, c.decisions, c.successes, c.failures]),
      streams: [...this.streams].map(([id, s]) => [
        id,
        s.decisions,
        s.successfulOutcomes,
        s.failedOutcomes,
        s.problems,
        s.violations,
      ]),
      problems: { ...this.problems },
      violations: [...this.violations.values()].map((v) => ({ ...v })),
      hardViolations: this.hardViolations,
      softViolations: this.softViolations,
      retained,
      last: cause === undefined ? null : [cause.streamId, cause.executionId],
    }
  }

  /**
   * @internal Takes on a {@link snapshot} in place of everything held so far, then publishes the goal's
   * standing like ingesting the records it covers would have. Counters of criteria the goal no longer has
   * are dropped; one it has gained starts from zero. With a smaller `maxDecisions` the oldest retained
   * decisions are dropped (and counted so), as replaying their records would.
   * @param decode turns a retained record kept as bytes back into the record.
   * @throws InvalidArgumentError when `snapshot` is not one this version wrote.
   */
  restore(snapshot: AggregatorSnapshot, decode?: (bytes: Uint8Array) => unknown): void {
    if (snapshot?.v !== 1)
      throw new InvalidArgumentError(
        `restore: not an aggregator snapshot this version can read (v ${describeValue(snapshot?.v)})`,
      )
    this.reset()
    this.totalDecisions = snapshot.totalDecisions
    this.successes = snapshot.successes
    this.failures = snapshot.failures
    this.orphanOutcomes = snapshot.orphanOutcomes
    this.replacedOutcomes = snapshot.replacedOutcomes
    this.droppedDecisions = snapshot.droppedDecisions
    this.executionsTotal = snapshot.executionsTotal
    this.mainExecutions = snapshot.mainExecutions
    this.mainSeqs.clear()
    for (const [id, seq] of snapshot.mainSeqs) this.mainSeqs.set(id, seq)
    for (const [id, decisions, successes, failures] of snapshot.criteria) {
      const c = this.criteria.get(id)
      if (c !== undefined) Object.assign(c, { decisions, successes, failures })
    }
    for (const [id, decisions, successfulOutcomes, failedOutcomes, problems, violations] of snapshot.streams)
      Object.assign(this.stream(id), { decisions, successfulOutcomes, failedOutcomes, problems, violations })
    this.problems = { ...snapshot.problems }
    for (const v of snapshot.violations) this.violations.set(v.constraintId, { ...v })
    this.hardViolations = snapshot.hardViolations
    this.softViolations = snapshot.softViolations
    const record = <T>(r: T | Uint8Array): T => {
      if (!(r instanceof Uint8Array)) return r
      if (decode === undefined)
        throw new InvalidArgumentError('restore: the snapshot holds records as bytes and no decode was given')
      return decode(r) as T
    }
    for (const [kept, keptOutcome, outcomeStream] of snapshot.retained) {
      if (this.ring.size === 0) {
        this.droppedDecisions++
        continue
      }
      const decision = record(kept)
      if (this.ring.push(decision, this.stream(decision.streamId), undefined, 0, 0)) this.droppedDecisions++
      if (keptOutcome !== null)
        this.ring.setOutcome(
          this.ring.end - 1,
          record(keptOutcome),
          this.stream(outcomeStream!),
          undefined,
          0,
          0,
        )
    }
    if (snapshot.last !== null) {
      const [streamId, executionId] = snapshot.last
      const cause = { k: 'problem', streamId, executionId } as AggregatedRecord
      this.lastCause = cause
      if (this.batchDepth > 0) this.batchCause = cause
      else this.publishChanges(cause)
    }
  }

  /**
   * Runs `fn` (which ingests many records) and evaluates the goal once at the end instead of after every
   * record, so a burst publishes at most one `goal_progress`. Constraint violations are still published
   * one by one. Nests.
   */
  batch<T>(fn: () => T): T {
    this.beginBatch()
    try {
      return fn()
    } finally {
      this.endBatch()
    }
  }

  /** @internal {@link batch} in two halves, for a caller that would otherwise make a closure per call. */
  beginBatch(): void {
    this.batchDepth++
  }

  /** @internal Ends a {@link beginBatch}; always pair them (in a `finally`). */
  endBatch(): void {
    const cause = this.batchCause
    if (--this.batchDepth === 0 && cause !== undefined) {
      this.batchCause = undefined
      this.publishChanges(cause)
    }
  }

  /** Where the goal stands now. */
  evaluateGoalProgress(): GoalProgress {
    const criteria: Record<string, CriterionProgress> = {}
    let overall = 0
    let allMet = this.goal !== undefined && this.goal.criteria.length > 0
    for (const c of this.goal?.criteria ?? []) {
      const n = this.criteria.get(c.id)!
      const { outcomes, successRate, progress, met } = this.standing(c, n)
      allMet &&= met
      overall += (progress * c.weight) / this.goal!.totalWeight
      criteria[c.id] = {
        met,
        progress,
        evidence: {
          decisions: n.decisions,
          outcomes,
          successes: n.successes,
          failures: n.failures,
          successRate,
          target: c.target,
          weight: c.weight,
        },
      }
    }
    return {
      goalId: this.goal?.id,
      overallProgress: overall,
      criteria,
      constraintViolations: [...this.violations.values()].map((v) => ({ ...v })),
      metrics: {
        totalDecisions: this.totalDecisions,
        successfulOutcomes: this.successes,
        failedOutcomes: this.failures,
        successRate: rate(this.successes, this.failures),
        streamsActive: [...this.streams.values()].filter((s) => s.decisions > 0).length,
        executionsTotal: this.executionsTotal,
      },
      recommendation: this.recommend(overall, allMet),
    }
  }

  /** Retained decisions of one stream, oldest first. */
  decisionsByStream(streamId: string): Decision[] {
    const stream = this.streams.get(streamId)
    return stream === undefined ? [] : this.retained((n) => this.ring.streamOf(n) === stream)
  }

  /** Retained decisions of one execution (every attempt), oldest first. */
  decisionsByExecution(streamId: string, executionId: string): Decision[] {
    const stream = this.streams.get(streamId)
    const found: number[] = []
    for (let n = this.ring.latestOf(executionId); n >= 0; n = this.ring.previous(n)) {
      if (this.ring.streamOf(n) === stream) found.push(n)
    }
    return found.reverse().map((n) => this.decisionAt(n))
  }

  /** The `n` most recent retained decisions, oldest first. */
  recentDecisions(n = 100): Decision[] {
    const all = this.retained()
    return n >= all.length ? all : all.slice(all.length - Math.max(0, Math.floor(n)))
  }

  /** Counters and retention figures. */
  stats(): OutcomeStats {
    return {
      retainedDecisions: this.ring.retained,
      maxDecisions: this.opts.maxDecisions,
      droppedDecisions: this.droppedDecisions,
      totalDecisions: this.totalDecisions,
      successfulOutcomes: this.successes,
      failedOutcomes: this.failures,
      orphanOutcomes: this.orphanOutcomes,
      replacedOutcomes: this.replacedOutcomes,
      problems: { ...this.problems },
      violations: { hard: this.hardViolations, soft: this.softViolations },
      executionsTotal: this.executionsTotal,
      streams: Object.fromEntries([...this.streams].map(([id, s]) => [id, s.toStats()])),
    }
  }

  /**
   * Main thread: records a decision made outside any handler (by the embedding service), counted in goal
   * progress like a handler's. Its execution id is `executionId` when given (several decisions may share
   * one), else a fresh `main-<n>`. Publishes goal events like a handler's decision.
   * @returns the decision's id, for {@link recordOutcome} (here or in a handler).
   * @throws InvalidArgumentError naming a bad field.
   */
  recordDecision(input: DecisionInput, opts: { streamId: string; executionId?: string }): string {
    const streamId = opts?.streamId
    if (typeof streamId !== 'string' || streamId === '')
      throw new InvalidArgumentError(
        `recordDecision: opts.streamId must be a non-empty string (got ${describeValue(streamId)})`,
        { field: 'streamId' },
      )
    const given = opts.executionId
    if (given !== undefined && (typeof given !== 'string' || given === ''))
      throw new InvalidArgumentError(
        `recordDecision: opts.executionId must be a non-empty string (got ${describeValue(given)})`,
        { field: 'executionId' },
      )
    const d = checkDecision(input)
    const executionId = given ?? `main-${++this.mainExecutions}`
    const seq = this.mainSeqs.get(executionId) ?? 0
    // Attempt 0: a main-thread decision; a handler's attempts count from 1. Ingesting it moves the
    // execution's next number on (noteMainDecision).
    const record = decisionRecord(executionId, streamId, 0, seq, executionId, d)
    this.ingest(record)
    this.onMainRecord?.(record)
    return decisionId(executionId, 0, seq)
  }

  /**
   * Main thread: records the outcome of decision `decisionId` (one {@link recordDecision} returned, or a
   * handler's `ctx.decide`), counted in goal progress like a handler's. A second outcome replaces the first.
   * @throws InvalidArgumentError naming a bad field.
   */
  recordOutcome(decisionId: string, outcome: OutcomeInput): void {
    if (typeof decisionId !== 'string' || decisionId === '')
      throw new InvalidArgumentError(
        `recordOutcome: decisionId must be a non-empty string (got ${describeValue(decisionId)})`,
        { field: 'decisionId' },
      )
    const o = checkOutcome(outcome)
    const found = this.decisionById(decisionId)
    if (found === undefined)
      throw new InvalidArgumentError(
        `recordOutcome: no retained decision has id ${JSON.stringify(decisionId)} (unknown, or dropped past outcomes.maxDecisions)`,
        { field: 'decisionId' },
      )
    const record: OutcomeRecord = {
      k: 'outcome',
      executionId: found.executionId,
      streamId: found.streamId,
      attempt: 0,
      decisionId,
      success: o.success,
      timestamp: Date.now(),
    }
    copyOutcomeFields(record, o)
    this.ingest(record)
    this.onMainRecord?.(record)
  }

  /** A main-thread decision (attempt 0) was counted: the next one of its execution, and `main-<n>`, go past it. */
  private noteMainDecision(executionId: string, seq: number): void {
    if ((this.mainSeqs.get(executionId) ?? 0) <= seq) {
      this.mainSeqs.delete(executionId)
      this.mainSeqs.set(executionId, seq + 1)
      // Bounded: an execution id unused for long restarts at the next free number of its attempt 0.
      if (this.mainSeqs.size > MAIN_EXECUTIONS_KEPT) this.mainSeqs.delete(this.mainSeqs.keys().next().value!)
    }
    if (executionId.startsWith('main-')) {
      const n = parseDigits(executionId, 5, executionId.length)
      if (n > this.mainExecutions) this.mainExecutions = n
    }
  }

  /** The stream and execution of retained decision `id`, if it is retained. */
  private decisionById(id: string): { streamId: string; executionId: string } | undefined {
    const j = id.lastIndexOf(':')
    const i = j > 0 ? id.lastIndexOf(':', j - 1) : -1
    if (i <= 0) return undefined
    const attempt = parseDigits(id, i + 1, j)
    const seq = parseDigits(id, j + 1, id.length)
    if (attempt < 0 || seq < 0) return undefined
    const n = this.ring.find(id.slice(0, i), attempt, seq, new StreamCounters())
    if (n < 0) return undefined
    const d = this.ring.decision(n)
    return { streamId: d.streamId, executionId: d.executionId }
  }

  /** Forgets every decision and counter. Publishes nothing; the next change from the empty standing publishes `goal_progress`. */
  reset(): void {
    this.resetRetention()
    this.totalDecisions = 0
    this.successes = 0
    this.failures = 0
    this.orphanOutcomes = 0
    this.replacedOutcomes = 0
    this.droppedDecisions = 0
    this.executionsTotal = 0
    this.streams = new Map()
    this.lastStreamId = undefined
    this.lastStream = undefined
    this.problems = { low: 0, medium: 0, high: 0, critical: 0 }
    this.violations = new Map()
    this.hardViolations = 0
    this.softViolations = 0
    this.achieved = false
    this.lastCause = undefined
    this.resetCriteria()
  }

  private resetRetention(): void {
    this.ring = new DecisionRing(this.opts.maxDecisions)
  }

  private resetCriteria(): void {
    this.lastCriterionId = undefined
    this.lastCriterion = undefined
    this.criteria = new Map(
      (this.goal?.criteria ?? []).map((c) => [c.id, { decisions: 0, successes: 0, failures: 0 }]),
    )
    this.published = {
      overall: 0,
      recommendation: 'continue',
      met: (this.goal?.criteria ?? []).map(() => false),
    }
  }

  private addDecision(r: DecisionRecord, source: FrameSource | undefined, index: number): void {
    if (r.attempt === 0) this.noteMainDecision(r.executionId, r.seq)
    const stream = this.stream(r.streamId)
    // A retried execution's first decision counts the execution only if no earlier attempt decided.
    if (r.seq === 0 && (r.attempt === 1 || !this.hasRetained(stream, r.executionId))) this.executionsTotal++
    this.totalDecisions++
    stream.decisions++
    for (const id of r.criteria) {
      const c = this.criterion(id)
      if (c) c.decisions++
    }
    if (this.ring.size === 0) {
      this.droppedDecisions++
      return
    }
    const frame = keptFrame(source, index)
    if (this.ring.push(r, stream, frame, source?.keptStart ?? 0, source?.keptEnd ?? 0))
      this.droppedDecisions++
  }

  private addOutcome(r: OutcomeRecord, source: FrameSource | undefined, index: number): void {
    const stream = this.stream(r.streamId)
    const n = this.findDecision(r, stream)
    const earlier = n < 0 ? OutcomeState.NONE : this.ring.outcomeStateOf(n)
    // The decision is decoded (once) only when its criteria are needed: the outcome does not carry them
    // (it came from another execution), or it replaces an earlier outcome.
    const decided =
      n >= 0 && (r.criteria === undefined || earlier !== OutcomeState.NONE)
        ? this.ring.decision(n)
        : undefined
    const criteria = r.criteria ?? decided?.criteria
    if (earlier !== OutcomeState.NONE) {
      // A second outcome for the same decision corrects the first: count only the latest.
      this.count(earlier === OutcomeState.SUCCEEDED, decided!.criteria, this.ring.outcomeStreamOf(n), -1)
      this.replacedOutcomes++
    } else if (criteria === undefined) {
      this.orphanOutcomes++
    }
    this.count(r.success, criteria ?? [], stream, 1)
    if (n >= 0) {
      const frame = keptFrame(source, index)
      this.ring.setOutcome(n, r, stream, frame, source?.keptStart ?? 0, source?.keptEnd ?? 0)
    }
  }

  private count(success: boolean, criteria: readonly string[], s: StreamCounters, delta: 1 | -1): void {
    if (success) {
      this.successes += delta
      s.successfulOutcomes += delta
    } else {
      this.failures += delta
      s.failedOutcomes += delta
    }
    for (const id of criteria) {
      const c = this.criterion(id)
      if (!c) continue
      if (success) c.successes += delta
      else c.failures += delta
    }
  }

  private addViolation(r: ViolationRecord): void {
    const constraint = this.goal?.constraints.get(r.constraintId)
    const kind = constraint?.kind ?? 'soft'
    if (kind === 'hard') this.hardViolations++
    else this.softViolations++
    this.stream(r.streamId).violations++
    const summary = this.violations.get(r.constraintId)
    if (summary) {
      summary.count++
      summary.lastDetails = r.details
      summary.lastExecutionId = r.executionId
      summary.lastStreamId = r.streamId
      summary.lastTimestamp = r.timestamp
    } else {
      const created: ConstraintViolationSummary = {
        constraintId: r.constraintId,
        kind,
        known: constraint !== undefined,
        count: 1,
        lastDetails: r.details,
        lastExecutionId: r.executionId,
        lastStreamId: r.streamId,
        lastTimestamp: r.timestamp,
      }
      if (constraint) created.description = constraint.description
      this.violations.set(r.constraintId, created)
    }
    this.bus?.publish({
      type: 'constraint_violation',
      streamId: r.streamId,
      executionId: r.executionId,
      data: {
        constraintId: r.constraintId,
        kind,
        known: constraint !== undefined,
        details: r.details,
        attempt: r.attempt,
      },
      timestamp: r.timestamp,
    })
  }

  /**
   * The number of the retained decision an outcome is about, or −1. Its id is
   * `${executionId}:${attempt}:${seq}` ({@link decisionId}); if ids recur, the newest decision with that id
   * in the outcome's stream wins, else the newest in any stream.
   */
  private findDecision(r: OutcomeRecord, stream: StreamCounters): number {
    // An outcome of its own attempt's decision names it by number: nothing to parse.
    if (r.decisionSeq !== undefined) return this.ring.find(r.executionId, r.attempt, r.decisionSeq, stream)
    const id = r.decisionId
    if (typeof id !== 'string') return -1
    const j = id.lastIndexOf(':')
    const i = j > 0 ? id.lastIndexOf(':', j - 1) : -1
    if (i <= 0) return -1
    const attempt = parseDigits(id, i + 1, j)
    const seq = parseDigits(id, j + 1, id.length)
    if (attempt < 0 || seq < 0) return -1
    // A decision of an earlier attempt of the recording execution: no new string to hash.
    const own = r.executionId
    const executionId = i === own.length && id.startsWith(own) ? own : id.slice(0, i)
    return this.ring.find(executionId, attempt, seq, stream)
  }

  /** Retained decision `n` as a fresh {@link Decision}. */
  private decisionAt(n: number): Decision {
    return toDecision(this.ring.decision(n), this.ring.outcome(n))
  }

  /** Retained decisions whose number passes `keep`, oldest first, as fresh objects. */
  private retained(keep: (n: number) => boolean = () => true): Decision[] {
    const out: Decision[] = []
    for (let n = this.ring.oldest; n < this.ring.end; n++) if (keep(n)) out.push(this.decisionAt(n))
    return out
  }

  /** Whether any decision of this execution in this stream is retained. */
  private hasRetained(stream: StreamCounters, executionId: string): boolean {
    for (let n = this.ring.latestOf(executionId); n >= 0; n = this.ring.previous(n)) {
      if (this.ring.streamOf(n) === stream) return true
    }
    return false
  }

  /** The counters of criterion `id`, if the goal has it; the last one found is compared before hashing. */
  private criterion(id: string): CriterionCounters | undefined {
    if (id === this.lastCriterionId) return this.lastCriterion
    const c = this.criteria.get(id)
    this.lastCriterionId = id
    this.lastCriterion = c
    return c
  }

  private stream(streamId: string): StreamCounters {
    // Records come in runs from one stream (a frame is one thread's): compare with the last before hashing.
    if (streamId === this.lastStreamId) return this.lastStream!
    let s = this.streams.get(streamId)
    if (!s) {
      s = new StreamCounters()
      this.streams.set(streamId, s)
    }
    this.lastStreamId = streamId
    this.lastStream = s
    return s
  }

  private recommend(overall: number, allMet: boolean): GoalProgress['recommendation'] {
    return recommendationOf(
      {
        hardViolations: this.hardViolations,
        allMet,
        hasGoal: this.goal !== undefined,
        totalDecisions: this.totalDecisions,
        overall,
      },
      this.opts,
    )
  }

  /** Re-evaluates the criteria (cheap: counters only) and publishes only what moved. */
  private publishChanges(cause: AggregatedRecord): void {
    const goal = this.goal
    if (this.bus === undefined || goal === undefined) return
    // Counters only, no allocation: this runs after every record or batch.
    let overall = 0
    let allMet = goal.criteria.length > 0
    let metChanged = false
    for (let i = 0; i < goal.criteria.length; i++) {
      const c = goal.criteria[i]!
      const { progress, met } = this.standing(c, this.criteria.get(c.id)!)
      allMet &&= met
      if (met !== this.published.met[i]) metChanged = true
      overall += (progress * c.weight) / goal.totalWeight
    }
    const recommendation = this.recommend(overall, allMet)
    const prev = this.published
    if (
      !metChanged &&
      prev.recommendation === recommendation &&
      Math.abs(prev.overall - overall) < this.opts.progressStep
    ) {
      return
    }
    const criteria: Record<string, CriterionProgressSummary> = {}
    const met: boolean[] = []
    for (const c of goal.criteria) {
      const standing = this.standing(c, this.criteria.get(c.id)!)
      criteria[c.id] = { met: standing.met, progress: standing.progress }
      met.push(standing.met)
    }
    this.published = { overall, recommendation, met }
    this.bus.publish({
      type: 'goal_progress',
      streamId: cause.streamId,
      executionId: cause.executionId,
      data: { goalId: goal.id, overallProgress: overall, recommendation, criteria },
    })
    const complete = recommendation === 'complete'
    if (complete && !this.achieved) {
      this.bus.publish({
        type: 'goal_achieved',
        streamId: cause.streamId,
        executionId: cause.executionId,
        data: { goalId: goal.id, overallProgress: overall },
      })
    }
    this.achieved = complete
  }

  /** One criterion against its target: progress is the success rate over the target, capped at 1. */
  private standing(c: NormalizedCriterion, n: CriterionCounters) {
    return criterionStanding(c.target, n.successes, n.failures, this.opts.minOutcomes)
  }
}

function rate(successes: number, failures: number): number {
  return successes + failures === 0 ? 0 : successes / (successes + failures)
}

/** Non-negative integer in `s[from, to)`, or −1 if that is not all digits. */
function parseDigits(s: string, from: number, to: number): number {
  if (from >= to || to - from > 15) return -1
  let v = 0
  for (let k = from; k < to; k++) {
    const c = s.charCodeAt(k) - 48
    if (c < 0 || c > 9) return -1
    v = v * 10 + c
  }
  return v
}

/**
 * The frame record `index` of `source` is kept in past the frame's delivery (its range then in
 * `source.keptStart`/`keptEnd`); undefined if it cannot be kept so.
 */
function keptFrame(source: FrameSource | undefined, index: number): RetainedFrame | undefined {
  return source === undefined || index < 0 ? undefined : source.keepFrame(index)
}

function toDecision(r: DecisionRecord, outcome: OutcomeRecord | undefined): Decision {
  const d: Decision = {
    id: decisionId(r.executionId, r.attempt, r.seq),
    executionId: r.executionId,
    streamId: r.streamId,
    correlationId: r.correlationId,
    attempt: r.attempt,
    intent: r.intent,
    options: r.options,
    chosen: r.chosen,
    reasoning: r.reasoning,
    criteria: r.criteria,
    timestamp: r.timestamp,
  }
  if (r.context !== undefined) d.context = r.context
  if (outcome !== undefined) d.outcome = toOutcome(outcome)
  return d
}

function toOutcome(r: OutcomeRecord): Outcome {
  const o: Outcome = {
    success: r.success,
    executionId: r.executionId,
    streamId: r.streamId,
    attempt: r.attempt,
    timestamp: r.timestamp,
  }
  if (r.result !== undefined) o.result = r.result
  if (r.error !== undefined) o.error = r.error
  if (r.summary !== undefined) o.summary = r.summary
  if (r.tokensUsed !== undefined) o.tokensUsed = r.tokensUsed
  if (r.latencyMs !== undefined) o.latencyMs = r.latencyMs
  return o
}
