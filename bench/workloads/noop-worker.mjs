/** The baseline's Piscina task: does nothing, like the contender's no-op handler. */
export default function noop(task) {
  return task
}
