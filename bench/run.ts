/**
 * `npm run bench` (`tsx bench/run.ts [--quick] [--filter <suite>] [--out <file>]`): runs every
 * `bench/*.bench.ts` suite, prints progress and a table, writes `bench/results/latest.json`.
 *
 * Exit code: 0 every entry met its target; 1 an entry missed its target; 2 a suite failed (threw or did
 * not load, or no suite matched `--filter`); 64 bad arguments. The process exits explicitly so a suite
 * that leaked a worker thread cannot keep it alive.
 */

import { main } from './harness/runner.js'

process.exit(await main(process.argv.slice(2)))
