/**
 * `runtime.cluster`: the cluster's view and its cluster-wide controls, as the runtime exposes them.
 *
 * @module
 */
import type { GoalProgress } from '../outcomes/index.js'
import type { ClusterStats } from './cluster-stats.js'
import type { ClusterTimerStats } from './timers.js'

/**
 * Cluster mode's view over every host. Each method asks Redis, so each is async; without `cluster` in the
 * config each rejects with `AGENTPOOL_INVALID_ARGUMENT`, before `start()` with `AGENTPOOL_NOT_RUNNING`,
 * and while Redis is down with `AGENTPOOL_CLUSTER_UNAVAILABLE`.
 */
export interface RuntimeCluster {
  /** Hosts alive; per entry point waiting, active, delayed, completed, failed, timed out, cancelled. */
  stats(): Promise<ClusterStats>
  /** Goal progress over every host's executions (constraint violations stay per host, in `runtime.outcomes`). */
  goalProgress(): Promise<GoalProgress>
  /** Stops a timer's ticks on every host until {@link resumeTimer}. */
  pauseTimer(entryPointId: string): Promise<void>
  /** Restarts a paused timer on every host. */
  resumeTimer(entryPointId: string): Promise<void>
  /** Next tick and paused state of every timer. */
  timerStats(): Promise<Record<string, ClusterTimerStats>>
}
