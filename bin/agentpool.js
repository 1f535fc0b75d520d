#!/usr/bin/env node
// The `agentpool` command. It runs the TypeScript sources through tsx, so a fresh clone needs no build.
// Exit codes: see `agentpool --help`.
import { register } from 'tsx/esm/api'

register()
const { main } = await import('../src/cli.ts')
// Exit explicitly: a handler that leaked a timer or socket must not keep the command alive.
process.exit(await main(process.argv))
