/**
 * Reading a streamed answer (an event stream through the credential proxy) the way a caller does,
 * to tell when the proxy ends it.
 */

/** Reads `res`'s body to its end; `ended` resolves when it ends or breaks off. */
export function readStream(res: Response) {
  const reader = (res.body as ReadableStream<Uint8Array>).getReader();
  let chunks = 0;
  const ended = (async () => {
    try {
      while (!(await reader.read()).done) chunks++;
    } catch {
      // Broken off: what a caller sees when the proxy ends the answer.
    }
  })();
  return { ended, chunks: () => chunks, cancel: () => reader.cancel().catch(() => {}) };
}

/** Whether `ended` settles within `ms` (a bound, not a timing goal: the proxy checks every 5 s). */
export const endsWithin = (ended: Promise<void>, ms: number) =>
  Promise.race([ended.then(() => true), new Promise<boolean>((done) => setTimeout(() => done(false), ms))]);
