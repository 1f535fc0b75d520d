import { execFile } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { AgentRuntime, ErrorCode, SIGNATURE_HEADER, signWebhookBody } from '../src/index.js'

const echo = fileURLToPath(new URL('./fixtures/handlers/echo.ts', import.meta.url))
const readme = readFileSync(fileURLToPath(new URL('../README.md', import.meta.url)), 'utf8')
/** The README's shell example of a signed request, as a user would copy it. */
const example = /<!-- signed-request -->\n```sh\n([\s\S]*?)```/.exec(readme)?.[1]

let runtime: AgentRuntime

beforeAll(async () => {
  process.env.AGENTPOOL_SIGNING_TEST_SECRET = 'change-me'
  runtime = new AgentRuntime({
    pool: { threads: 1 },
    entryPoints: [
      {
        id: 'tickets',
        handler: echo,
        trigger: { type: 'webhook', path: '/hooks/zendesk', secretEnv: 'AGENTPOOL_SIGNING_TEST_SECRET' },
      },
    ],
  })
  await runtime.start()
})

afterAll(() => runtime.stop())

async function resultOf(res: Response) {
  expect(res.status).toBe(202)
  const { executionId } = (await res.json()) as { executionId: string }
  return runtime.waitForExecution(executionId)
}

describe('signing webhook requests', () => {
  it('signWebhookBody({ body, secret }) signs a request the webhook accepts with 202', async () => {
    const body = JSON.stringify({ ticketId: 'T-1' })
    const res = await fetch(`${runtime.webhookUrl}/hooks/zendesk`, {
      method: 'POST',
      body,
      headers: {
        'content-type': 'application/json',
        [SIGNATURE_HEADER]: signWebhookBody({ body, secret: 'change-me' }),
      },
    })
    expect((await resultOf(res)).output).toMatchObject({ input: { ticketId: 'T-1' } })
  })

  it('refuses the positional form, whose argument order TypeScript cannot check', () => {
    const positional = signWebhookBody as unknown as (a: string, b: string) => string
    expect(() => positional('change-me', '{}')).toThrow(
      expect.objectContaining({ code: ErrorCode.INVALID_ARGUMENT }),
    )
  })

  it("the README's curl and openssl example gets 202, and the execution runs with the body as input", async () => {
    expect(example).toBeDefined()
    const script = example!.replace('http://127.0.0.1:8080', runtime.webhookUrl!)
    const { stdout } = await promisify(execFile)('bash', ['-c', script])
    expect(stdout).toMatch(/^HTTP\/1\.1 202 Accepted/)
    const { executionId } = JSON.parse(stdout.slice(stdout.indexOf('{')))
    const result = await runtime.waitForExecution(executionId)
    expect(result.output).toMatchObject({ input: { ticketId: 'T-1001', subject: 'Password reset' } })
  })
})
