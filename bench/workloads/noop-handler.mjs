/** The contender's handler: does nothing, like the baseline's raw Piscina task. */
export default function noop(input) {
  return input
}
