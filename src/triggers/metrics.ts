/**
 * The `/metrics` exposition: prom-client metrics in a registry of their own (never the process-global
 * one, so two runtimes in one process do not mix). Runtime and state figures are read from the host when
 * scraped; execution durations are observed from the event bus as executions end, into real histograms.
 * Label values are bounded: stream ids and configured routes only, never request data or secrets.
 *
 * @module
 */
import { Counter, Gauge, Histogram, Registry } from 'prom-client'
import type { AgentEvent } from '../events/index.js'
import type { HostStateStats, HostStats, HostStreamStats, TriggerHost } from './host.js'
import type { TimerStats } from './timers.js'

const STATUSES = [
  ['completed', 'completed'],
  ['failed', 'failed'],
  ['timedOut', 'timed_out'],
  ['cancelled', 'cancelled'],
  ['rejected', 'rejected'],
] as const

const DURATION_BUCKETS_S = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60]

/** HTTP methods that get their own label value; any other is counted as `OTHER`. */
const KNOWN_METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'])

/** The label of requests that matched no configured route. */
export const UNMATCHED_ROUTE = 'unmatched'

/** Prometheus metrics of one runtime, with the trigger-side counters the webhook server and timers feed. */
export class TriggerMetrics {
  readonly registry = new Registry()
  private readonly requests: Counter<'route' | 'method' | 'status'>
  private readonly subscription: string
  /** The host's figures, read once per scrape and shared by every collector of that scrape. */
  private scrape: { stats: HostStats; state: HostStateStats } | undefined

  constructor(
    private readonly host: TriggerHost,
    timerStats: () => Record<string, TimerStats>,
  ) {
    const registers = [this.registry]
    this.requests = new Counter({
      name: 'agentpool_webhook_requests_total',
      help: 'Webhook requests answered, by configured route, method and HTTP status.',
      labelNames: ['route', 'method', 'status'],
      registers,
    })
    const durations = new Histogram({
      name: 'agentpool_execution_duration_seconds',
      help: 'Duration of ended executions (first dispatch to final result), by stream and status.',
      labelNames: ['stream', 'status'],
      buckets: DURATION_BUCKETS_S,
      registers,
    })
    this.subscription = host.events.subscribe({
      types: ['execution_completed', 'execution_failed'],
      handler: (e: AgentEvent<'execution_completed' | 'execution_failed'>) => {
        const status = e.type === 'execution_completed' ? 'completed' : e.data.status
        durations.observe({ stream: e.streamId, status }, e.data.durationMs / 1000)
      },
    })
    this.registerHostMetrics(registers)
    const clusterQueues = host.clusterQueues?.bind(host)
    if (clusterQueues !== undefined) {
      new Gauge({
        name: 'agentpool_cluster_queue_jobs',
        help: "Cluster mode: jobs in each entry point's queue, by state (waiting, active, delayed), over all hosts.",
        labelNames: ['stream', 'state'],
        registers,
        async collect() {
          this.reset()
          // While Redis is unavailable the figures are left out rather than failing the scrape.
          const queues = await clusterQueues().catch(() => ({}))
          for (const [id, counts] of Object.entries(queues)) {
            for (const [state, n] of Object.entries(counts)) this.set({ stream: id, state }, n)
          }
        },
      })
    }
    new Counter({
      name: 'agentpool_timer_ticks_total',
      help: 'Timer ticks by entry point: fired started an execution, skipped found the stream at maxConcurrent or full.',
      labelNames: ['entry_point', 'outcome'],
      registers,
      collect() {
        this.reset()
        for (const [id, t] of Object.entries(timerStats())) {
          this.inc({ entry_point: id, outcome: 'fired' }, t.fired)
          this.inc({ entry_point: id, outcome: 'skipped' }, t.skipped)
        }
      },
    })
  }

  /** Counts one answered webhook request. `route` must be a configured path or {@link UNMATCHED_ROUTE}. */
  countRequest(route: string, method: string, status: number): void {
    const m = method.toUpperCase()
    this.requests.inc({ route, method: KNOWN_METHODS.has(m) ? m : 'OTHER', status: String(status) })
  }

  /** The exposition text, figures read from the host now. */
  async render(): Promise<string> {
    this.scrape = { stats: this.host.stats(), state: this.host.stateStats() }
    try {
      return await this.registry.metrics()
    } finally {
      this.scrape = undefined
    }
  }

  get contentType(): string {
    return this.registry.contentType
  }

  /** Stops observing the event bus. */
  close(): void {
    this.host.events.unsubscribe(this.subscription)
  }

  private registerHostMetrics(registers: Registry[]): void {
    const stats = () => this.scrape?.stats ?? this.host.stats()
    const state = () => this.scrape?.state ?? this.host.stateStats()
    const perStream = (name: string, help: string, pick: (s: HostStreamStats) => number) =>
      new Gauge({
        name,
        help,
        labelNames: ['stream'],
        registers,
        collect() {
          this.reset()
          for (const [id, s] of Object.entries(stats().streams)) this.set({ stream: id }, pick(s))
        },
      })
    new Counter({
      name: 'agentpool_executions_total',
      help: 'Ended or refused executions by stream and status (rejected = refused at a full queue).',
      labelNames: ['stream', 'status'],
      registers,
      collect() {
        this.reset()
        for (const [id, s] of Object.entries(stats().streams)) {
          for (const [field, status] of STATUSES) this.inc({ stream: id, status }, s[field])
        }
      },
    })
    perStream('agentpool_executions_running', 'Executions running now, by stream.', (s) => s.running)
    perStream('agentpool_queue_depth', 'Executions waiting to start, by stream.', (s) => s.queued)
    perStream(
      'agentpool_stream_max_concurrent',
      'Configured maxConcurrent, by stream.',
      (s) => s.maxConcurrent,
    )
    perStream('agentpool_stream_max_queue', 'Configured maxQueue, by stream.', (s) => s.maxQueue)
    new Gauge({
      name: 'agentpool_execution_latency_ms',
      help: "Latency percentiles over each stream's recent executions, in milliseconds.",
      labelNames: ['stream', 'quantile'],
      registers,
      collect() {
        this.reset()
        for (const [id, s] of Object.entries(stats().streams)) {
          this.set({ stream: id, quantile: '0.5' }, s.latencyMs.p50)
          this.set({ stream: id, quantile: '0.95' }, s.latencyMs.p95)
          this.set({ stream: id, quantile: '0.99' }, s.latencyMs.p99)
        }
      },
    })
    const poolGauge = (name: string, help: string, pick: (p: HostStats['pool']) => number) =>
      new Gauge({
        name,
        help,
        registers,
        collect() {
          this.set(pick(stats().pool))
        },
      })
    poolGauge('agentpool_pool_threads', 'Worker threads in the pool.', (p) => p.threads)
    poolGauge(
      'agentpool_pool_utilization',
      'Fraction of thread time spent running executions.',
      (p) => p.utilization,
    )
    const stateGauge = (name: string, help: string, pick: (s: HostStateStats) => number) =>
      new Gauge({
        name,
        help,
        registers,
        collect() {
          this.set(pick(state()))
        },
      })
    stateGauge('agentpool_state_keys', 'Live keys over all state scopes.', (s) => s.keys)
    stateGauge('agentpool_state_bytes_used', 'Bytes used by shared state.', (s) => s.bytesUsed)
    stateGauge('agentpool_state_capacity_bytes', 'Bytes shared state may use.', (s) => s.capacity)
    new Counter({
      name: 'agentpool_state_conflicts_total',
      help: 'Synchronized writes refused because the key changed since it was read.',
      registers,
      collect() {
        this.reset()
        this.inc(state().conflicts)
      },
    })
  }
}
