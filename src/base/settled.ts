/**
 * Waiting for several operations on resources that must not be used twice at once (a QMP
 * session answers commands in order, without matching replies to them): every one is
 * waited for before the first failure is reported, so nothing is still running when the
 * caller cleans up.
 */

/**
 * Like Promise.all, but settles every promise before it rejects.
 * @throws the first rejection, in the order given
 */
export async function allSettledOrThrow<T>(promises: Iterable<Promise<T>>): Promise<T[]> {
  const results = await Promise.allSettled(promises);
  const failed = results.find((r) => r.status === "rejected");
  if (failed) throw (failed as PromiseRejectedResult).reason;
  return results.map((r) => (r as PromiseFulfilledResult<T>).value);
}
