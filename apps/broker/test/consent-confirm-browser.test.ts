/**
 * Consent bound to the person who asked (issue #21, decision 0017), in a real browser (Debian
 * `chromium`, driven by `playwright-core`; `bash scripts/services.sh ensure-chromium`) with two
 * browser contexts as two people, each signed in to a small application. The application asks for
 * connections with `verify: true`; its verifier page confirms the user signed in to it
 * (`POST /v1/connect/confirm`) and sends the browser on. Alice completing her own link gets a
 * connection; her link forwarded to Mallory, completed with Mallory's account at the provider,
 * ends in `user_mismatch`, and the grant is revoked at the provider (oidc-provider).
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import type { Browser, BrowserContext } from 'playwright-core';
import { CHROMIUM, launchChromium, WAIT } from './chromium.ts';
import { freePort } from './free-port.ts';
import { json, startBroker, type TestBroker } from './harness.ts';
import { type OidcFixture, startOidcProvider } from './oidc-fixture.ts';

function listen(server: Server, port = 0): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve((server.address() as AddressInfo).port));
  });
}

const signedIn = (req: IncomingMessage) => /(?:^|;\s*)app_user=([a-z]+)/.exec(req.headers.cookie ?? '')?.[1];

describe('a forwarded consent link, completed by someone else, is caught by the app', {
  timeout: 180_000,
}, () => {
  let broker: TestBroker | undefined;
  let idp: OidcFixture | undefined;
  let browser: Browser | undefined;
  let appServer: Server | undefined;
  let appOrigin = '';
  /** What the app's verifier page did: the user it confirmed and the broker's answer. */
  const confirmations: {
    flowId: string;
    user: string | undefined;
    status: number;
    body: Record<string, unknown>;
  }[] = [];

  before(async () => {
    assert.ok(
      existsSync(CHROMIUM),
      `${CHROMIUM} not found: run \`bash scripts/services.sh ensure-chromium\``,
    );
    // The application: sign-in by cookie, the verifier page, and the page users come back to.
    appServer = createServer((req, res) => {
      const url = new URL(req.url ?? '/', 'http://app.invalid');
      if (url.pathname === '/signin') {
        const user = url.searchParams.get('user') ?? '';
        res.writeHead(200, {
          'set-cookie': `app_user=${user}; Path=/; SameSite=Lax`,
          'content-type': 'text/html',
        });
        res.end(`<!doctype html><title>App</title><h1>Signed in as ${user}</h1>`);
        return;
      }
      if (url.pathname === '/verify') {
        // The app's server knows who is signed in, and says so to the broker.
        const user = signedIn(req);
        broker!
          .request({
            method: 'POST',
            url: '/v1/connect/confirm',
            payload: { flow_id: url.searchParams.get('flow_id') ?? '', user_id: user ?? 'nobody' },
          })
          .then((answer) => {
            const body = json(answer);
            confirmations.push({
              flowId: url.searchParams.get('flow_id') ?? '',
              user,
              status: answer.statusCode,
              body,
            });
            const next =
              typeof body.redirect_url === 'string' ? body.redirect_url : `${appOrigin}/done?status=error`;
            res.writeHead(303, { location: next });
            res.end();
          })
          .catch((error: unknown) => {
            res.writeHead(500);
            res.end(String(error));
          });
        return;
      }
      const status = url.searchParams.get('status') ?? '';
      const detail = url.searchParams.get('error') ?? url.searchParams.get('connection_id') ?? '';
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end(
        `<!doctype html><title>App</title><h1 id="outcome" data-status="${status}" data-detail="${detail}">${status}</h1>`,
      );
    });
    appOrigin = `http://localhost:${await listen(appServer)}`;
    const port = await freePort();
    const base = `http://127.0.0.1:${port}`;
    idp = await startOidcProvider({
      clients: [
        {
          client_id: 'verify-client',
          client_secret: 'verify-client-secret',
          token_endpoint_auth_method: 'client_secret_post',
          redirect_uris: [`${base}/auth/callback`],
        },
      ],
    });
    broker = await startBroker({
      env: { BASE_URL: base, NEXUS_CONNECT_VERIFIER_URL: `${appOrigin}/verify` },
    });
    await broker.app.listen({ host: '127.0.0.1', port });
    const created = await broker.request({
      method: 'POST',
      url: '/providers',
      payload: {
        profile: {
          name: 'demo-idp',
          client_id: 'verify-client',
          client_secret: 'verify-client-secret',
          issuer: idp.issuer,
          enable_discovery: true,
          scopes: ['openid', 'email'],
        },
      },
    });
    assert.equal(created.statusCode, 201, created.body);
    browser = await launchChromium();
  });

  after(async () => {
    await browser?.close();
    if (appServer !== undefined) {
      const server = appServer;
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
    await broker?.close();
    await idp?.close();
  });

  /** A person: their own browser context, signed in to the application. */
  async function person(user: string): Promise<BrowserContext> {
    const context = await browser!.newContext();
    context.setDefaultTimeout(WAIT);
    const page = await context.newPage();
    await page.goto(`${appOrigin}/signin?user=${user}`);
    await page.close();
    return context;
  }

  /** The app's server asks for a connection for `user`, to be confirmed. */
  async function askFor(user: string): Promise<{ authUrl: string; connection_id: string }> {
    const res = await broker!.request({
      method: 'POST',
      url: '/v1/request-connection',
      payload: { user_id: user, provider_name: 'demo-idp', return_url: `${appOrigin}/done`, verify: true },
    });
    assert.equal(res.statusCode, 200, res.body);
    return json(res);
  }

  /** Opens `authUrl` in `context`, signs in at the provider as `account` and consents; the app's final page. */
  async function consentAs(context: BrowserContext, authUrl: string, account: string) {
    const page = await context.newPage();
    await page.goto(authUrl);
    await page.locator('input[name="login"]').fill(account);
    await page.locator('input[type="password"]').fill('any-password');
    await page.locator('button[type="submit"]').click();
    await page.locator('button[type="submit"]', { hasText: 'Continue' }).click();
    const outcome = page.locator('#outcome');
    await outcome.waitFor();
    return {
      page,
      status: await outcome.getAttribute('data-status'),
      detail: await outcome.getAttribute('data-detail'),
    };
  }

  async function connectionStatus(id: string): Promise<string> {
    return json<{ status: string }>(
      await broker!.request({ method: 'GET', url: `/v1/check-connection/${id}` }),
    ).status;
  }

  it('Alice completes her own link: the app confirms her, and the connection is active', async () => {
    const alice = await person('alice');
    const asked = await askFor('alice');
    const done = await consentAs(alice, asked.authUrl, 'alice@example.com');
    assert.equal(done.status, 'success');
    assert.equal(done.detail, asked.connection_id);
    assert.equal(confirmations.at(-1)?.user, 'alice');
    assert.equal(await connectionStatus(asked.connection_id), 'active');
    await alice.close();
  });

  it('Alice’s link forwarded to Mallory: the app confirms Mallory, the connection fails and the grant is revoked', async () => {
    const alice = await person('alice');
    const mallory = await person('mallory');
    const asked = await askFor('alice');
    const revocationsBefore = idp!.counts.revocation;
    // Alice never opens it; Mallory does, with her own account at the provider.
    const done = await consentAs(mallory, asked.authUrl, 'mallory@example.com');
    assert.equal(done.status, 'failed');
    assert.equal(done.detail, 'user_mismatch');
    const last = confirmations.at(-1)!;
    assert.equal(last.user, 'mallory');
    assert.equal(last.status, 200);
    assert.equal(last.body.error, 'user_mismatch');
    assert.equal(last.body.provider_revoked, true);
    assert.equal(await connectionStatus(asked.connection_id), 'failed');
    assert.ok(idp!.counts.revocation > revocationsBefore, 'the grant was revoked at the provider');
    const audited = await broker!.container.db.kysely
      .selectFrom('audit_events')
      .select(['action', 'details'])
      .where('resource_id', '=', asked.connection_id)
      .where('action', '=', 'connection.failed')
      .execute();
    assert.equal(audited.length, 1);
    assert.match(audited[0]!.details!, /user_mismatch/);
    // Opening the verifier page again with the same flow_id changes nothing.
    await done.page.goto(`${appOrigin}/verify?flow_id=${encodeURIComponent(last.flowId)}`);
    assert.equal(await done.page.locator('#outcome').getAttribute('data-status'), 'error');
    assert.equal(confirmations.at(-1)!.status, 409);
    assert.equal(await connectionStatus(asked.connection_id), 'failed');
    await alice.close();
    await mallory.close();
  });
});
