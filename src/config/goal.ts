/**
 * A goal's rules, in one place: {@link normalizeGoal} validates a goal and fills its defaults for the
 * config resolver and for the outcome aggregator alike (the config schema checks only its shape).
 *
 * @module
 */
import { ConfigError, type ConfigIssue } from '../errors.js'
import { parseTarget } from './schema.js'
import type { Goal } from './types.js'

/** A criterion ready for evaluation. Internal. */
export interface NormalizedCriterion {
  id: string
  description: string
  target: number
  weight: number
}

/** A goal ready for evaluation. Internal. */
export interface NormalizedGoal {
  id: string
  criteria: NormalizedCriterion[]
  totalWeight: number
  constraints: Map<string, { kind: 'hard' | 'soft'; description: string }>
}

/**
 * Validates `goal` (raw or already resolved by the config loader) and fills its defaults. The one place a
 * goal's rules live: the config resolver and the aggregator both call it.
 * @throws ConfigError naming every bad field.
 */
export function normalizeGoal(goal: Goal): NormalizedGoal {
  const issues = goalIssues(goal)
  if (issues.length > 0) throw new ConfigError(issues)
  return normalized(goal)
}

/** Every rule `goal` breaks, each with its path and value (empty when it is valid). */
export function goalIssues(goal: Goal): ConfigIssue[] {
  const issues: ConfigIssue[] = []
  collect(goal, issues)
  return issues
}

function normalized(goal: Goal): NormalizedGoal {
  const issues: ConfigIssue[] = []
  return collect(goal, issues)
}

function collect(goal: Goal, issues: ConfigIssue[]): NormalizedGoal {
  const criteria: NormalizedCriterion[] = []
  const seen = new Set<string>()
  const list = Array.isArray(goal.successCriteria) ? goal.successCriteria : []
  if (!Array.isArray(goal.successCriteria)) {
    issues.push({ path: 'goal.successCriteria', message: 'must be an array', value: goal.successCriteria })
  } else if (list.length === 0) {
    issues.push({ path: 'goal.successCriteria', message: 'must name at least one criterion', value: list })
  }
  list.forEach((c, i) => {
    const at = `goal.successCriteria[${i}]`
    if (typeof c?.id !== 'string' || c.id === '')
      issues.push({ path: `${at}.id`, message: 'must be a non-empty string', value: c?.id })
    else if (seen.has(c.id))
      issues.push({ path: `${at}.id`, message: 'duplicates an earlier criterion id', value: c.id })
    else seen.add(c.id)
    const target = parseTarget(c?.target)
    if (target === undefined) {
      issues.push({
        path: `${at}.target`,
        message: "must be a number in [0, 1] or a percentage such as '90%'",
        value: c?.target,
      })
    }
    const weight = c?.weight ?? 1
    if (typeof weight !== 'number' || !Number.isFinite(weight) || weight < 0) {
      issues.push({ path: `${at}.weight`, message: 'must be a finite number >= 0', value: c?.weight })
    }
    if (c?.metric !== undefined && c.metric !== 'success_rate') {
      issues.push({ path: `${at}.metric`, message: "must be 'success_rate'", value: c.metric })
    }
    criteria.push({
      id: c?.id,
      description: c?.description ?? '',
      target: target ?? 0,
      weight: Number(weight),
    })
  })
  const totalWeight = criteria.reduce((sum, c) => sum + c.weight, 0)
  if (criteria.length > 0 && totalWeight === 0 && issues.length === 0) {
    issues.push({
      path: 'goal.successCriteria',
      message: 'weights sum to 0; give at least one criterion a positive weight',
    })
  }
  const constraints = new Map<string, { kind: 'hard' | 'soft'; description: string }>()
  ;(goal.constraints ?? []).forEach((c, i) => {
    const at = `goal.constraints[${i}]`
    if (typeof c?.id !== 'string' || c.id === '')
      issues.push({ path: `${at}.id`, message: 'must be a non-empty string', value: c?.id })
    else if (constraints.has(c.id))
      issues.push({ path: `${at}.id`, message: 'duplicates an earlier constraint id', value: c.id })
    if (c?.kind !== 'hard' && c?.kind !== 'soft')
      issues.push({ path: `${at}.kind`, message: "must be 'hard' or 'soft'", value: c?.kind })
    constraints.set(c?.id, { kind: c?.kind === 'hard' ? 'hard' : 'soft', description: c?.description ?? '' })
  })
  return { id: goal.id, criteria, totalWeight, constraints }
}
