/**
 * The aggregator's option resolver: checked once at construction so evaluation never re-validates (a
 * goal's own rules are `normalizeGoal` in config/).
 *
 * @module
 */
import { describeValue, InvalidArgumentError } from '../errors.js'
import type { OutcomeAggregatorOptions, ResolvedOutcomeAggregatorOptions } from './types.js'

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
