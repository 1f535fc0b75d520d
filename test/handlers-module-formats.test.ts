import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type AgentPoolError, AgentRuntime, ErrorCode, type RuntimeConfig } from '../src/index.js'
import { checkHandlerModules } from '../src/runtime/index.js'

/** One handler module per extension, written the way a user of that project type would write it. */
const SOURCES: Record<string, (tag: string) => string> = {
  esm: (tag) => `export default async (input, ctx) => ({ tag: '${tag}', input, stream: ctx.streamId })\n`,
  cjs: (tag) => `module.exports = async (input, ctx) => ({ tag: '${tag}', input, stream: ctx.streamId })\n`,
  esmTs: (tag) =>
    `export default async (input: unknown, ctx: { streamId: string }) => ({ tag: '${tag}' as string, input, stream: ctx.streamId })\n`,
  cjsTs: (tag) =>
    `module.exports = async (input: unknown, ctx: { streamId: string }) => ({ tag: '${tag}' as string, input, stream: ctx.streamId })\n`,
}

/** Which syntax each extension takes in each kind of project. */
const FILES: Record<'module' | 'commonjs', Record<string, keyof typeof SOURCES>> = {
  module: { js: 'esm', mjs: 'esm', cjs: 'cjs', ts: 'esmTs', mts: 'esmTs', cts: 'cjsTs' },
  commonjs: { js: 'cjs', mjs: 'esm', cjs: 'cjs', ts: 'esmTs', mts: 'esmTs', cts: 'cjsTs' },
}

let dir: string
const entryPoints: RuntimeConfig['entryPoints'] = []

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'agentpool-formats-'))
  for (const [type, files] of Object.entries(FILES)) {
    const project = join(dir, type)
    mkdirSync(project)
    writeFileSync(join(project, 'package.json'), JSON.stringify({ name: `p-${type}`, type }))
    for (const [ext, syntax] of Object.entries(files)) {
      const id = `${type}-${ext}`
      writeFileSync(join(project, `handler.${ext}`), SOURCES[syntax]!(id))
      entryPoints.push({ id, handler: join(project, `handler.${ext}`), trigger: { type: 'api' } })
    }
  }
  // The mistakes Node makes hard to read: CommonJS in a file it loads as ESM, and no handler at all.
  writeFileSync(join(dir, 'module', 'wrong.js'), SOURCES.cjs!('wrong'))
  writeFileSync(join(dir, 'commonjs', 'empty.cjs'), 'exports.other = 1\n')
})

afterAll(() => rmSync(dir, { recursive: true, force: true }))

describe('handler module formats', () => {
  it('runs .js, .mjs, .cjs, .ts, .mts and .cts handlers from an ESM and from a CommonJS project', async () => {
    const runtime = new AgentRuntime({ pool: { threads: 1 }, entryPoints })
    await runtime.start()
    try {
      const results = await Promise.all(entryPoints.map((ep) => runtime.triggerAndWait(ep.id, 7)))
      expect(results.map((r) => [r.status, r.output])).toEqual(
        entryPoints.map((ep) => ['completed', { tag: ep.id, input: 7, stream: ep.id }]),
      )
    } finally {
      await runtime.stop()
    }
  })

  it('refuses to start with a module that does not load or exports no handler, naming the file, the cause and the fix', async () => {
    const config = {
      pool: { threads: 1 },
      entryPoints: [
        { id: 'wrong', handler: join(dir, 'module', 'wrong.js'), trigger: { type: 'api' as const } },
        { id: 'empty', handler: join(dir, 'commonjs', 'empty.cjs'), trigger: { type: 'api' as const } },
        entryPoints[0]!,
      ],
    }
    const runtime = new AgentRuntime(config)
    const err = (await runtime.start().catch((e: unknown) => e)) as AgentPoolError
    expect(err.code).toBe(ErrorCode.HANDLER_MODULE)
    expect(err.message).toContain(`${join(dir, 'module', 'wrong.js')} could not be loaded`)
    expect(err.message).toContain('"type": "module"')
    expect(err.message).toContain('rename it to .cjs')
    expect(err.message).toContain(
      `${join(dir, 'commonjs', 'empty.cjs')} does not export a handler (its exports:`,
    )
    expect(err.message).not.toContain('entry point module-js')

    // `agentpool validate` runs the same check on a thread of its own.
    const issues = await checkHandlerModules(runtime.config)
    expect(issues.map((i) => i.path)).toEqual(['entryPoints[0].handler', 'entryPoints[1].handler'])
  })
})
