/**
 * The aggregator's option resolver: checked once at construction so evaluation never re-validates (a
 * goal's own rules are `normalizeGoal` in config/).
 *
 * @module
 */
import { describeValue, InvalidArgumentError } from '../errors.js'
import type { GoalProgress, OutcomeAggregatorOptions, ResolvedOutcomeAggregatorOptions } from './types.js'

/** One criterion against its target: progress is the success rate over the target, capped at 1. */
export function criterionStanding(
  target: number,
  successes: number,
  failures: number,
  minOutcomes: number,
): { outcomes: number; successRate: number; progress: number; met: boolean } {
  const outcomes = successes + failures
  const successRate = outcomes === 0 ? 0 : successes / outcomes
  const progress = outcomes === 0 ? 0 : target === 0 ? 1 : Math.min(1, successRate / target)
  const met = outcomes >= minOutcomes && successRate >= target
  return { outcomes, successRate, progress, met }
}

/** The recommendation of {@link GoalProgress} from where the goal stands. */
export function recommendationOf(
  standing: {
    hardViolations: number
    allMet: boolean
    hasGoal: boolean
    totalDecisions: number
    overall: number
  },
  opts: Pick<ResolvedOutcomeAggregatorOptions, 'adjustAfterDecisions' | 'lowProgress'>,
): GoalProgress['recommendation'] {
  if (standing.hardViolations > 0) return 'adjust'
  if (standing.allMet) return 'complete'
  if (
    standing.hasGoal &&
    standing.totalDecisions >= opts.adjustAfterDecisions &&
    standing.overall < opts.lowProgress
  ) {
    return 'adjust'
  }
  return 'continue'
}

/**
 * Fills {@link OutcomeAggregatorOptions} defaults.
 * @throws InvalidArgumentError naming the option and the value.
 */
export function resolveAggregatorOptions(
  options: OutcomeAggregatorOptions,
): ResolvedOutcomeAggregatorOptions {
  const resolved: ResolvedOutcomeAggregatorOptions = {
    maxDecisions: options.maxDecisions ?? 10_000,
    minOutcomes: options.minOutcomes ?? 1,
    adjustAfterDecisions: options.adjustAfterDecisions ?? 20,
    lowProgress: options.lowProgress ?? 0.5,
    progressStep: options.progressStep ?? 0.01,
  }
  const integers = ['maxDecisions', 'minOutcomes', 'adjustAfterDecisions'] as const
  for (const name of integers) {
    const v = resolved[name]
    if (!Number.isSafeInteger(v) || v < (name === 'maxDecisions' ? 0 : 1)) {
      throw new InvalidArgumentError(
        `OutcomeAggregator option ${name} must be an integer >= ${name === 'maxDecisions' ? 0 : 1} (got ${describeValue(v)})`,
        { option: name, value: v },
      )
    }
  }
  for (const name of ['lowProgress', 'progressStep'] as const) {
    const v = resolved[name]
    if (typeof v !== 'number' || !(v >= 0 && v <= 1)) {
      throw new InvalidArgumentError(
        `OutcomeAggregator option ${name} must be a number in [0, 1] (got ${describeValue(v)})`,
        {
          option: name,
          value: v,
        },
      )
    }
  }
  return resolved
}
