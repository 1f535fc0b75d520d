/**
 * Webhook signatures: `x-agentpool-signature: sha256=<hex HMAC-SHA256 of the raw body>`, keyed by the
 * value of the trigger's `secretEnv` variable, compared in constant time.
 *
 * @module
 */
import { createHmac, timingSafeEqual } from 'node:crypto'

/** The request header that carries the signature. */
export const SIGNATURE_HEADER = 'x-agentpool-signature'

const SIGNATURE_PATTERN = /^sha256=([0-9a-f]{64})$/i

/** The header value a sender puts on `body` for `secret`: `sha256=<hex>`. */
export function signWebhookBody(secret: string | Buffer, body: string | Buffer): string {
  return `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`
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
  return timingSafeEqual(expected, Buffer.from(m[1], 'hex'))
}
