import { connect } from 'node:net'
import { networkInterfaces } from 'node:os'
import { afterEach, describe, expect, it } from 'vitest'
import { type AgentEvent, AgentRuntime, ErrorCode } from '../src/index.js'
import { SIGNATURE_HEADER, signWebhookBody } from '../src/triggers/index.js'
import { rapi } from './fixtures/reliability/paths.js'
import { fixture } from './helpers/runtime.js'

const cleanups: (() => Promise<void>)[] = []
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c()
})

async function started(config: ConstructorParameters<typeof AgentRuntime>[0]): Promise<AgentRuntime> {
  const rt = new AgentRuntime({ pool: { threads: 2, tasksPerThread: 4 }, ...config })
  await rt.start()
  cleanups.push(() => rt.stop({ drain: false }))
  return rt
}

/** Whether a TCP connection to host:port is accepted. */
function accepts(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, host)
    socket.once('connect', () => {
      socket.destroy()
      resolve(true)
    })
    socket.once('error', () => resolve(false))
  })
}

describe('security', () => {
  it('binds the webhook server to 127.0.0.1 by default: no other interface of the machine accepts a connection', async () => {
    const rt = await started({
      entryPoints: [{ id: 'hook', handler: fixture('echo'), trigger: { type: 'webhook', path: '/hook' } }],
    })
    const url = new URL(rt.webhookUrl!)
    expect(url.hostname).toBe('127.0.0.1')
    const port = Number(url.port)
    expect(await accepts('127.0.0.1', port)).toBe(true)
    const external = Object.values(networkInterfaces())
      .flat()
      .filter((a) => a !== undefined && !a.internal)
      .map((a) => a!.address)
    for (const address of external) expect(await accepts(address, port), address).toBe(false)
  })

  it("keeps each execution's execution scope private: no other execution, on any thread, can read it", async () => {
    const rt = await started({ entryPoints: [rapi('vault', 'vault', { maxConcurrent: 20 })] })
    const holder = new AbortController()
    const holding = rt.events.waitFor({ types: ['holding'], timeoutMs: 10_000 })
    const held = rt.triggerAndWait('vault', { mode: 'hold', token: 'tok-7f3a' }, { signal: holder.signal })
    await holding
    const peeks = await Promise.all(
      Array.from({ length: 12 }, () => rt.triggerAndWait('vault', { mode: 'peek' })),
    )
    for (const p of peeks) {
      expect(p.status).toBe('completed')
      expect(p.output).toEqual({ read: null, has: false, execution: {}, merged: {} })
    }
    holder.abort()
    expect((await held).status).toBe('cancelled')
    // The holder's execution scope is freed with it (on its thread, once the abort reaches the handler).
    await expect.poll(() => rt.state.stats().keys, { timeout: 10_000 }).toBe(0)
  })

  it('refuses every write and read outside withPermissions with PermissionError and leaves the value as it was', async () => {
    const rt = await started({ entryPoints: [rapi('vault', 'vault')] })
    const main = rt.state.createBuffer('main', 'main', 'shared')
    main.write('admin:flag', 'original', { scope: 'global' })
    const r = await rt.triggerAndWait('vault', { mode: 'narrow' })
    expect(r.status, r.error?.message).toBe('completed')
    expect(r.output).toEqual({
      codes: Array(5).fill(ErrorCode.PERMISSION),
      visible: { 'public:note': 'fine' },
    })
    expect(main.read('admin:flag', { scope: 'global' })).toBe('original')
    rt.state.cleanupExecution('main')
  })

  it('never lets a secretEnv value reach an answer, an event, /metrics, stats, the config or the logs', async () => {
    const SECRET = 'sk-live-reliability-5e1d0c'
    const SECRET_ENV = 'AGENTPOOL_RELIABILITY_SECURITY_SECRET'
    process.env[SECRET_ENV] = SECRET
    const output: string[] = []
    const originalOut = process.stdout.write.bind(process.stdout)
    const originalErr = process.stderr.write.bind(process.stderr)
    process.stdout.write = ((chunk: string | Uint8Array, ...rest: never[]) => {
      output.push(String(chunk))
      return originalOut(chunk, ...rest)
    }) as typeof process.stdout.write
    process.stderr.write = ((chunk: string | Uint8Array, ...rest: never[]) => {
      output.push(String(chunk))
      return originalErr(chunk, ...rest)
    }) as typeof process.stderr.write
    try {
      const rt = await started({
        entryPoints: [
          {
            id: 'signed',
            handler: fixture('echo'),
            trigger: { type: 'webhook', path: '/signed', secretEnv: SECRET_ENV },
          },
          {
            id: 'failing',
            handler: fixture('fail'),
            trigger: { type: 'webhook', path: '/failing', secretEnv: SECRET_ENV },
          },
        ],
      })
      const events: AgentEvent[] = []
      rt.events.subscribe({ handler: (e) => void events.push(e) })
      const answers: string[] = []
      const post = async (path: string, body: string, signature?: string) => {
        const res = await fetch(`${rt.webhookUrl}${path}`, {
          method: 'POST',
          headers: {
            'content-type': 'application/json',
            ...(signature === undefined ? {} : { [SIGNATURE_HEADER]: signature }),
          },
          body,
        })
        const text = await res.text()
        answers.push(`${res.status} ${JSON.stringify([...res.headers])} ${text}`)
        return { status: res.status, text }
      }
      const body = '{"ticket":1}'
      for (const signature of [
        undefined,
        'sha256=00',
        signWebhookBody({ body, secret: 'wrong' }),
        `sha256=${SECRET}`,
        SECRET,
      ]) {
        expect((await post('/signed', body, signature)).status).toBe(401)
      }
      const ids: string[] = []
      for (const path of ['/signed', '/failing']) {
        const ok = await post(path, body, signWebhookBody({ body, secret: SECRET }))
        expect(ok.status).toBe(202)
        ids.push((JSON.parse(ok.text) as { executionId: string }).executionId)
      }
      const results = await Promise.all(ids.map((id) => rt.waitForExecution(id)))
      expect(results.map((r) => r.status)).toEqual(['completed', 'failed'])
      const metrics = await (await fetch(`${rt.webhookUrl}/metrics`)).text()
      expect(metrics).toContain('agentpool')
      const everything = [
        ...answers,
        JSON.stringify(events),
        JSON.stringify(rt.events.history({})),
        JSON.stringify(results),
        metrics,
        JSON.stringify(rt.stats()),
        JSON.stringify(rt.config),
        JSON.stringify(rt.outcomes.evaluateGoalProgress()),
        ...output,
      ].join('\n')
      expect(events.length).toBeGreaterThan(0)
      expect(everything).not.toContain(SECRET)
    } finally {
      process.stdout.write = originalOut
      process.stderr.write = originalErr
      delete process.env[SECRET_ENV]
    }
  })
})
