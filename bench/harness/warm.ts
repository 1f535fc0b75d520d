/**
 * Warming a side up before its first measured round.
 *
 * @module
 */

/**
 * Runs `step` again and again until `ms` have passed. The runtime's own per-execution code (admission,
 * dispatch, records, results) is compiled by the optimizing JIT only after some thousands of executions:
 * an agentpool side needs up to a couple of seconds of its own before it runs at its steady rate, where a
 * plain loop needs well under one.
 */
export async function runFor(ms: number, step: () => unknown): Promise<void> {
  const until = performance.now() + ms
  while (performance.now() < until) await step()
}
