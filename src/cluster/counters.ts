/**
 * Cluster counters: each host adds what its executions counted — per entry point, how executions ended;
 * for the goal, decisions and outcomes per criterion — into one Redis hash, in batches. A job is counted
 * once however often it runs: the batch script marks each job id as counted (with an expiry well past any
 * re-run of a stalled job) and adds its figures only the first time. A host finishes a job only after the
 * batch holding its figures is written, so once the queues are idle the counters equal the finished jobs,
 * even when hosts were killed. Hosts also leave a heartbeat, so the cluster knows how many are alive.
 * Main thread only.
 *
 * @module
 */
import type { Redis } from 'ioredis'
import type { Decision } from '../outcomes/index.js'
import type { ExecutionResult } from '../runtime/index.js'

/** How long a batch collects figures before it is written (jobs finish that much later). */
const BATCH_MS = 2
/** Wait before writing a batch again after Redis refused it. */
const RETRY_MS = 200
/** How often a host renews its heartbeat; a host silent for three periods is counted dead. */
export const HEARTBEAT_MS = 1000

/**
 * Adds each job's figures once: KEYS[1] the counters hash; ARGV[1] the counted-marker prefix, ARGV[2] its
 * expiry (ms), then per job: its id, its field count n, and n field/delta pairs.
 */
const ADD_ONCE = `
local i = 3
while i <= #ARGV do
  local id = ARGV[i]
  local n = tonumber(ARGV[i + 1])
  i = i + 2
  if redis.call('SET', ARGV[1] .. id, '1', 'NX', 'PX', ARGV[2]) then
    for k = 0, n - 1 do
      redis.call('HINCRBY', KEYS[1], ARGV[i + 2 * k], ARGV[i + 2 * k + 1])
    end
  end
  i = i + 2 * n
end
return 1`

/** The counter fields of one finished job: how it ended, and what its decisions and outcomes count. */
export function fieldsOf(result: ExecutionResult, decisions: readonly Decision[]): Map<string, number> {
  const fields = new Map<string, number>()
  const add = (field: string, n = 1) => fields.set(field, (fields.get(field) ?? 0) + n)
  add(`ep:${result.streamId}:${result.status}`)
  if (decisions.length === 0) return fields
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

interface Pending {
  jobId: string
  fields: Map<string, number>
  done: () => void
}

export class ClusterCounters {
  private batch: Pending[] = []
  private timer: NodeJS.Timeout | undefined
  private heartbeat: NodeJS.Timeout | undefined
  private closed = false

  constructor(
    private readonly client: Redis,
    /** Key prefix of the agent (`<prefix>:<name>`). */
    private readonly prefix: string,
    private readonly hostId: string,
    /** How long a job stays marked as counted. */
    private readonly countedMs: number,
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

  /** Resolves once the job's figures are written (counted once per job id, cluster-wide). */
  add(jobId: string, fields: Map<string, number>): Promise<void> {
    return new Promise((done) => {
      this.batch.push({ jobId, fields, done })
      this.timer ??= setTimeout(() => void this.flush(), BATCH_MS)
    })
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

  /** Stops the heartbeat and leaves the hosts list; figures still pending are written first. */
  async close(): Promise<void> {
    this.closed = true
    clearInterval(this.heartbeat)
    if (this.timer !== undefined) {
      clearTimeout(this.timer)
      await this.flush()
    }
    await this.client.hdel(this.hostsKey, this.hostId).catch(() => {})
  }

  private beat(): Promise<unknown> {
    return this.client.hset(this.hostsKey, this.hostId, Date.now())
  }

  /** Writes the batch; while Redis refuses it, tries again (its jobs wait, as their completion would fail). */
  private async flush(): Promise<void> {
    const batch = this.batch
    this.batch = []
    const args: (string | number)[] = [`${this.prefix}:agentpool:counted:`, this.countedMs]
    for (const p of batch) {
      args.push(p.jobId, p.fields.size)
      for (const [field, n] of p.fields) args.push(field, n)
    }
    for (;;) {
      try {
        await this.client.eval(ADD_ONCE, 1, this.countersKey, ...args)
        break
      } catch {
        if (this.closed) break
        await new Promise((r) => setTimeout(r, RETRY_MS))
      }
    }
    this.timer = this.batch.length > 0 ? setTimeout(() => void this.flush(), BATCH_MS) : undefined
    for (const p of batch) p.done()
  }
}
