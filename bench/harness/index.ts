/**
 * The benchmark harness: shared types, the side-by-side comparison every suite uses, the runner behind
 * `npm run bench`, and the analysis and charts of the concurrency-limit sweep.
 */

export {
  parseRunArgs,
  parseSweepArgs,
  RUN_USAGE,
  type RunArgs,
  runCommand,
  SWEEP_USAGE,
  type SweepArgs,
  USAGE_EXIT_CODE,
} from './args.js'
export {
  escapeXml,
  formatTick,
  niceAxis,
  renderSweepSvg,
  renderTerminalChart,
  threadSeries,
} from './charts.js'
export {
  budgetFor,
  type CompareSpec,
  compareSideBySide,
  describeCpu,
  formatHz,
  makeEntry,
  passes,
  type RoundBudget,
  type SideSpec,
} from './compare.js'
export { type CpuMark, cpuMark, cpuSince, MAIN_CPU_SOURCE, mainThreadCpuUs, processCpuUs } from './cpu.js'
export {
  BENCH_DIR,
  discoverSuites,
  EXIT,
  exitCodeFor,
  formatTable,
  loadSuite,
  machineInfo,
  main as runBench,
  type RunSuitesOptions,
  runSuites,
  suiteStem,
  validateEntries,
  writeResults,
} from './runner.js'
export { median, percentile } from './stats.js'
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
} from './sweep-analysis.js'
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
} from './sweep-plan.js'
export type * from './types.js'
