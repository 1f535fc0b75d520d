/**
 * The machine a benchmark ran on: results are only comparable on the same one.
 *
 * @module
 */
import { availableParallelism, platform } from 'node:os'

export interface MachineInfo {
  cpus: number
  node: string
  os: string
}

/** This machine: its usable cores, Node version and OS. */
export function machineInfo(): MachineInfo {
  return { cpus: availableParallelism(), node: process.version, os: platform() }
}

/** A rate for people: `1.23M`, `4.5k`, `12.0`. */
export function formatHz(hz: number): string {
  if (!Number.isFinite(hz)) return String(hz)
  if (hz >= 1e6) return `${(hz / 1e6).toFixed(2)}M`
  if (hz >= 1e3) return `${(hz / 1e3).toFixed(1)}k`
  return hz.toFixed(1)
}
