/**
 * Where a benchmark's CPU time goes: the main thread (routing, admission, records) against every other
 * thread of the process (pool threads, plus V8's helper threads). Node 20 has no per-thread CPU clock
 * (`process.threadCpuUsage` came later), so the main thread's time is read from Linux's
 * `/proc/self/task/<pid>/schedstat` (nanoseconds on a CPU); elsewhere it is the event loop's active time,
 * which also counts time the thread was runnable but descheduled.
 */

import { readFileSync } from 'node:fs'
import { performance } from 'node:perf_hooks'

/** How {@link mainThreadCpuUs} measures on this machine. */
export type MainCpuSource = 'thread CPU' | 'event-loop active'

const SCHEDSTAT = `/proc/self/task/${process.pid}/schedstat`

function readSchedstatUs(): number | undefined {
  try {
    const ns = Number(readFileSync(SCHEDSTAT, 'utf8').split(' ', 1)[0])
    return Number.isFinite(ns) ? ns / 1000 : undefined
  } catch {
    return undefined
  }
}

/** The source {@link mainThreadCpuUs} uses here. */
export const MAIN_CPU_SOURCE: MainCpuSource =
  readSchedstatUs() === undefined ? 'event-loop active' : 'thread CPU'

/** CPU time the main thread has used so far, in microseconds (see {@link MAIN_CPU_SOURCE}). */
export function mainThreadCpuUs(): number {
  if (MAIN_CPU_SOURCE === 'thread CPU') return readSchedstatUs()!
  return performance.eventLoopUtilization().active * 1000
}

/** CPU time every thread of the process has used so far, in microseconds. */
export function processCpuUs(): number {
  const u = process.cpuUsage()
  return u.user + u.system
}

/** A point in time to measure CPU from. */
export interface CpuMark {
  main: number
  all: number
  wallMs: number
}

/** The CPU clocks now. */
export function cpuMark(): CpuMark {
  return { main: mainThreadCpuUs(), all: processCpuUs(), wallMs: performance.now() }
}

/** CPU used since `from`, in microseconds: on the main thread, and on every other thread. */
export function cpuSince(from: CpuMark): { mainUs: number; otherUs: number; wallMs: number } {
  const now = cpuMark()
  const mainUs = now.main - from.main
  return { mainUs, otherUs: Math.max(0, now.all - from.all - mainUs), wallMs: now.wallMs - from.wallMs }
}
