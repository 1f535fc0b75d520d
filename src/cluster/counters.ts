/**
 * Cluster counters: each host adds what its executions counted — per entry point, how executions ended;
 * for the goal, decisions and outcomes per criterion — into one Redis hash, in batches. A job is counted
 * once however often it runs: the batch script marks the job's own BullMQ hash as counted and adds its
 * figures only the first time. A host sends a job's figures ahead of the job's completion, on the connection
 * the completion goes on, so once the queues are idle the counters equal the finished jobs, even when
 * hosts were killed. Hosts also leave a heartbeat, so the cluster knows how many are alive.
 * Main thread only.
 *
 * @module
 */
import type { Redis } from 'ioredis'
import type { Decision } from '../outcomes/index.js'
import type { ExecutionResult } from '../runtime/index.js'

/** Wait before writing a batch again after Redis refused it. */
const RETRY_MS = 200
/** How often a host renews its heartbeat; a host silent for three periods is counted dead. */
export const HEARTBEAT_MS = 1000

/** The script's command name on the client (EVALSHA, loaded once per connection). */
const ADD_ONCE_COMMAND = 'agentpoolAddOnce'
type AddOnce = (this: Redis, ...args: (string | number)[]) => Promise<unknown>

/** The field of a job's BullMQ hash that says its figures are in the counters. */
const COUNTED_FIELD = 'agentpool:counted'

/**
 * Adds each job's figures once: KEYS[1] the counters hash, KEYS[2..] the jobs' BullMQ hashes, jobs with
 * the same figures next to each other; ARGV per group of such jobs, in order: its job count m, its field
 * count n, then n field/delta pairs. A job is counted when its hash still exists (a job removed from Redis
 * has finished, and was counted then) and is not yet marked; the mark lives and goes with the job. The
 * batch's deltas are summed first: one HINCRBY per field.
 */
const ADD_ONCE = `
local sums = {}
local j = 2
local a = 1
while a <= #ARGV do
  local m = tonumber(ARGV[a])
  local n = tonumber(ARGV[a + 1])
  local counted = 0
  for k = j, j + m - 1 do
    if redis.call('EXISTS', KEYS[k]) == 1 and redis.call('HSETNX', KEYS[k], '${COUNTED_FIELD}', 1) == 1 then
      counted = counted + 1
    end
  end
  if counted > 0 then
    for k = a + 2, a + 1 + 2 * n, 2 do
      sums[ARGV[k]] = (sums[ARGV[k]] or 0) + counted * tonumber(ARGV[k + 1])
    end
  end
  j = j + m
  a = a + 2 + 2 * n
end
for field, delta in pairs(sums) do
  redis.call('HINCRBY', KEYS[1], field, delta)
end
return 1`

/** Figures of jobs without decisions, by entry point and status: most jobs share one of these. */
const withoutDecisions = new Map<string, Map<string, ReadonlyMap<string, number>>>()

/** The counter fields of one finished job: how it ended, and what its decisions and outcomes count. */
export function fieldsOf(result: ExecutionResult, decisions: readonly Decision[]): Figures {
  if (decisions.length === 0) {
    let byStatus = withoutDecisions.get(result.streamId)
    if (byStatus === undefined) {
      byStatus = new Map()
      withoutDecisions.set(result.streamId, byStatus)
    }
    let fields = byStatus.get(result.status)
    if (fields === undefined) {
      fields = new Map([[`ep:${result.streamId}:${result.status}`, 1]])
      byStatus.set(result.status, fields)
    }
    return fields
  }
  const fields = new Map<string, number>()
  const add = (field: string, n = 1) => fields.set(field, (fields.get(field) ?? 0) + n)
  add(`ep:${result.streamId}:${result.status}`)
  add('goal:executions')
  add(`stream:${result.streamId}:decisions`, decisions.length)
  for (const d of decisions) {
    add('goal:decisions')
    const outcome = d.outcome === undefined ? undefined : d.outcome.success ? 's' : 'f'
    if (outcome !== undefined) add(outcome === 's' ? 'goal:successes' : 'goal:failures')
    for (const c of d.criteria) {
      add(`criterion:${c}:d`)
      if (outcome !== undefined) add(`criterion:${c}:${outcome}`)
    }
  }
  return fields
}

/** Counter fields and their deltas; never changed once made (jobs share them). */
export type Figures = ReadonlyMap<string, number>

export class ClusterCounters {
  /** Job keys waiting to be sent, by the connection they go on, by their figures. */
  private readonly pending = new Map<Redis, Map<Figures, string[]>>()
  /** Connections the batch script is defined on. */
  private readonly defined = new WeakSet<Redis>()
  /** Resolves once the pending figures are sent; undefined while none are pending. */
  private sent: Promise<void> | undefined
  private markSent: () => void = () => {}
  /** Batches sent and not yet answered. */
  private readonly unanswered = new Set<Promise<void>>()
  private heartbeat: NodeJS.Timeout | undefined
  private closed = false

  constructor(
    /** The connection for the heartbeat and for reading. */
    private readonly client: Redis,
    /** Key prefix of the agent (`<prefix>:<name>`). */
    private readonly prefix: string,
    private readonly hostId: string,
  ) {}

  get countersKey(): string {
    return `${this.prefix}:agentpool:counters`
  }

  get hostsKey(): string {
    return `${this.prefix}:agentpool:hosts`
  }

  /** Starts the heartbeat. */
  async start(): Promise<void> {
    await this.beat()
    this.heartbeat = setInterval(() => void this.beat().catch(() => {}), HEARTBEAT_MS)
    this.heartbeat.unref()
  }

  /**
   * Resolves once the job's figures are sent on `via`, the connection the job's completion then goes on:
   * Redis runs one connection's commands in order, so it has the figures (counted once per job,
   * cluster-wide) before it has the job finished, and a host killed in between leaves a job that is
   * counted and runs again elsewhere, never a finished job without its figures.
   */
  add(via: Redis, jobKey: string, fields: Figures): Promise<void> {
    return this.queue(via, jobKey, fields)
  }

  /** The cluster's counters and the hosts whose heartbeat is recent. */
  async read(): Promise<{ counters: Map<string, number>; hosts: number }> {
    const [counters, beats] = await Promise.all([
      this.client.hgetall(this.countersKey),
      this.client.hgetall(this.hostsKey),
    ])
    const since = Date.now() - 3 * HEARTBEAT_MS
    return {
      counters: new Map(Object.entries(counters).map(([k, v]) => [k, Number(v)])),
      hosts: Object.values(beats).filter((at) => Number(at) >= since).length,
    }
  }

  /** Stops the heartbeat and leaves the hosts list; figures still pending are sent and answered first. */
  async close(): Promise<void> {
    clearInterval(this.heartbeat)
    this.send()
    this.closed = true
    while (this.unanswered.size > 0) await Promise.allSettled([...this.unanswered])
    await this.client.hdel(this.hostsKey, this.hostId).catch(() => {})
  }

  private beat(): Promise<unknown> {
    return this.client.hset(this.hostsKey, this.hostId, Date.now())
  }

  /** Queues a job's figures; resolves once they are sent. */
  private queue(via: Redis, jobKey: string, fields: Figures): Promise<void> {
    let byFigures = this.pending.get(via)
    if (byFigures === undefined) {
      byFigures = new Map()
      this.pending.set(via, byFigures)
    }
    const jobKeys = byFigures.get(fields)
    if (jobKeys === undefined) byFigures.set(fields, [jobKey])
    else jobKeys.push(jobKey)
    if (this.sent === undefined) {
      this.sent = new Promise((resolve) => {
        this.markSent = resolve
      })
      // Jobs whose executions ended together (the end records of one drain, settled in one synchronous
      // pass) resume in the microtasks queued before this one: they go together.
      queueMicrotask(() => this.send())
    }
    return this.sent
  }

  /** Sends every pending batch, and lets their jobs finish. */
  private send(): void {
    this.sent = undefined
    for (const [via, byFigures] of this.pending) {
      this.pending.delete(via)
      const answered = this.sendBatch(via, byFigures).finally(() => this.unanswered.delete(answered))
      this.unanswered.add(answered)
    }
    this.markSent()
  }

  /**
   * Sends one batch; a refused batch is sent again (its jobs may have finished meanwhile; their marks keep
   * them from counting twice), until the host closes or the connection has ended.
   */
  private async sendBatch(via: Redis, byFigures: Map<Figures, string[]>): Promise<void> {
    if (!this.defined.has(via)) {
      via.defineCommand(ADD_ONCE_COMMAND, { lua: ADD_ONCE })
      this.defined.add(via)
    }
    // Jobs with the same figures (most of a batch: one entry point, completed, no decisions) share them.
    const keys: string[] = [this.countersKey]
    const args: (string | number)[] = []
    for (const [fields, jobKeys] of byFigures) {
      for (const k of jobKeys) keys.push(k)
      args.push(jobKeys.length, fields.size)
      for (const [field, n] of fields) args.push(field, n)
    }
    const addOnce = (via as unknown as Record<string, AddOnce>)[ADD_ONCE_COMMAND]!
    try {
      await addOnce.call(via, keys.length, ...keys, ...args)
    } catch {
      if (this.closed || via.status === 'end') return
      await new Promise((r) => setTimeout(r, RETRY_MS))
      if (this.closed) return
      for (const [fields, jobKeys] of byFigures) for (const k of jobKeys) void this.queue(via, k, fields)
    }
  }
}
