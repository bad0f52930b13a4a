/**
 * The demo OpenID provider of `nexus dev`: panva's `oidc-provider` on 127.0.0.1 only, with one
 * client (the dev broker), one account with a published password, and its own login and consent
 * pages, each under a "demo" banner (demo-page.ts). It keeps everything in memory: a restart
 * forgets its sessions and grants, so a demo connection made before a restart cannot refresh.
 *
 * `oidc-provider` is loaded here, by a dynamic import, and this file is imported only by
 * `nexus dev`: `nexus serve` never pays for it, and the bundle leaves it outside (build.mjs).
 */
import { generateKeyPair, randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { promisify } from 'node:util';
import { consentPage, DEMO_LOGIN, DEMO_PASSWORD, errorPage, homePage, loginPage } from './demo-idp-pages.ts';
import type { DemoPage } from './demo-page.ts';

const FORM_LIMIT = 8 * 1024;

// oidc-provider ships no type declarations: the few parts used here, typed loosely.
interface Interaction {
  uid: string;
  prompt: { name: string; details: Record<string, unknown> };
  params: Record<string, unknown>;
  session?: { accountId?: string };
  grantId?: string;
}
interface GrantInstance {
  addOIDCScope(scope: string): void;
  addOIDCClaims(claims: string[]): void;
  save(): Promise<string>;
}
interface ProviderInstance {
  interactionDetails(req: IncomingMessage, res: ServerResponse): Promise<Interaction>;
  interactionFinished(
    req: IncomingMessage,
    res: ServerResponse,
    result: Record<string, unknown>,
    options?: { mergeWithLastSubmission?: boolean },
  ): Promise<void>;
  callback(): (req: IncomingMessage, res: ServerResponse) => void;
  Grant: {
    new (init: { accountId: string; clientId: string }): GrantInstance;
    find(id: string): Promise<GrantInstance | undefined>;
  };
}
type ProviderConstructor = new (issuer: string, configuration: Record<string, unknown>) => ProviderInstance;

/** A non-literal specifier: the module is untyped, and esbuild must leave it out of the bundle. */
const OIDC_PROVIDER_MODULE: string = 'oidc-provider';

export interface DemoIdp {
  readonly issuer: string;
  readonly port: number;
  close(): Promise<void>;
}

export interface DemoIdpOptions {
  /** 0: an ephemeral port. */
  readonly port: number;
  readonly client: { id: string; secret: string; redirectUri: string };
}

/** Starts the demo provider on 127.0.0.1 (never another address). */
export async function startDemoIdp(options: DemoIdpOptions): Promise<DemoIdp> {
  const { Provider } = (await import(OIDC_PROVIDER_MODULE)) as { Provider: ProviderConstructor };
  const { privateKey } = await promisify(generateKeyPair)('rsa', { modulusLength: 2048 });
  const signingKey = { ...privateKey.export({ format: 'jwk' }), kid: 'demo', alg: 'RS256', use: 'sig' };

  let handle: (req: IncomingMessage, res: ServerResponse) => void = (_req, res) => {
    res.writeHead(503).end();
  };
  const server = createServer((req, res) => handle(req, res));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  const issuer = `http://127.0.0.1:${port}`;

  const provider = quietly(
    () =>
      new Provider(issuer, {
        clients: [
          {
            client_id: options.client.id,
            client_secret: options.client.secret,
            redirect_uris: [options.client.redirectUri],
            grant_types: ['authorization_code', 'refresh_token'],
            response_types: ['code'],
            token_endpoint_auth_method: 'client_secret_post',
            id_token_signed_response_alg: 'RS256',
          },
        ],
        jwks: { keys: [signingKey] },
        cookies: { keys: [randomBytes(32).toString('base64url')] },
        features: {
          devInteractions: { enabled: false },
          rpInitiatedLogout: { enabled: false },
          revocation: { enabled: true },
          userinfo: { enabled: true },
        },
        pkce: { required: () => true },
        scopes: ['openid', 'offline_access', 'profile', 'email'],
        claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name'] },
        // The broker asks for no offline_access: a refresh token comes with the client's grant type.
        issueRefreshToken: async (_ctx: unknown, client: { grantTypeAllowed(type: string): boolean }) =>
          client.grantTypeAllowed('refresh_token'),
        findAccount: async (_ctx: unknown, sub: string) =>
          sub === DEMO_LOGIN
            ? {
                accountId: sub,
                claims: async () => ({
                  sub,
                  email: 'demo@example.test',
                  email_verified: true,
                  name: 'Demo User',
                }),
              }
            : undefined,
        renderError: async (
          ctx: { type: string; body: string; status: number },
          out: Record<string, unknown>,
        ) => {
          const page = errorPage(String(out.error ?? 'error'), String(out.error_description ?? ''));
          ctx.type = 'html';
          ctx.body = page.html;
        },
      }),
  );
  const callback = provider.callback();
  // Chromium applies form-action to the redirects after a submission: the last one is the broker's.
  const brokerOrigin = new URL(options.client.redirectUri).origin;

  handle = (req, res) => {
    const url = new URL(req.url ?? '/', issuer);
    const match = /^\/interaction\/([\w-]{1,64})(?:\/(login|confirm|abort))?$/.exec(url.pathname);
    if (match === null) {
      if (url.pathname === '/') return send(res, 200, homePage(issuer));
      return callback(req, res);
    }
    const [, , action] = match;
    interaction(provider, req, res, action, brokerOrigin).catch((error: unknown) => {
      if (res.headersSent) return res.destroy();
      send(res, 400, errorPage('interaction_failed', (error as Error).message ?? 'unknown error'));
    });
  };

  return {
    issuer,
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/**
 * Memory is what the demo wants (nothing of the demo provider outlives its process), so the
 * package's warning about its in-memory adapter is dropped; any other warning passes through.
 */
function quietly<T>(construct: () => T): T {
  const warn = console.warn;
  console.warn = (...args: unknown[]) => {
    if (typeof args[0] === 'string' && args[0].includes('in-memory adapter')) return;
    warn.apply(console, args);
  };
  try {
    return construct();
  } finally {
    console.warn = warn;
  }
}

/** The login and consent steps, on the provider's own interaction session. */
async function interaction(
  provider: ProviderInstance,
  req: IncomingMessage,
  res: ServerResponse,
  action: string | undefined,
  brokerOrigin: string,
): Promise<void> {
  const details = await provider.interactionDetails(req, res);
  const clientId = String(details.params.client_id ?? '');
  if (req.method === 'GET' && action === undefined) {
    if (details.prompt.name === 'login')
      return send(res, 200, loginPage(details.uid, clientId, brokerOrigin));
    return send(
      res,
      200,
      consentPage(details.uid, clientId, String(details.params.scope ?? ''), brokerOrigin),
    );
  }
  if (req.method !== 'POST') return send(res, 405, errorPage('method_not_allowed', 'Use the form.'));
  const form = await readForm(req);
  if (action === 'abort')
    return provider.interactionFinished(
      req,
      res,
      { error: 'access_denied', error_description: 'The demo user denied the request.' },
      { mergeWithLastSubmission: false },
    );
  if (action === 'login' && details.prompt.name === 'login') {
    if (form.get('login') !== DEMO_LOGIN || form.get('password') !== DEMO_PASSWORD)
      return send(res, 200, loginPage(details.uid, clientId, brokerOrigin, true));
    return provider.interactionFinished(
      req,
      res,
      { login: { accountId: DEMO_LOGIN } },
      { mergeWithLastSubmission: false },
    );
  }
  if (action === 'confirm' && details.prompt.name === 'consent') {
    const accountId = details.session?.accountId ?? DEMO_LOGIN;
    const grant =
      (details.grantId === undefined ? undefined : await provider.Grant.find(details.grantId)) ??
      new provider.Grant({ accountId, clientId });
    const missing = details.prompt.details;
    if (Array.isArray(missing.missingOIDCScope)) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
    if (Array.isArray(missing.missingOIDCClaims)) grant.addOIDCClaims(missing.missingOIDCClaims as string[]);
    return provider.interactionFinished(
      req,
      res,
      { consent: { grantId: await grant.save() } },
      { mergeWithLastSubmission: true },
    );
  }
  send(res, 400, errorPage('unexpected_step', `This step (${details.prompt.name}) does not take that form.`));
}

async function readForm(req: IncomingMessage): Promise<URLSearchParams> {
  let body = '';
  for await (const chunk of req) {
    body += String(chunk);
    if (body.length > FORM_LIMIT) throw new Error('The form is too large.');
  }
  return new URLSearchParams(body);
}

function send(res: ServerResponse, status: number, page: DemoPage): void {
  res.writeHead(status, page.headers).end(page.html);
}
