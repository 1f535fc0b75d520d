/**
 * The concurrency-limit sweep: plans the settings, drives a workload over them, finds the knee of each
 * series and the best setting within a p99 budget, and draws the charts. `agentpool bench --sweep` runs
 * it on a user's own config; `bench/sweep.ts` on the bundled ticket workload. The only door into this
 * folder.
 *
 * @module
 */
export {
  analyzeSweep,
  combinePasses,
  compareSettings,
  describeSetting,
  findKnee,
  findKnees,
  KNEE_TOLERANCE,
  pickWithinBudget,
  type SweepDimension,
  type SweepPick,
  type SweepPoint,
  type SweepResults,
  type SweepSetting,
  sweepSummary,
} from './analysis.js'
export {
  escapeXml,
  formatTick,
  niceAxis,
  renderSweepSvg,
  renderTerminalChart,
  threadSeries,
} from './charts.js'
export { cycle, driveClosedLoop, type LoadOptions, type LoadResult } from './load.js'
export { formatHz, type MachineInfo, machineInfo } from './machine.js'
export {
  DEFAULT_TASKS_PER_THREAD,
  offeredLoad,
  type PlannedPoint,
  type PointDurations,
  planMaxConcurrentSeries,
  planTasksPerThreadSeries,
  planThreadSeries,
  pointDurations,
  SERIES_LEVEL,
  SWEEP_LEVELS,
} from './plan.js'
export { writeSweepReport } from './report.js'
export { type MeasurePoint, runSweep, type SweepOptions } from './run.js'
export { median, percentile } from './stats.js'
export {
  measureRuntimePoint,
  measureWorkloadPoint,
  pointConfig,
  readInputs,
  type Workload,
} from './workload.js'
