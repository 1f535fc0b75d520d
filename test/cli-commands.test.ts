import { type ChildProcess, spawn } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import { signWebhookBody } from '../src/triggers/index.js'

const bin = fileURLToPath(new URL('../bin/agentpool.js', import.meta.url))
const fixtures = fileURLToPath(new URL('./fixtures/config/', import.meta.url))

interface Run {
  code: number | null
  stdout: string
  stderr: string
}

function start(
  args: string[],
  env: Record<string, string> = {},
): { child: ChildProcess; done: Promise<Run> } {
  const child = spawn(process.execPath, [bin, ...args], { env: { ...process.env, ...env }, stdio: 'pipe' })
  let stdout = ''
  let stderr = ''
  child.stdout!.on('data', (d) => {
    stdout += d
  })
  child.stderr!.on('data', (d) => {
    stderr += d
  })
  const done = new Promise<Run>((resolve) => child.once('close', (code) => resolve({ code, stdout, stderr })))
  return { child, done }
}

const agentpool = (...args: string[]) => start(args).done

/** An api entry point running the no-op fixture handler. */
const only = {
  id: 'only',
  handler: fileURLToPath(new URL('./fixtures/config/noop-handler.ts', import.meta.url)),
  trigger: { type: 'api' },
}

/** Resolves with the first match of `pattern` in the child's stdout so far or to come. */
function waitForOutput(child: ChildProcess, pattern: RegExp): Promise<RegExpMatchArray> {
  return new Promise((resolve, reject) => {
    let text = ''
    const onData = (d: Buffer) => {
      text += d
      const m = text.match(pattern)
      if (m) {
        child.stdout!.off('data', onData)
        resolve(m)
      }
    }
    child.stdout!.on('data', onData)
    child.once('close', () => reject(new Error(`exited before printing ${pattern}; stdout: ${text}`)))
  })
}

describe('agentpool command', () => {
  it('prints help with every command and the exit codes, exit 0', async () => {
    const r = await agentpool('--help')
    expect(r.code).toBe(0)
    for (const word of ['run', 'validate', 'trigger', 'bench', 'Exit codes:', '64  bad command line']) {
      expect(r.stdout).toContain(word)
    }
  })

  it('exits 64 on an unknown command or option', async () => {
    expect((await agentpool('frobnicate')).code).toBe(64)
    const r = await agentpool('validate', `${fixtures}good.yaml`, '--frob')
    expect(r.code).toBe(64)
    expect(r.stderr).toContain("unknown option '--frob'")
  })

  it('validates a good config: lists its entry points, exit 0', async () => {
    const r = await agentpool('validate', `${fixtures}good.yaml`)
    expect(r.code).toBe(0)
    expect(r.stdout).toContain('4 entry point(s), config OK')
    expect(r.stdout).toMatch(/new-tickets\s+webhook POST \/tickets/)
    expect(r.stdout).toMatch(/escalation\s+timer cron "\*\/5 \* \* \* \*"/)
  })

  it('refuses a bad config with every problem, its path, value and line, exit 2', async () => {
    const r = await agentpool('validate', `${fixtures}bad.yaml`)
    expect(r.code).toBe(2)
    expect(r.stderr).toContain('entryPoints[0].maxQueue: must be an integer >= 0 [line 6] (got -1)')
    expect(r.stderr).toContain('colour: unknown key')
    expect(r.stderr).toContain('entryPoints[1].handler: handler module not found')
    expect((await agentpool('validate', `${fixtures}missing.yaml`)).code).toBe(2)
  })

  it('triggers one execution and prints its result as JSON, exit 0', async () => {
    const r = await agentpool('trigger', `${fixtures}good.json`, 'only', '{"ticketId":7}')
    expect(r.code).toBe(0)
    const result = JSON.parse(r.stdout)
    expect(result).toMatchObject({
      streamId: 'only',
      status: 'completed',
      output: { ticketId: 7 },
      attempts: 1,
    })
  })

  it('exits 1 when the triggered execution fails, still printing the result', async () => {
    const r = await agentpool('trigger', `${fixtures}failing.json`, 'broken')
    expect(r.code).toBe(1)
    const result = JSON.parse(r.stdout)
    expect(result.status).toBe('failed')
    expect(result.error).toMatchObject({ code: 'AGENTPOOL_HANDLER_FAILED' })
    expect(result.error.message).toContain('this handler always fails')
  })

  it('exits 64 for input that is not JSON or an unknown entry point', async () => {
    const bad = await agentpool('trigger', `${fixtures}good.json`, 'only', '{nope')
    expect(bad.code).toBe(64)
    expect(bad.stderr).toContain('the input is not valid JSON')
    const unknown = await agentpool('trigger', `${fixtures}good.json`, 'ghost')
    expect(unknown.code).toBe(64)
    expect(unknown.stderr).toContain('no entry point "ghost"')
  })

  it('refuses bench --sweep with --filter before running anything, exit 64', async () => {
    const r = await agentpool('bench', '--sweep', '--filter', 'tickets')
    expect(r.code).toBe(64)
    expect(r.stderr).toContain('--filter selects a suite')
  })

  it('refuses to run a config whose webhook secret variable is unset, naming the config file, exit 2', async () => {
    const { done } = start(['run', `${fixtures}run.yaml`], { AGENTPOOL_CLI_TEST_SECRET: '' })
    const r = await done
    expect(r.code).toBe(2)
    expect(r.stderr).toContain(`invalid agentpool config in ${fixtures}run.yaml`)
    expect(r.stderr).toContain(
      'entryPoints[0].trigger.secretEnv: environment variable AGENTPOOL_CLI_TEST_SECRET is not set',
    )
  })

  it('validate checks what run needs: every secretEnv set and every handler module exporting a handler, exit 2', async () => {
    const r = await agentpool('validate', `${fixtures}needs.yaml`)
    expect(r.code).toBe(2)
    expect(r.stderr).toContain(`invalid agentpool config in ${fixtures}needs.yaml`)
    expect(r.stderr).toContain('environment variable AGENTPOOL_CLI_UNSET_SECRET is not set')
    expect(r.stderr).toMatch(
      /entryPoints\[1\]\.handler: handler module \S+not-a-handler\.ts does not export a handler/,
    )
  })

  it('run names a port in use with AGENTPOOL_PORT_IN_USE instead of a stack, exit 1', async () => {
    const blocker = createServer()
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve))
    const port = (blocker.address() as { port: number }).port
    const dir = mkdtempSync(join(tmpdir(), 'agentpool-port-'))
    const config = join(dir, 'agent.json')
    writeFileSync(config, JSON.stringify({ pool: { threads: 1 }, metrics: { port }, entryPoints: [only] }))
    try {
      const r = await agentpool('run', config)
      expect(r.code).toBe(1)
      expect(r.stderr).toContain(`AGENTPOOL_PORT_IN_USE: metrics.port ${port} on 127.0.0.1 is already in use`)
      expect(r.stderr).not.toMatch(/\n\s+at /)
    } finally {
      blocker.close()
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('run drains and exits when the process that started it exits without passing the signal on, as npx does', async () => {
    // A parent like npm: on SIGTERM it exits, and the command it started keeps running.
    const parent = spawn(
      process.execPath,
      [
        '-e',
        `const c = require('node:child_process').spawn(process.execPath, ${JSON.stringify([bin, 'run', `${fixtures}good.json`, '--status-interval', '0'])}, { stdio: 'inherit' });
         process.on('SIGTERM', () => process.exit(0))`,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    )
    let stdout = ''
    const closed = new Promise<void>((resolve) => parent.stdout!.on('close', resolve))
    parent.stdout!.on('data', (d) => {
      stdout += d
      if (stdout.includes('press Ctrl+C')) parent.kill('SIGTERM')
    })
    // The pipe closes only when the orphaned command, which holds it too, has exited.
    await closed
    expect(stdout).toMatch(/the parent process \(\d+\) exited: stopping, draining/)
    expect(stdout).toMatch(/summary:\n/)
  })

  it('runs a config: prints the webhook URL and status, serves signed webhooks, drains on SIGTERM and prints a summary', async () => {
    const secret = 'cli-test-secret'
    const { child, done } = start(['run', `${fixtures}run.yaml`, '--status-interval', '100'], {
      AGENTPOOL_CLI_TEST_SECRET: secret,
    })
    const [, url] = await waitForOutput(child, /webhook URL: (http:\/\/127\.0\.0\.1:\d+)\n/)
    const body = JSON.stringify({ ticketId: 1 })
    const res = await fetch(`${url}/tickets`, {
      method: 'POST',
      body,
      headers: {
        'content-type': 'application/json',
        'x-agentpool-signature': signWebhookBody({ body, secret }),
      },
    })
    expect(res.status).toBe(202)
    // The webhook's trigger_fired event starts one `audit` execution too.
    await waitForOutput(child, /tickets 0r\/0q\/1✓ {2}sweep \d+r\/\d+q\/\d+✓ {2}audit 0r\/0q\/1✓ {2}\| goal/)
    child.kill('SIGTERM')
    const r = await done
    expect(r.code).toBe(0)
    expect(r.stdout).toContain('SIGTERM: stopping, draining')
    expect(r.stdout).toMatch(
      /summary:\nstream +completed +failed +timed out +cancelled +rejected +p50 ms +p95 ms +p99 ms\n/,
    )
    expect(r.stdout).toMatch(/\ntickets +1 +0 +0 +0 +0 /)
    expect(r.stdout).toMatch(/\naudit +1 +0 +0 +0 +0 /)
    expect(r.stdout).toMatch(/\nsweep +[1-9]\d* +0 /)
    expect(r.stdout).toContain('goal 0.0% (continue)')
    expect(r.stdout + r.stderr).not.toContain(secret)
  })
})
