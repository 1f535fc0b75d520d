/**
 * The benchmark harness: shared types, the side-by-side comparison every suite uses, the runner behind
 * `npm run bench`, and the analysis and charts of the concurrency-limit sweep.
 */

// The sweep's analysis, plan and charts are the library's own (`src/sweep`); the harness passes them on.
export * from '../../src/sweep/index.js'
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
  BATCH_QUICK_BUDGET,
  budgetFor,
  type CompareSpec,
  compareSideBySide,
  describeCpu,
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
  main as runBench,
  type RunSuitesOptions,
  runSuites,
  suiteStem,
  validateEntries,
  writeResults,
} from './runner.js'
export type * from './types.js'
export { runFor } from './warm.js'
