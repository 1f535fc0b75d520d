import { type ChildProcess, execFile, spawn } from 'node:child_process'
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

const run = promisify(execFile)
const root = fileURLToPath(new URL('..', import.meta.url))
const SECRET = 'e2e-secret'
let dir: string

/** Runs `npx agentpool …` in the consumer project; resolves with its exit code and output. */
function npx(
  args: string[],
  env: Record<string, string> = {},
): { child: ChildProcess; done: Promise<{ code: number | null; out: string; err: string }> } {
  const child = spawn('npx', ['--no-install', 'agentpool', ...args], {
    cwd: dir,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let out = ''
  let err = ''
  child.stdout!.on('data', (d) => {
    out += d
  })
  child.stderr!.on('data', (d) => {
    err += d
  })
  // 'close' waits for the output pipes, which the agentpool process holds until it exits.
  const done = new Promise<{ code: number | null; out: string; err: string }>((resolve) =>
    child.once('close', (code) => resolve({ code, out, err })),
  )
  return { child, done }
}

beforeAll(async () => {
  if (!existsSync(join(root, 'dist/src/index.js')))
    throw new Error('dist/ is missing: run `npm run build` first')
  dir = mkdtempSync(join(tmpdir(), 'agentpool-consumer-'))
  await run('npm', ['pack', '--ignore-scripts', '--pack-destination', dir], { cwd: root })
  const tarball = readdirSync(dir).find((f) => f.endsWith('.tgz'))!
  // A project as `npm init -y` makes it: CommonJS by default.
  writeFileSync(
    join(dir, 'package.json'),
    JSON.stringify({ name: 'consumer', version: '1.0.0', private: true }),
  )
  await run('npm', ['install', '--omit=dev', '--prefer-offline', '--no-audit', '--no-fund', `./${tarball}`], {
    cwd: dir,
  })
  writeFileSync(
    join(dir, 'tickets.js'),
    "module.exports = async (input, ctx) => { ctx.state.update('seen', (n = 0) => n + 1, { scope: 'stream' }); return { ticket: input, via: ctx.meta.trigger } }\n",
  )
  writeFileSync(
    join(dir, 'sweep.mjs'),
    "import { defineHandler } from 'agentpool/handler'\nexport default defineHandler(async (_input, ctx) => ({ swept: ctx.streamId }))\n",
  )
  writeFileSync(
    join(dir, 'agent.yaml'),
    [
      'pool: { threads: 1 }',
      'entryPoints:',
      '  - { id: tickets, handler: ./tickets.js, trigger: { type: webhook, path: /hooks/zendesk, secretEnv: E2E_SECRET } }',
      '  - { id: follow_ups, handler: ./tickets.js, trigger: { type: api } }',
      '  - { id: sweep, handler: ./sweep.mjs, trigger: { type: timer, intervalMs: 200, runImmediately: true } }',
    ].join('\n'),
  )
  writeFileSync(
    join(dir, 'embed.mjs'),
    [
      "import { AgentRuntime } from 'agentpool'",
      "const runtime = await AgentRuntime.fromConfigFile('agent.yaml')",
      'await runtime.start()',
      "const r = await runtime.triggerAndWait('follow_ups', { ticketId: 'T-9' })",
      "console.log(JSON.stringify({ status: r.status, output: r.output, metrics: (await runtime.metrics()).includes('agentpool_executions_total') }))",
      'await runtime.stop()',
    ].join('\n'),
  )
  writeFileSync(
    join(dir, 'ts-agent.yaml'),
    'entryPoints:\n  - { id: t, handler: ./t.ts, trigger: { type: api } }\n',
  )
  writeFileSync(join(dir, 't.ts'), 'export default async (input: unknown) => input\n')
}, 300_000)

afterAll(() => rmSync(dir, { recursive: true, force: true }))

describe('the installed package', () => {
  it('installs with --omit=dev into a CommonJS project without tsx, TypeScript or the sources', () => {
    const pkg = join(dir, 'node_modules/agentpool')
    expect(existsSync(join(pkg, 'dist/src/index.js'))).toBe(true)
    expect(existsSync(join(pkg, 'src'))).toBe(false)
    expect(existsSync(join(dir, 'node_modules/tsx'))).toBe(false)
    expect(existsSync(join(dir, 'node_modules/typescript'))).toBe(false)
  })

  it('runs an embedding script with plain-JavaScript handlers', async () => {
    const { stdout } = await run(process.execPath, ['embed.mjs'], {
      cwd: dir,
      env: { ...process.env, E2E_SECRET: SECRET },
    })
    expect(JSON.parse(stdout)).toEqual({
      status: 'completed',
      output: { ticket: { ticketId: 'T-9' }, via: 'api' },
      metrics: true,
    })
  })

  it('runs `npx agentpool run` with webhook, api and timer entry points, takes a signed curl request, and drains on SIGTERM to npx', async () => {
    const { child, done } = npx(['run', 'agent.yaml', '--status-interval', '0'], { E2E_SECRET: SECRET })
    const url = await new Promise<string>((resolve, reject) => {
      let text = ''
      child.stdout!.on('data', (d) => {
        text += d
        const m = /webhook URL: (\S+)\n/.exec(text)
        if (m && text.includes('press Ctrl+C')) resolve(m[1]!)
      })
      child.once('exit', () => reject(new Error(`exited early: ${text}`)))
    })
    const body = '{"ticketId":"T-1001"}'
    const { stdout } = await run(
      'bash',
      [
        '-c',
        `SIG=$(printf '%s' '${body}' | openssl dgst -sha256 -hmac "$E2E_SECRET" -r | cut -d' ' -f1)
       curl -sS -i "${url}/hooks/zendesk" -H 'content-type: application/json' -H "x-agentpool-signature: sha256=$SIG" --data-binary '${body}'`,
      ],
      { env: { ...process.env, E2E_SECRET: SECRET } },
    )
    expect(stdout).toMatch(/^HTTP\/1\.1 202 Accepted/)
    child.kill('SIGTERM')
    const r = await done
    expect(r.out).toMatch(/(SIGTERM|the parent process \(\d+\) exited): stopping, draining/)
    expect(r.out).toMatch(/\ntickets +1 +0 /)
    expect(r.out).toMatch(/\nsweep +[1-9]\d* +0 /)
  })

  it('validate says how to add tsx for a TypeScript handler, and bench names what it cannot run here', async () => {
    const ts = await npx(['validate', 'ts-agent.yaml']).done
    expect(ts.code).toBe(2)
    expect(ts.err).toContain('Fix: npm install tsx')
    const bench = await npx(['bench', '--quick']).done
    expect(bench.code).toBe(2)
    expect(bench.err).toContain('ship with the repository, not the package')
  })
})
