/**
 * The cluster's view, from the counters every host adds into Redis and the queues' own counts: hosts
 * alive, per entry point waiting / active / delayed / completed / failed, and goal progress computed the
 * way the local aggregator computes it, over every host's executions.
 *
 * @module
 */
import type { Queue } from 'bullmq'
import { normalizeGoal, type ResolvedRuntimeConfig } from '../config/index.js'
import {
  type CriterionProgress,
  criterionStanding,
  type GoalProgress,
  recommendationOf,
} from '../outcomes/index.js'

/** One entry point across the cluster. */
export interface ClusterEntryPointStats {
  /** Jobs waiting to start (BullMQ's waiting and prioritized). */
  waiting: number
  /** Jobs running on some host. */
  active: number
  /** Jobs waiting for a retry's backoff or a timer's slot. */
  delayed: number
  completed: number
  failed: number
  timedOut: number
  cancelled: number
}

/** What `runtime.cluster.stats()` returns. */
export interface ClusterStats {
  /** Hosts whose heartbeat is recent (this one included). */
  hosts: number
  entryPoints: Record<string, ClusterEntryPointStats>
}

type QueueCounts = Record<'waiting' | 'active' | 'delayed', number>

/** Jobs per queue and state: waiting (with BullMQ's prioritized), active, delayed. */
export async function queueCounts(queues: ReadonlyMap<string, Queue>): Promise<Record<string, QueueCounts>> {
  const ids = [...queues.keys()]
  const counts = await Promise.all(
    [...queues.values()].map((q) => q.getJobCounts('waiting', 'prioritized', 'active', 'delayed')),
  )
  return Object.fromEntries(
    ids.map((id, i) => {
      const c = counts[i]!
      const waiting = (c.waiting ?? 0) + (c.prioritized ?? 0)
      return [id, { waiting, active: c.active ?? 0, delayed: c.delayed ?? 0 }]
    }),
  )
}

/** The cluster's stats from its counters and its queues' counts. */
export function clusterStatsOf(
  read: { counters: ReadonlyMap<string, number>; hosts: number },
  counts: Record<string, QueueCounts>,
): ClusterStats {
  const entryPoints: ClusterStats['entryPoints'] = {}
  for (const [id, queue] of Object.entries(counts))
    entryPoints[id] = entryPointStats(id, queue, read.counters)
  return { hosts: read.hosts, entryPoints }
}

/** The figures of one entry point: queue counts from BullMQ, ends from the cluster counters. */
function entryPointStats(
  id: string,
  queue: QueueCounts,
  counters: ReadonlyMap<string, number>,
): ClusterEntryPointStats {
  const n = (status: string) => counters.get(`ep:${id}:${status}`) ?? 0
  return {
    ...queue,
    completed: n('completed'),
    failed: n('failed'),
    timedOut: n('timed_out'),
    cancelled: n('cancelled'),
  }
}

/**
 * Goal progress over the whole cluster. Constraint violations stay per host (`runtime.outcomes`): the
 * cluster view lists none and does not let them change the recommendation.
 */
export function clusterGoalProgress(
  config: ResolvedRuntimeConfig,
  counters: ReadonlyMap<string, number>,
): GoalProgress {
  const n = (field: string) => counters.get(field) ?? 0
  const goal = config.goal === undefined ? undefined : normalizeGoal(config.goal)
  const criteria: Record<string, CriterionProgress> = {}
  let overall = 0
  let allMet = goal !== undefined && goal.criteria.length > 0
  for (const c of goal?.criteria ?? []) {
    const successes = n(`criterion:${c.id}:s`)
    const failures = n(`criterion:${c.id}:f`)
    const { outcomes, successRate, progress, met } = criterionStanding(
      c.target,
      successes,
      failures,
      config.outcomes.minOutcomes,
    )
    allMet &&= met
    overall += (progress * c.weight) / goal!.totalWeight
    criteria[c.id] = {
      met,
      progress,
      evidence: {
        decisions: n(`criterion:${c.id}:d`),
        outcomes,
        successes,
        failures,
        successRate,
        target: c.target,
        weight: c.weight,
      },
    }
  }
  const successes = n('goal:successes')
  const failures = n('goal:failures')
  const totalDecisions = n('goal:decisions')
  return {
    goalId: goal?.id,
    overallProgress: overall,
    criteria,
    constraintViolations: [],
    metrics: {
      totalDecisions,
      successfulOutcomes: successes,
      failedOutcomes: failures,
      successRate: successes + failures === 0 ? 0 : successes / (successes + failures),
      streamsActive: config.entryPoints.filter((ep) => n(`stream:${ep.id}:decisions`) > 0).length,
      executionsTotal: n('goal:executions'),
    },
    recommendation: recommendationOf(
      { hardViolations: 0, allMet, hasGoal: goal !== undefined, totalDecisions, overall },
      config.outcomes,
    ),
  }
}
