/**
 * Latency percentiles over the most recent samples (a fixed ring), so memory stays bounded however many
 * executions run. Main thread only.
 *
 * @module
 */
import type { LatencyPercentiles } from './types.js'

export class LatencyWindow {
  private readonly samples: Float64Array
  private count = 0
  private next = 0

  constructor(size = 4096) {
    this.samples = new Float64Array(size)
  }

  add(ms: number): void {
    this.samples[this.next] = ms
    this.next = (this.next + 1) % this.samples.length
    if (this.count < this.samples.length) this.count++
  }

  percentiles(): LatencyPercentiles {
    if (this.count === 0) return { p50: 0, p95: 0, p99: 0 }
    const sorted = this.samples.slice(0, this.count).sort()
    const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!
    return { p50: at(0.5), p95: at(0.95), p99: at(0.99) }
  }
}
