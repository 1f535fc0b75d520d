/**
 * `loadConfigFile`: reads a YAML or JSON config file and resolves it against the file's folder. Problems
 * in a YAML file also carry their line number.
 *
 * @module
 */
import { readFile } from 'node:fs/promises'
import { dirname, extname, resolve } from 'node:path'
import { isNode, LineCounter, parseDocument } from 'yaml'
import { ConfigError, type ConfigIssue } from '../errors.js'
import { resolveConfig } from './resolve.js'
import { parsePath } from './schema.js'
import type { ResolvedRuntimeConfig } from './types.js'

/**
 * Reads `path` (`.json` as JSON, anything else as YAML, which also accepts JSON), validates it and fills
 * its defaults. Relative handler paths (and a relative `baseDir`) resolve against the file's folder.
 *
 * @throws {ConfigError} when the file cannot be read or parsed, or the config is invalid.
 */
export async function loadConfigFile(path: string): Promise<ResolvedRuntimeConfig> {
  const file = resolve(path)
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message
    throw new ConfigError([{ path: '', message: `cannot read the config file (${code})` }], file)
  }
  const opts = { baseDir: dirname(file), source: file }
  if (extname(file).toLowerCase() === '.json') {
    let data: unknown
    try {
      data = JSON.parse(text)
    } catch (err) {
      throw new ConfigError([{ path: '', message: `not valid JSON: ${(err as Error).message}` }], file)
    }
    return resolveConfig(data, opts)
  }
  const lines = new LineCounter()
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false })
  if (doc.errors.length > 0) {
    const issues = doc.errors.map((e): ConfigIssue => {
      const at = lines.linePos(e.pos[0])
      return {
        path: '',
        message: `not valid YAML at line ${at.line}, column ${at.col}: ${e.message.split('\n')[0]}`,
      }
    })
    throw new ConfigError(issues, file)
  }
  try {
    return resolveConfig(doc.toJS(), opts)
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err
    throw new ConfigError(
      err.issues.map((i) => withLine(i, doc, lines)),
      file,
    )
  }
}

/** Appends the YAML line of the issue's field (or its nearest present parent) to its message. */
function withLine(
  issue: ConfigIssue,
  doc: ReturnType<typeof parseDocument>,
  lines: LineCounter,
): ConfigIssue {
  const segs = parsePath(issue.path)
  for (let n = segs.length; n > 0; n--) {
    const node = doc.getIn(segs.slice(0, n), true)
    if (isNode(node) && node.range) {
      return { ...issue, message: `${issue.message} [line ${lines.linePos(node.range[0]).line}]` }
    }
  }
  return issue
}
