/**
 * The hosted connect experience in a real browser (Debian `chromium`, driven by `playwright-core`;
 * `bash scripts/services.sh ensure-chromium`): an application page embeds `@nexus-broker/connect`
 * (its built file, packages/connect/dist), opens a session in a popup, and the user goes through
 * the broker's pages and a real OpenID provider's login and consent pages (oidc-provider). The
 * promise resolves with the connection id, or rejects with 'closed' or 'denied'. axe-core runs on
 * every connect page; screenshots as chromium.ts says (SCREENSHOTS).
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { CHROMIUM, launchChromium, SCREENSHOTS, WAIT } from './chromium.ts';
import { json, startBroker, type TestBroker } from './harness.ts';
import { type OidcFixture, startOidcProvider } from './oidc-fixture.ts';

const ROOT = join(import.meta.dirname, '..', '..', '..');
const PACKAGE = join(ROOT, 'packages', 'connect', 'dist', 'index.js');
const AXE = readFileSync(join(ROOT, 'node_modules', 'axe-core', 'axe.min.js'), 'utf8');
const PHONE = { width: 390, height: 844 };
const CSP_VIOLATION = /content security policy|refused to/i;

function listen(server: Server, port = 0): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve((server.address() as AddressInfo).port));
  });
}

async function freePort(): Promise<number> {
  const probe = createServer();
  const port = await listen(probe);
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return port;
}

/** axe-core in the page (evaluated through the protocol, so the page's CSP does not apply to it). */
async function assertAccessible(page: Page, where: string): Promise<void> {
  await page.evaluate(AXE);
  const violations = await page.evaluate<{ id: string; impact: string; nodes: string[] }[]>(
    `axe.run(document, { resultTypes: ['violations'] }).then((r) => r.violations
      .filter((v) => v.impact === 'serious' || v.impact === 'critical')
      .map((v) => ({ id: v.id, impact: v.impact, nodes: v.nodes.map((n) => n.html).slice(0, 3) })))`,
  );
  assert.deepEqual(violations, [], `axe on ${where}: ${JSON.stringify(violations, null, 2)}`);
}

/** The page fits a phone: nothing wider than the viewport. */
async function assertFitsPhone(page: Page, where: string): Promise<void> {
  const overflow = await page.evaluate<number>('document.documentElement.scrollWidth - window.innerWidth');
  assert.ok(overflow <= 0, `${where} scrolls sideways on a phone (${overflow}px)`);
}

const APP_PAGE = `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Demo application</title></head>
<body><main><h1>Demo application</h1><button id="connect" type="button">Connect an account</button>
<output id="result"></output></main><script type="module" src="/app.js"></script></body></html>`;
const APP_SCRIPT = `import { openConnect } from '/connect.js';
const url = new URLSearchParams(location.search).get('session');
const out = document.getElementById('result');
document.getElementById('connect').addEventListener('click', () => {
  openConnect({ url }).then(
    (r) => { out.dataset.result = JSON.stringify({ connectionId: r.connectionId, provider: r.provider }); },
    (e) => { out.dataset.result = JSON.stringify({ error: e.name, reason: e.reason, code: e.code }); },
  );
});`;

const LOGO = `<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64" viewBox="0 0 64 64"><rect width="64" height="64" rx="14" fill="#5b21b6"/><path d="M18 44 32 18l14 26z" fill="#fff"/></svg>`;

describe('hosted connect in a popup, with @nexus-broker/connect', { timeout: 180_000 }, () => {
  let broker: TestBroker | undefined;
  let idp: OidcFixture | undefined;
  let browser: Browser | undefined;
  let appServer: Server | undefined;
  let appOrigin = '';

  before(async () => {
    assert.ok(
      existsSync(CHROMIUM),
      `${CHROMIUM} not found: run \`bash scripts/services.sh ensure-chromium\``,
    );
    assert.ok(existsSync(PACKAGE), `${PACKAGE} not built: run \`npm run build -w @nexus-broker/connect\``);
    const connectJs = readFileSync(PACKAGE, 'utf8');
    appServer = createServer((req, res) => {
      const path = new URL(req.url ?? '/', 'http://app.invalid').pathname;
      const [type, body] =
        path === '/connect.js'
          ? ['text/javascript', connectJs]
          : path === '/app.js'
            ? ['text/javascript', APP_SCRIPT]
            : path === '/logo.svg'
              ? ['image/svg+xml', LOGO]
              : ['text/html; charset=utf-8', APP_PAGE];
      res.writeHead(200, { 'content-type': type });
      res.end(body);
    });
    appOrigin = `http://localhost:${await listen(appServer)}`;
    const port = await freePort();
    const base = `http://127.0.0.1:${port}`;
    idp = await startOidcProvider({
      clients: [
        {
          client_id: 'connect-client',
          client_secret: 'connect-client-secret',
          token_endpoint_auth_method: 'client_secret_post',
          redirect_uris: [`${base}/auth/callback`],
        },
      ],
    });
    broker = await startBroker({
      env: {
        BASE_URL: base,
        NEXUS_CONNECT_BRAND_NAME: 'Acme Cloud',
        NEXUS_CONNECT_BRAND_COLOR: '#5b21b6',
        // The application's own logo: its origin is the pages' only img-src.
        NEXUS_CONNECT_BRAND_LOGO_URL: `${appOrigin}/logo.svg`,
      },
    });
    await broker.app.listen({ host: '127.0.0.1', port });
    for (const profile of [
      {
        name: 'demo-idp',
        description: 'The demo identity provider',
        client_id: 'connect-client',
        client_secret: 'connect-client-secret',
        issuer: idp.issuer,
        enable_discovery: true,
        scopes: ['openid', 'email'],
      },
      {
        name: 'keyed',
        auth_type: 'api_key',
        description: 'An API with keys',
        params: {
          capture_help: 'Create a key under Settings → API keys, with read access.',
          docs_url: 'https://docs.example.com/keys',
        },
      },
    ]) {
      const created = await broker.request({ method: 'POST', url: '/providers', payload: { profile } });
      assert.equal(created.statusCode, 201, created.body);
    }

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

  async function session(
    providers?: string[],
  ): Promise<{ id: string; url: string; providers: { id: string; name: string }[] }> {
    const res = await broker!.request({
      method: 'POST',
      url: '/v1/connect-sessions',
      payload: {
        user_id: 'browser-user',
        return_url: `${appOrigin}/done`,
        ...(providers ? { providers } : {}),
      },
    });
    assert.equal(res.statusCode, 201, res.body);
    return json(res);
  }

  /** The app page in a fresh context (no provider cookies), the popup it opens, and what the page logged. */
  async function openPopup(
    url: string,
  ): Promise<{ context: BrowserContext; app: Page; popup: Page; console: string[] }> {
    const context = await browser!.newContext({ viewport: PHONE });
    context.setDefaultTimeout(WAIT);
    const messages: string[] = [];
    context.on('console', (m) => messages.push(`${m.type()}: ${m.text()}`));
    const app = await context.newPage();
    await app.goto(`${appOrigin}/?session=${encodeURIComponent(url)}`);
    const [popup] = await Promise.all([app.waitForEvent('popup'), app.click('#connect')]);
    // A page that ends the session at once (expired) is closed by the package as it loads.
    await popup.waitForLoadState().catch((error: unknown) => {
      if (!popup.isClosed()) throw error;
    });
    return { context, app, popup, console: messages };
  }

  async function outcome(app: Page): Promise<Record<string, string>> {
    const handle = await app.waitForSelector('#result[data-result]', { state: 'attached', timeout: WAIT });
    return JSON.parse((await handle.getAttribute('data-result'))!) as Record<string, string>;
  }

  it('resolves with the connection id after consent at the identity provider', async () => {
    const s = await session();
    const { context, app, popup, console: messages } = await openPopup(s.url);
    await popup.getByRole('heading', { level: 1, name: 'Connect an account' }).waitFor();
    assert.equal(await popup.title(), 'Connect an account · Acme Cloud');
    assert.equal(await popup.locator('script').count(), 0, 'the offer page has no script');
    // The accent colour applies (the nonce'd stylesheet is not blocked).
    assert.equal(
      await popup.evaluate<string>(`getComputedStyle(document.querySelector('main')).borderTopColor`),
      'rgb(91, 33, 182)',
    );
    // The operator's logo loads from its own origin, the one img-src the CSP allows.
    assert.ok((await popup.evaluate<number>(`document.querySelector('header.brand img').naturalWidth`)) > 0);
    await assertAccessible(popup, 'the offer page');
    await assertFitsPhone(popup, 'the offer page');
    await popup.screenshot({ path: join(SCREENSHOTS, 'connect-providers.png'), fullPage: true });
    // The same page opened full screen on a phone (390 px): opening it does not use the session.
    const phone = await context.newPage();
    await phone.goto(s.url);
    await phone.getByRole('heading', { level: 1, name: 'Connect an account' }).waitFor();
    await assertFitsPhone(phone, 'the offer page on a phone');
    await phone.close();

    await popup.getByRole('link', { name: /demo-idp/ }).click();
    // The provider's own pages (oidc-provider's devInteractions): sign in, then consent.
    await popup.locator('input[name="login"]').fill('browser-user@example.com');
    await popup.locator('input[type="password"]').fill('any-password');
    await popup.locator('button[type="submit"]').click();
    await popup.locator('button[type="submit"]', { hasText: 'Continue' }).click();
    const result = await outcome(app);
    assert.ok(result.connectionId, JSON.stringify(result));
    assert.equal(result.provider, 'demo-idp');
    const check = await broker!.request({
      method: 'GET',
      url: `/v1/check-connection/${result.connectionId}`,
    });
    assert.equal(json<{ status: string }>(check).status, 'active');
    assert.equal(popup.isClosed(), true, 'the package closes the popup');
    assert.deepEqual(
      messages.filter((m) => CSP_VIOLATION.test(m)),
      [],
    );
    await context.close();
  });

  it('shows the capture form with help, docs and cancel, and resolves after the credentials are stored', async () => {
    const s = await session(['keyed']);
    const { context, app, popup } = await openPopup(s.url);
    await popup.getByRole('link', { name: /keyed/ }).click();
    await popup.getByRole('heading', { level: 1, name: 'Connect keyed' }).waitFor();
    await popup.getByText('Create a key under Settings → API keys, with read access.').waitFor();
    assert.equal(
      await popup.getByRole('link', { name: /documentation/ }).getAttribute('href'),
      'https://docs.example.com/keys',
    );
    assert.equal(
      await popup.getByRole('button', { name: 'Cancel and return to the application' }).count(),
      1,
    );
    assert.equal(
      await popup.evaluate<string>(`getComputedStyle(document.querySelector('button')).backgroundColor`),
      'rgb(91, 33, 182)',
      'the capture form carries the brand too',
    );
    await assertAccessible(popup, 'the capture page');
    await assertFitsPhone(popup, 'the capture page');
    await popup.screenshot({ path: join(SCREENSHOTS, 'connect-capture.png'), fullPage: true });

    // Seen before the package closes the popup: the success page, in a second tab of the same session.
    await popup.getByLabel(/API key/i).fill('key-1234567890');
    await popup.getByRole('button', { name: 'Connect' }).click();
    const result = await outcome(app);
    assert.equal(result.provider, 'keyed');
    const finish = await context.newPage();
    await finish.goto(`${new URL(s.url).origin}/connect/finish?session=${s.id}`);
    await finish.getByRole('heading', { level: 1, name: 'Connected' }).waitFor();
    assert.equal(
      await finish.getByRole('link', { name: 'Return to the application' }).getAttribute('href'),
      `${appOrigin}/done?status=success&connection_id=${result.connectionId}&provider=keyed`,
    );
    await assertAccessible(finish, 'the success page');
    await finish.screenshot({ path: join(SCREENSHOTS, 'connect-success.png'), fullPage: true });
    await context.close();
  });

  it("rejects with 'denied' when the user cancels at the identity provider", async () => {
    const s = await session(['demo-idp']);
    const { context, app, popup } = await openPopup(s.url);
    await popup.getByRole('link', { name: /demo-idp/ }).click();
    await popup.getByRole('link', { name: '[ Cancel ]' }).click();
    const result = await outcome(app);
    assert.deepEqual(result, { error: 'ConnectError', reason: 'denied', code: 'access_denied' });
    // The same outcome, as the page showed it.
    const page = await context.newPage();
    await page.goto(
      `${new URL(s.url).origin}/connect/finish?session=${s.id}&status=failed&error=access_denied`,
    );
    await page.getByRole('heading', { level: 1, name: 'Not connected' }).waitFor();
    await assertAccessible(page, 'the failure page');
    await page.screenshot({ path: join(SCREENSHOTS, 'connect-denied.png'), fullPage: true });
    await context.close();
  });

  it("rejects with 'closed' when the user closes the popup, and 'expired' when the session was used", async () => {
    const s = await session(['demo-idp']);
    const first = await openPopup(s.url);
    await first.popup.close();
    assert.deepEqual(await outcome(first.app), { error: 'ConnectError', reason: 'closed' });
    await first.context.close();

    // Used up by a pick (here without a browser), the same URL ends at once with 'expired'.
    const picked = await broker!.request({
      method: 'GET',
      url: `/connect/session/pick?token=${new URL(s.url).searchParams.get('token')}&provider=${s.providers[0]!.id}`,
      key: null,
    });
    assert.equal(picked.statusCode, 303, picked.body);
    const second = await openPopup(s.url);
    assert.deepEqual(await outcome(second.app), {
      error: 'ConnectError',
      reason: 'expired',
      code: 'session_expired',
    });
    // Opened without an opener (no popup: nothing closes it), the page says what happened.
    const direct = await second.context.newPage();
    await direct.goto(s.url);
    await direct.getByRole('heading', { level: 1, name: 'This link has expired' }).waitFor();
    await assertAccessible(direct, 'the expired page');
    await assertFitsPhone(direct, 'the expired page');
    await second.context.close();
  });
});
