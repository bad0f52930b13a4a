/**
 * `nexus dev`: see a consent happen in a minute. The broker on its embedded defaults (a SQLite
 * file under `.nexus/dev`, the in-process cache, the internal secret backend, development mode,
 * generated keys) on 127.0.0.1, with a demo OpenID provider beside it (demo-idp.ts), the demo
 * provider and agent registered (demo-setup.ts) and the `/dev` pages (dev-pages.ts). It prints one
 * URL; opening it walks a person through the consent in their own browser.
 *
 * Never in production: a production mode (NEXUS_ENV, or NODE_ENV) is refused before anything
 * starts, and the broker and the demo provider listen on loopback only.
 */
import { randomBytes } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import type { Container } from '../../container.ts';
import { CliExit } from '../context.ts';
import { startDemoIdp } from '../dev/demo-idp.ts';
import { DEMO_AGENT, DEMO_CLIENT_ID, DEMO_PROVIDER, registerDemo } from '../dev/demo-setup.ts';
import { devPages } from '../dev/dev-pages.ts';
import type { Io } from '../output.ts';
import { type ServeExtension, serve } from './serve.ts';

export interface DevOptions {
  /** `--port`: the broker's port (else PORT, else 8080). */
  readonly port?: string | undefined;
  /** `--idp-port`: the demo identity provider's port (else any free port). */
  readonly idpPort?: string | undefined;
}

const DEFAULT_DATA_DIR = '.nexus/dev';

/** Runs until SIGINT/SIGTERM, like `nexus serve`. */
export async function dev(io: Io, env: NodeJS.ProcessEnv, options: DevOptions): Promise<number> {
  if (env.NEXUS_ENV === 'production' || (env.NEXUS_ENV === undefined && env.NODE_ENV === 'production'))
    throw new CliExit(
      '`nexus dev` runs a demo identity provider with a published password: it refuses production mode (NEXUS_ENV or NODE_ENV is production). Run `nexus serve` instead.',
      2,
    );
  const port = portFrom('--port', options.port ?? env.PORT ?? '8080', false);
  const idpPort = portFrom('--idp-port', options.idpPort ?? '0', true);
  const devEnv: NodeJS.ProcessEnv = {
    ...env,
    NEXUS_ENV: env.NEXUS_ENV ?? 'development',
    HOST: '127.0.0.1',
    PORT: String(port),
    NEXUS_DATA_DIR: env.NEXUS_DATA_DIR || DEFAULT_DATA_DIR,
    // The demo provider redirects to the broker's own loopback URL: a BASE_URL elsewhere, or a
    // split admin listener, would break the walk-through.
    BASE_URL: undefined,
    ADMIN_PORT: undefined,
  };
  return serve(io, devEnv, {
    migrate: true,
    worker: true,
    role: 'all',
    extend: (app, container) => extend(io, app, container, idpPort),
  });
}

function portFrom(flag: string, value: string, zeroAllowed: boolean): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < (zeroAllowed ? 0 : 1) || n > 65_535)
    throw new CliExit(`${flag} must be a port number from ${zeroAllowed ? 0 : 1} to 65535 (got ${value})`, 2);
  return n;
}

async function extend(
  io: Io,
  app: FastifyInstance,
  container: Container,
  idpPort: number,
): Promise<ServeExtension> {
  const { config } = container;
  // Checked again on the loaded configuration (NODE_ENV=production with NEXUS_ENV unset, etc.).
  if (config.mode === 'production') throw new CliExit('`nexus dev` refuses production mode.', 2);
  const baseUrl = config.http.baseUrl;
  const clientSecret = randomBytes(32).toString('base64url');
  const idp = await startDemoIdp({
    port: idpPort,
    client: {
      id: DEMO_CLIENT_ID,
      secret: clientSecret,
      redirectUri: `${baseUrl}${config.http.redirectPath}`,
    },
  }).catch((error: unknown) => {
    if ((error as NodeJS.ErrnoException).code === 'EADDRINUSE')
      throw new CliExit(
        `The demo identity provider's port ${idpPort} is in use: choose another with --idp-port.`,
        2,
      );
    throw error;
  });
  try {
    const demo = await registerDemo(container, { issuer: idp.issuer, clientSecret });
    devPages(app, {
      baseUrl,
      providerId: demo.providerId,
      agentSecret: demo.agentSecret,
      consent: container.consent,
      connections: container.connections,
    });
    const said = (created: boolean) => (created ? 'registered' : 'reused');
    return {
      ready(url) {
        io.err(
          [
            '',
            `nexus dev: development mode, data in ${config.dataDir}`,
            `  demo identity provider on 127.0.0.1:${idp.port} (user demo, password demo)`,
            `  demo provider "${DEMO_PROVIDER}" ${demo.providerId}: ${said(demo.providerCreated)}`,
            `  demo agent "${DEMO_AGENT}" ${demo.agentId}: ${said(demo.agentCreated)}`,
            '',
            `Open ${url}/dev in your browser to connect the demo account.`,
            '',
          ].join('\n'),
        );
      },
      close: () => idp.close(),
    };
  } catch (error) {
    await idp.close();
    throw error;
  }
}
