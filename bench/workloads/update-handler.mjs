/** The contender's handler of `state_dispatch_vs_piscina`: one `update` of a global counter key. */
export default function countUpdate(input, ctx) {
  ctx.state.update('dispatched', (n) => (n ?? 0) + 1, { scope: 'global' })
  return input
}
