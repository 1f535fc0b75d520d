#!/usr/bin/env node
// The `agentpool` command. An installed package runs its built dist/. A clone of the repository runs the
// TypeScript sources through tsx (a dev dependency) when it has them, so it needs no build.
// Exit codes: see `agentpool --help`.
import { existsSync } from 'node:fs'

const sources = new URL('../src/cli.ts', import.meta.url)
const built = new URL('../dist/src/cli.js', import.meta.url)

async function loadCli() {
  if (existsSync(sources)) {
    try {
      const { register } = await import('tsx/esm/api')
      register()
      return await import(sources.href)
    } catch (err) {
      if (err?.code !== 'ERR_MODULE_NOT_FOUND' || !existsSync(built)) throw err
    }
  }
  if (!existsSync(built)) {
    process.stderr.write('agentpool: dist/ is missing; build it first with `npm run build`\n')
    process.exit(70)
  }
  return import(built.href)
}

// A closed stdout or stderr (its reader gone, as when `npx` exits first) must not crash a draining run.
for (const stream of [process.stdout, process.stderr]) stream.on('error', () => {})
const { main } = await loadCli()
// Exit explicitly: a handler that leaked a timer or socket must not keep the command alive.
process.exit(await main(process.argv))
