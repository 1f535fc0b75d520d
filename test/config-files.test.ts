import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { loadConfigFile } from '../src/config/index.js'
import { ConfigError } from '../src/errors.js'

const dir = fileURLToPath(new URL('./fixtures/config/', import.meta.url))

async function refusal(path: string): Promise<ConfigError> {
  const err = await loadConfigFile(path).then(
    () => undefined,
    (e: unknown) => e,
  )
  expect(err).toBeInstanceOf(ConfigError)
  return err as ConfigError
}

describe('config files', () => {
  // Unparsable files are written at run time so the repository's own lint never trips over them.
  let broken: string
  beforeAll(async () => {
    broken = await mkdtemp(join(tmpdir(), 'agentpool-config-'))
    await writeFile(join(broken, 'broken.yaml'), 'entryPoints:\n  - id: a\n    handler: [unclosed\n')
    await writeFile(join(broken, 'broken.json'), '{ "entryPoints": [ ')
  })
  afterAll(() => rm(broken, { recursive: true, force: true }))

  it('loads a YAML file and resolves handlers against its folder', async () => {
    const r = await loadConfigFile(`${dir}good.yaml`)
    expect(r.baseDir).toBe(dir.replace(/\/$/, ''))
    expect(r.entryPoints.map((e) => [e.id, e.handler, e.trigger.type])).toEqual([
      ['new-tickets', `${dir}noop-handler.ts`, 'webhook'],
      ['follow-ups', `${dir}noop-handler.ts`, 'api'],
      ['escalation', `${dir}noop-handler.ts`, 'timer'],
      ['delegations', `${dir}noop-handler.ts`, 'event'],
    ])
    expect(r.entryPoints[1]!.isolation).toEqual({ stream: 'synchronized', global: 'synchronized' })
    expect(r.goal!.successCriteria[0]!.target).toBe(0.9)
    expect(r.pool.threads).toBe(2)
  })

  it('loads a JSON file', async () => {
    const r = await loadConfigFile(`${dir}good.json`)
    expect(r.entryPoints.map((e) => [e.id, e.maxQueue])).toEqual([['only', 5]])
  })

  it('names the file, every bad path, its value and its YAML line', async () => {
    const err = await refusal(`${dir}bad.yaml`)
    expect(err.message).toContain(`invalid agentpool config in ${dir}bad.yaml`)
    expect(err.issues.map((i) => [i.path, i.value])).toEqual([
      ['entryPoints[0].maxQueue', -1],
      ['colour', undefined],
      ['entryPoints[1].handler', './does-not-exist.ts'],
    ])
    expect(err.issues[0]!.message).toBe('must be an integer >= 0 [line 6]')
    expect(err.issues[1]!.message).toMatch(/^unknown key; allowed keys here: .* \[line 10\]$/)
    expect(err.issues[2]!.message).toMatch(/^handler module not found .* \[line 8\]$/)
  })

  it('refuses a file that is not valid YAML, naming the line', async () => {
    const err = await refusal(join(broken, 'broken.yaml'))
    expect(err.issues[0]!.message).toMatch(/^not valid YAML at line \d+, column \d+: /)
  })

  it('refuses a file that is not valid JSON', async () => {
    const err = await refusal(join(broken, 'broken.json'))
    expect(err.issues[0]!.message).toMatch(/^not valid JSON: /)
  })

  it('refuses a missing file with its path and the system error code', async () => {
    const err = await refusal(`${dir}nowhere.yaml`)
    expect(err.message).toContain(`${dir}nowhere.yaml`)
    expect(err.issues).toEqual([{ path: '', message: 'cannot read the config file (ENOENT)' }])
  })
})
