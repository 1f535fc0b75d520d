/**
 * Values msgpack cannot carry faithfully, refused before they are encoded.
 *
 * @module
 */
import { RecordInvalidError } from '../errors.js'

/**
 * Refuses a value msgpackr would encode wrongly: an object whose own `hasOwnProperty` is not a function and
 * that inherits enumerable keys (msgpackr then writes more values than its record lists, and the frame
 * decodes into garbage). Walks the value once; cheap for the small values records carry.
 * @throws RecordInvalidError naming `what`.
 */
export function assertPackable(value: unknown, what: string, depth = 0): void {
  if (typeof value !== 'object' || value === null || depth > 64) return
  if (Array.isArray(value)) {
    for (const item of value) assertPackable(item, what, depth + 1)
    return
  }
  const o = value as Record<string, unknown>
  if (typeof o.hasOwnProperty !== 'function') {
    for (const key in o) {
      if (!Object.hasOwn(o, key)) {
        throw new RecordInvalidError(
          `${what} holds an object with a non-function own "hasOwnProperty" and inherited enumerable key ${JSON.stringify(key)}; msgpack cannot carry it faithfully — pass a plain object`,
          { key },
        )
      }
    }
  }
  for (const key of Object.keys(o)) assertPackable(o[key], what, depth + 1)
}
