/**
 * Small, exact statistics over plain number arrays. Shared by the side-by-side comparison and the sweep.
 */

/** Median of `values` (mean of the two middle values for an even count); `NaN` for an empty array. */
export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN
  const sorted = [...values].sort((a, b) => a - b)
  const mid = sorted.length >> 1
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2
}

/**
 * The `p`-th percentile (0–100) of `values` by the nearest-rank method: the smallest value at or below
 * which at least `p` % of the values lie. `NaN` for an empty array.
 */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN
  const sorted = [...values].sort((a, b) => a - b)
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length))
  return sorted[Math.min(rank, sorted.length) - 1]!
}
