import { createServer, type Server } from 'node:net'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type AgentPoolError, AgentRuntime, ErrorCode, type RuntimeConfig } from '../src/index.js'

const echo = fileURLToPath(new URL('./fixtures/handlers/echo.ts', import.meta.url))

let blocker: Server
let takenPort: number

beforeAll(async () => {
  blocker = createServer()
  await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve))
  takenPort = (blocker.address() as { port: number }).port
})

afterAll(() => new Promise<void>((resolve) => blocker.close(() => resolve())))

const api = { id: 'tickets', handler: echo, trigger: { type: 'api' as const } }

describe('metrics without a webhook', () => {
  it('runtime.metrics() and a metrics server of its own report the executions of an agent with no webhook', async () => {
    const runtime = new AgentRuntime({ pool: { threads: 1 }, metrics: { port: 0 }, entryPoints: [api] })
    await runtime.start()
    try {
      for (let i = 0; i < 3; i++)
        expect((await runtime.triggerAndWait('tickets', i)).status).toBe('completed')
      expect(runtime.webhookUrl).toBeUndefined()
      const text = await runtime.metrics()
      expect(text).toContain('agentpool_executions_total{stream="tickets",status="completed"} 3')
      expect(text).toContain(
        'agentpool_execution_duration_seconds_count{stream="tickets",status="completed"} 3',
      )
      const res = await fetch(`${runtime.metricsUrl}/metrics`)
      expect(res.status).toBe(200)
      expect(res.headers.get('content-type')).toContain('text/plain')
      expect(await res.text()).toContain('agentpool_executions_total{stream="tickets",status="completed"} 3')
      expect((await fetch(`${runtime.metricsUrl}/healthz`)).status).toBe(200)
      expect((await fetch(`${runtime.metricsUrl}/other`)).status).toBe(404)
    } finally {
      await runtime.stop()
    }
  })

  it('refuses a port in use with AGENTPOOL_PORT_IN_USE naming the option, and leaves nothing running', async () => {
    const hook = { ...api, id: 'hook', trigger: { type: 'webhook' as const, path: '/h' } }
    const cases: [string, Partial<RuntimeConfig>][] = [
      ['metrics.port', { metrics: { port: takenPort } }],
      ['webhook.port', { webhook: { port: takenPort }, entryPoints: [api, hook] }],
    ]
    for (const [option, config] of cases) {
      const runtime = new AgentRuntime({ pool: { threads: 1 }, entryPoints: [api], ...config })
      const err = (await runtime.start().catch((e: unknown) => e)) as AgentPoolError
      expect(err.code).toBe(ErrorCode.PORT_IN_USE)
      expect(err.message).toContain(`${option} ${takenPort} on 127.0.0.1 is already in use`)
      await expect(runtime.trigger('tickets', 1)).rejects.toMatchObject({ code: ErrorCode.NOT_RUNNING })
    }
  })
})
