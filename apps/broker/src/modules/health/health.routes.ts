import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import * as z from 'zod';
import type { Database } from '../../db/client.ts';
import type { Metrics } from '../../http/metrics.ts';
import type { KeyRingCheck, KeyRingStatus } from '../brokers/key-ring-check.ts';
import { describeProcess } from '../brokers/rings.ts';
import type { SecretBackend } from '../secrets/secret-backend.ts';
import { homeRoute } from './home.ts';

const CHECK_TIMEOUT_MS = 2_000;

async function probe(check: () => Promise<void>): Promise<'ok' | 'unavailable'> {
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      check(),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error('timeout')), CHECK_TIMEOUT_MS);
      }),
    ]);
    return 'ok';
  } catch {
    return 'unavailable';
  } finally {
    clearTimeout(timer);
  }
}

export function healthRoutes(
  app: FastifyInstance,
  deps: {
    db: Pick<Database, 'ping'>;
    secrets: Pick<SecretBackend, 'healthCheck'>;
    metrics: Metrics;
    metricsPublic: boolean;
    /** Does this process hold every key the other live brokers write with (decision 0013)? */
    keyRing: KeyRingCheck;
  },
): void {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const tags = ['operations'];

  homeRoute(app);

  r.get(
    '/health',
    {
      config: { auth: 'public' },
      schema: {
        operationId: 'health',
        tags,
        summary: 'Liveness: the process answers',
        // `healthy` is the original's word, which its clients and probes compare with.
        response: { 200: z.object({ status: z.literal('healthy') }) },
      },
    },
    async () => ({ status: 'healthy' as const }),
  );

  const checks = z.object({
    database: z.enum(['ok', 'unavailable']),
    secret_backend: z.enum(['ok', 'unavailable']),
    // `behind`: another live broker writes with a key this one lacks (which keys: the log, `nexus doctor`).
    key_ring: z.enum(['ok', 'behind', 'unavailable']),
  });
  r.get(
    '/ready',
    {
      config: { auth: 'public' },
      schema: {
        operationId: 'ready',
        tags,
        summary:
          'Readiness: the database and the secret backend answer, and this broker holds every key the other live brokers write with',
        response: {
          200: z.object({ status: z.literal('ready'), checks }),
          503: z.object({ status: z.literal('not_ready'), checks }),
        },
      },
    },
    async (request, reply) => {
      const seen: { ring?: KeyRingStatus } = {};
      const [database, secret_backend, ringProbe] = await Promise.all([
        probe(() => deps.db.ping()),
        probe(() => deps.secrets.healthCheck()),
        probe(async () => {
          seen.ring = await deps.keyRing.check();
        }),
      ]);
      const ring = seen.ring;
      const key_ring: 'ok' | 'behind' | 'unavailable' =
        ringProbe === 'ok' && ring !== undefined ? ring.status : 'unavailable';
      if (ring !== undefined && key_ring === 'behind')
        request.log.warn(
          {
            missing: ring.missing.map((m) => ({
              ring: m.ring,
              kid: m.kid,
              written_by: describeProcess(m.writer),
            })),
          },
          'key ring behind: another live broker writes with a key this one lacks; give this broker the key (restart it with the new key, or let it re-read its key file), see `nexus doctor`',
        );
      const result = { database, secret_backend, key_ring };
      if (database === 'ok' && secret_backend === 'ok' && key_ring === 'ok')
        return { status: 'ready' as const, checks: result };
      return reply.status(503).send({ status: 'not_ready' as const, checks: result });
    },
  );

  app.get(
    '/metrics',
    {
      config: { auth: deps.metricsPublic ? 'public' : 'admin' },
      schema: { hide: true },
    },
    async (_request, reply) =>
      reply.type(deps.metrics.registry.contentType).send(await deps.metrics.registry.metrics()),
  );
}
