/**
 * Webhook signatures: `x-agentpool-signature: sha256=<hex HMAC-SHA256 of the raw body>`, keyed by the
 * value of the trigger's `secretEnv` variable, compared in constant time.
 *
 * @module
 */
import { createHmac, timingSafeEqual } from 'node:crypto'
import { InvalidArgumentError } from '../errors.js'

/** The request header that carries the signature. */
export const SIGNATURE_HEADER = 'x-agentpool-signature'

const SIGNATURE_PATTERN = /^sha256=([0-9a-f]{64})$/i

/** What {@link signWebhookBody} signs. */
export interface SignWebhookBodyOptions {
  /** The raw request body, exactly the bytes that will be sent. */
  body: string | Uint8Array
  /** The signing secret: the value of the trigger's `secretEnv` variable. */
  secret: string | Uint8Array
}

/**
 * The `x-agentpool-signature` header value a sender puts on a request: `sha256=<hex HMAC-SHA256 of the
 * body, keyed by the secret>`.
 *
 * ```ts
 * const body = JSON.stringify({ ticketId: 'T-1' })
 * await fetch(url, { method: 'POST', body, headers: { 'x-agentpool-signature': signWebhookBody({ body, secret }) } })
 * ```
 * @throws {InvalidArgumentError} unless called with one `{ body, secret }` object.
 */
export function signWebhookBody(opts: SignWebhookBodyOptions): string {
  const { body, secret } = (opts ?? {}) as Partial<SignWebhookBodyOptions>
  if (!isBytes(body) || !isBytes(secret)) {
    throw new InvalidArgumentError(
      'signWebhookBody({ body, secret }) takes one object: the raw body and the secret, each a string or bytes',
    )
  }
  return `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`
}

function isBytes(v: unknown): v is string | Uint8Array {
  return typeof v === 'string' || v instanceof Uint8Array
}

/**
 * Whether `header` is the right signature of `body`. A missing, repeated or malformed header is wrong;
 * the digests themselves are compared with `crypto.timingSafeEqual`.
 */
export function verifyWebhookSignature(
  secret: Buffer,
  body: Buffer,
  header: string | string[] | undefined,
): boolean {
  if (typeof header !== 'string') return false
  const m = SIGNATURE_PATTERN.exec(header.trim())
  if (!m) return false
  const expected = createHmac('sha256', secret).update(body).digest()
  return timingSafeEqual(expected, Buffer.from(m[1]!, 'hex'))
}
