import { copyFileSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs'
import { dirname, join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import { transformSync } from 'esbuild'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))

function typescriptFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && e.name.endsWith('.ts') && !e.name.endsWith('.d.ts'))
    .map((e) => join(e.parentPath, e.name))
}

/**
 * The package's current sources, transpiled into `into` and laid out as `npm run build` lays them out
 * (`dist/src`, `dist/workers`, `workers/bootstrap.mjs`, `node_modules` linked), with the repository files
 * `extra` (paths from the repository root, e.g. test fixtures) beside them under `dist/`. Returns
 * `into`. For tests that start many processes: plain Node loads this without tsx's loader thread, so a
 * process is up in a fraction of the time. Types are stripped by esbuild, not checked (`npm run typecheck`
 * does that).
 */
export function transpiledPackage(into: string, extra: readonly string[] = []): string {
  const sources = [...typescriptFiles(join(ROOT, 'src')), ...typescriptFiles(join(ROOT, 'workers'))]
  for (const file of [...sources, ...extra.map((f) => join(ROOT, f))]) {
    const out = join(into, 'dist', relative(ROOT, file)).replace(/\.ts$/, '.js')
    const { code } = transformSync(readFileSync(file, 'utf8'), {
      loader: 'ts',
      format: 'esm',
      target: 'es2022',
      sourcefile: file,
      // As `tsc` emits for this package's tsconfig (target ES2022).
      tsconfigRaw: { compilerOptions: { useDefineForClassFields: true } },
    })
    mkdirSync(dirname(out), { recursive: true })
    writeFileSync(out, code)
  }
  mkdirSync(join(into, 'workers'), { recursive: true })
  copyFileSync(join(ROOT, 'workers', 'bootstrap.mjs'), join(into, 'workers', 'bootstrap.mjs'))
  copyFileSync(join(ROOT, 'package.json'), join(into, 'package.json'))
  symlinkSync(join(ROOT, 'node_modules'), join(into, 'node_modules'), 'dir')
  return into
}
