/**
 * Triggers: everything that starts executions from outside a handler — the webhook server (with
 * `/healthz` and `/metrics`), interval and cron timers, and event triggers. The runtime calls
 * {@link startTriggers} in `start()` and {@link Triggers.stop} in `stop()`. The only door into this folder.
 *
 * @module
 */
import type { ResolvedRuntimeConfig } from '../config/index.js'
import { EventTriggers } from './event-triggers.js'
import type { TriggerHost } from './host.js'
import { TriggerMetrics } from './metrics.js'
import { MetricsServer } from './metrics-server.js'
import { type TimerStats, Timers } from './timers.js'
import { WebhookServer } from './webhook-server.js'

export { MAX_EVENT_DEPTH } from './event-triggers.js'
export type { HostStateStats, HostStats, HostStreamStats, HostTriggerOptions, TriggerHost } from './host.js'
export { TRIGGER_REFUSED, type TriggerRefusedData } from './refused.js'
export { SIGNATURE_HEADER, type SignWebhookBodyOptions, signWebhookBody } from './signature.js'
export { noTimerError, type TimerStats } from './timers.js'

/** The running triggers of one runtime. */
export interface Triggers {
  /** The webhook server's base URL (`http://127.0.0.1:PORT`); `undefined` when no entry point has a webhook trigger. */
  readonly webhookUrl: string | undefined
  /** The metrics server's base URL; `undefined` without `metrics` in the config. */
  readonly metricsUrl: string | undefined
  /** The Prometheus exposition text, as `GET /metrics` serves it. */
  metrics(): Promise<string>
  /** Stops a timer's ticks. @throws InvalidArgumentError when the entry point has no timer trigger. */
  pauseTimer(id: string): void
  /** Restarts a paused timer from now. @throws InvalidArgumentError when the entry point has no timer trigger. */
  resumeTimer(id: string): void
  /** Per timer entry point: next fire time, ticks fired and skipped, paused or not. */
  timerStats(): Record<string, TimerStats>
  /** Stops timers and event subscriptions at once, then closes the server (requests in flight finish). */
  stop(): Promise<void>
}

/**
 * Starts every trigger of `config`: timers (and `runImmediately` ticks) and event subscriptions at once,
 * and — when any entry point has a webhook trigger — the webhook server, and — with `metrics` in the
 * config — the metrics server, both listening before this resolves. Without a server the metrics are made
 * on the first {@link Triggers.metrics} call (execution durations are observed from then on).
 * @param lastFires each timer's last fire before a restart (its slot, epoch ms), from the run log.
 * @throws {ConfigError} when a webhook's `secretEnv` variable is unset; nothing is left running then.
 * @throws {PortInUseError} when a server's port is taken; nothing is left running then.
 */
export async function startTriggers(
  host: TriggerHost,
  config: ResolvedRuntimeConfig,
  lastFires?: Readonly<Record<string, number>>,
  /** `timers: false` starts no timers (cluster mode schedules them in the queues). @default { timers: true } */
  opts: { timers?: boolean } = {},
): Promise<Triggers> {
  const needsServer = config.entryPoints.some((ep) => ep.trigger.type === 'webhook')
  let timers: Timers | undefined
  let metrics: TriggerMetrics | undefined
  const metricsOf = () => {
    metrics ??= new TriggerMetrics(host, () => timers?.stats() ?? {})
    return metrics
  }
  let server: WebhookServer | undefined
  let metricsServer: MetricsServer | undefined
  try {
    if (needsServer) server = await WebhookServer.start(host, config, metricsOf())
    if (config.metrics !== undefined)
      metricsServer = await MetricsServer.start(metricsOf(), config.metrics.host, config.metrics.port)
  } catch (err) {
    await server?.close()
    metrics?.close()
    throw err
  }
  const started = new Timers(host, opts.timers === false ? [] : config.entryPoints, lastFires)
  timers = started
  const events = new EventTriggers(host, config.entryPoints)
  return {
    webhookUrl: server?.url,
    metricsUrl: metricsServer?.url,
    metrics: () => metricsOf().render(),
    pauseTimer: (id) => started.pause(id),
    resumeTimer: (id) => started.resume(id),
    timerStats: () => started.stats(),
    async stop() {
      started.stop()
      events.stop()
      metrics?.close()
      await Promise.all([server?.close(), metricsServer?.close()])
    },
  }
}
