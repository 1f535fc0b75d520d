import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Every suite starts real worker threads; two cores cannot run many suites at once usefully.
    fileParallelism: true,
    maxWorkers: 2,
    pool: 'forks',
  },
})
