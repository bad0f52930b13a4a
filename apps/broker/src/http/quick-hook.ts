import type { FastifyReply, FastifyRequest } from 'fastify';

/**
 * A hook that decides most requests at once and awaits only when it has work: `run` answers
 * undefined to let the request through, or a promise (which may have answered it) for the rest.
 * Fastify awaits every hook written as an async function, a promise and a microtask each on
 * every request; on routes a hook has nothing to do with (public ones, `/health`) that was most
 * of what they cost. Completion is the same as an async hook's: the next hook runs, and Fastify
 * stops the chain when the reply was sent.
 */
export function quickHook(
  run: (request: FastifyRequest, reply: FastifyReply) => Promise<unknown> | undefined,
) {
  return (request: FastifyRequest, reply: FastifyReply, done: (error?: Error) => void): void => {
    let pending: Promise<unknown> | undefined;
    try {
      pending = run(request, reply);
    } catch (error) {
      done(error as Error);
      return;
    }
    if (pending === undefined) done();
    else pending.then(() => done(), done);
  };
}
