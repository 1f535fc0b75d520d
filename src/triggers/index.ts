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
import { type TimerStats, Timers } from './timers.js'
import { WebhookServer } from './webhook-server.js'

export { MAX_EVENT_DEPTH } from './event-triggers.js'
export type { HostStateStats, HostStats, HostStreamStats, HostTriggerOptions, TriggerHost } from './host.js'
export { TRIGGER_REFUSED, type TriggerRefusedData } from './refused.js'
export { SIGNATURE_HEADER, signWebhookBody } from './signature.js'
export type { TimerStats } from './timers.js'

/** The running triggers of one runtime. */
export interface Triggers {
  /** The webhook server's base URL (`http://127.0.0.1:PORT`); `undefined` when no entry point has a webhook trigger. */
  readonly webhookUrl: string | undefined
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
 * and — when any entry point has a webhook trigger — the webhook server, listening before this resolves.
 * @throws {ConfigError} when a webhook's `secretEnv` variable is unset; nothing is left running then.
 */
export async function startTriggers(host: TriggerHost, config: ResolvedRuntimeConfig): Promise<Triggers> {
  const needsServer = config.entryPoints.some((ep) => ep.trigger.type === 'webhook')
  let timers: Timers | undefined
  let metrics: TriggerMetrics | undefined
  let server: WebhookServer | undefined
  if (needsServer) {
    metrics = new TriggerMetrics(host, () => timers?.stats() ?? {})
    try {
      server = await WebhookServer.start(host, config, metrics)
    } catch (err) {
      metrics.close()
      throw err
    }
  }
  const started = new Timers(host, config.entryPoints)
  timers = started
  const events = new EventTriggers(host, config.entryPoints)
  return {
    webhookUrl: server?.url,
    pauseTimer: (id) => started.pause(id),
    resumeTimer: (id) => started.resume(id),
    timerStats: () => started.stats(),
    async stop() {
      started.stop()
      events.stop()
      metrics?.close()
      await server?.close()
    },
  }
}
