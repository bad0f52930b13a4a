/**
 * The hosted capture page in a real browser (Debian `chromium`, driven by `playwright-core`):
 * its nonce CSP must let its own styles apply and the post-submit 303 reach the application,
 * HTML `required` must block an incomplete submission, and the link must work only once.
 * Chromium comes from `bash scripts/services.sh ensure-chromium` (never downloaded by Playwright).
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type Browser, chromium, type Page } from 'playwright-core';
import { json, startBroker, type TestBroker } from './harness.ts';

const CHROMIUM = '/usr/bin/chromium';
const WAIT = 20_000;
const PROVIDER = 'browser-test';
const CSP_VIOLATION = /content security policy|refused to/i;

/** Listens on an ephemeral loopback port and returns the port. */
function listen(server: Server): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port));
  });
}

/** A computed style property, read by the test runner (CDP is not subject to the page's CSP). */
function computedStyle(page: Page, selector: string, property: 'backgroundColor' | 'color'): Promise<string> {
  return page.evaluate<string>(
    `getComputedStyle(document.querySelector(${JSON.stringify(selector)})).${property}`,
  );
}

function assertNoCspViolations(messages: readonly string[], when: string): void {
  const violations = messages.filter((m) => CSP_VIOLATION.test(m));
  assert.deepEqual(violations, [], `CSP violations ${when}; console:\n${messages.join('\n')}`);
}

describe('static-credential capture page in a real browser', { timeout: 120_000 }, () => {
  let broker: TestBroker | undefined;
  let browser: Browser | undefined;
  let appServer: Server | undefined;
  let brokerOrigin = '';
  let appPort = 0;
  let screenshotDir = '';
  /** Every request the "application" received: path and query. */
  const appRequests: URL[] = [];

  before(async () => {
    assert.ok(
      existsSync(CHROMIUM),
      `${CHROMIUM} not found: install it with \`bash scripts/services.sh ensure-chromium\``,
    );
    broker = await startBroker();
    await broker.app.listen({ host: '127.0.0.1', port: 0 });
    const address = broker.app.server.address() as AddressInfo;
    brokerOrigin = `http://127.0.0.1:${address.port}`;

    appServer = createServer((req, res) => {
      appRequests.push(new URL(req.url ?? '/', 'http://app.invalid'));
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      res.end('<!doctype html><title>Application</title><h1>Back in the application</h1>');
    });
    appPort = await listen(appServer);

    const provider = await broker.request({
      method: 'POST',
      url: '/providers',
      payload: {
        profile: {
          name: PROVIDER,
          auth_type: 'header',
          params: {
            auth_strategy: { type: 'header', config: { header_name: 'X-Token', credential_field: 'token' } },
            credential_schema: {
              type: 'object',
              properties: {
                token: { type: 'string', title: 'API token', format: 'password' },
                account: { type: 'string', title: 'Account' },
              },
              required: ['token'],
            },
          },
        },
      },
    });
    assert.equal(provider.statusCode, 201, provider.body);

    screenshotDir = mkdtempSync(join(tmpdir(), 'nexus-browser-'));
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      timeout: WAIT,
      args: [
        '--no-sandbox',
        '--disable-background-networking',
        '--disable-gpu',
        '--disable-dev-shm-usage',
        '--disable-component-update',
        '--disable-sync',
        '--no-first-run',
      ],
    });
  });

  after(async () => {
    await browser?.close();
    if (appServer !== undefined) {
      const server = appServer;
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
    await broker?.close();
    if (screenshotDir !== '') rmSync(screenshotDir, { recursive: true, force: true });
  });

  async function newPage(): Promise<{ page: Page; console: string[] }> {
    const context = await browser!.newContext();
    const page = await context.newPage();
    page.setDefaultTimeout(WAIT);
    page.setDefaultNavigationTimeout(WAIT);
    const messages: string[] = [];
    page.on('console', (m) => messages.push(`${m.type()}: ${m.text()}`));
    page.on('pageerror', (e) => messages.push(`pageerror: ${e.message}`));
    return { page, console: messages };
  }

  it('renders under its CSP, enforces required fields, redirects to the app, and works once', async () => {
    const started = await broker!.request({
      method: 'POST',
      url: '/v1/request-connection',
      payload: {
        user_id: 'browser-user',
        provider_name: PROVIDER,
        return_url: `http://localhost:${appPort}/done`,
      },
    });
    assert.equal(started.statusCode, 200, started.body);
    const { connection_id, authUrl } = json<{ connection_id: string; authUrl: string }>(started);
    // authUrl is built from the configured BASE_URL; point it at the port we really listen on.
    const configured = new URL(authUrl);
    assert.equal(configured.pathname, '/connect/capture');
    const captureUrl = new URL(`${configured.pathname}${configured.search}`, brokerOrigin).toString();

    const { page, console: messages } = await newPage();
    const posts: string[] = [];
    page.on('request', (r) => {
      if (r.method() === 'POST') posts.push(r.url());
    });

    const loaded = await page.goto(captureUrl);
    assert.equal(loaded?.status(), 200);
    assert.match(
      loaded?.headers()['content-security-policy'] ?? '',
      /form-action 'self' http:\/\/localhost:/,
    );
    assert.equal(await page.title(), `Connect ${PROVIDER}`);
    assert.equal((await page.locator('h1').textContent())?.trim(), `Connect ${PROVIDER}`);
    assert.equal(await page.locator('script').count(), 0, 'the capture page must not contain scripts');
    const token = page.locator('input[name="token"]');
    const account = page.locator('input[name="account"]');
    assert.equal(await token.getAttribute('type'), 'password');
    assert.equal(await account.getAttribute('type'), 'text');
    assert.equal(await page.getByLabel('API token').getAttribute('name'), 'token');

    assertNoCspViolations(messages, 'on loading the form');
    // The nonce'd stylesheet applies (a blocked <style> would leave the browser defaults).
    const submit = page.getByRole('button', { name: 'Connect', exact: true });
    const connect = 'form[action="/connect/capture"] button[type="submit"]';
    assert.equal(await computedStyle(page, connect, 'backgroundColor'), 'rgb(31, 111, 235)');
    assert.equal(await computedStyle(page, connect, 'color'), 'rgb(255, 255, 255)');
    assert.equal(await computedStyle(page, 'body', 'backgroundColor'), 'rgb(246, 247, 249)');

    // The required token is missing: the browser refuses to submit.
    await account.fill('acme');
    await submit.click();
    await page.waitForTimeout(500);
    assert.equal(page.url(), captureUrl);
    assert.deepEqual(posts, [], 'an incomplete form must not be submitted');
    assert.equal(await page.locator('input[name="token"]:invalid').count(), 1);

    // A second tab holds the same form, to try submitting it again afterwards.
    const stale = await newPage();
    assert.equal((await stale.page.goto(captureUrl))?.status(), 200);

    const typed = `tok_${connection_id.slice(-8)}_secret`;
    await token.fill(typed);
    await account.fill('acme-browser');
    const screenshot = join(screenshotDir, 'capture-form.png');
    await page.screenshot({ path: screenshot, fullPage: true });
    const png = readFileSync(screenshot);
    assert.ok(png.length > 1000, `screenshot is only ${png.length} bytes`);
    assert.deepEqual([...png.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

    await submit.click();
    try {
      await page.waitForURL(
        (url) => url.origin === `http://localhost:${appPort}` && url.pathname === '/done',
        { timeout: WAIT },
      );
    } catch (error) {
      // A CSP form-action that omits the return origin blocks the 303 and leaves the page where it was.
      assert.fail(
        `the browser did not reach the application (at ${page.url()}): ${(error as Error).message}\nconsole:\n${messages.join('\n')}`,
      );
    }
    assertNoCspViolations(messages, 'on submitting');
    assert.equal((await page.locator('h1').textContent())?.trim(), 'Back in the application');
    const landed = new URL(page.url());
    assert.equal(landed.searchParams.get('status'), 'success');
    assert.equal(landed.searchParams.get('connection_id'), connection_id);
    assert.equal(landed.searchParams.get('provider'), PROVIDER);
    const received = appRequests.filter((u) => u.pathname === '/done');
    assert.equal(received.length, 1);
    assert.equal(received[0]!.searchParams.get('status'), 'success');
    assert.equal(received[0]!.searchParams.get('connection_id'), connection_id);
    assert.equal(received[0]!.searchParams.get('provider'), PROVIDER);
    assert.deepEqual(posts, [`${brokerOrigin}/connect/capture`]);

    const tokenRes = await broker!.request({ method: 'GET', url: `/v1/token/${connection_id}` });
    assert.equal(tokenRes.statusCode, 200, tokenRes.body);
    const stored = json<{
      strategy: { type: string; config: Record<string, string> };
      credentials: Record<string, string>;
    }>(tokenRes);
    assert.equal(stored.strategy.type, 'header');
    assert.equal(stored.strategy.config.header_name, 'X-Token');
    assert.equal(stored.credentials.token, typed);
    assert.equal(stored.credentials.account, 'acme-browser');

    // The link is used up: reloading it shows the expired page, without a form.
    const reloaded = await page.goto(captureUrl);
    assert.equal(reloaded?.status(), 404);
    assert.equal((await page.locator('h1').textContent())?.trim(), 'This link has expired');
    assert.equal(await page.locator('form').count(), 0);

    // The form left open in the other tab cannot submit a second time.
    await stale.page.locator('input[name="token"]').fill('second-attempt');
    const [second] = await Promise.all([
      stale.page.waitForResponse((r) => r.request().method() === 'POST', { timeout: WAIT }),
      stale.page.getByRole('button', { name: 'Connect', exact: true }).click(),
    ]);
    assert.equal(second.status(), 404);
    await stale.page.waitForLoadState('load');
    assert.equal((await stale.page.locator('h1').textContent())?.trim(), 'This link has expired');
    assert.equal(appRequests.filter((u) => u.pathname === '/done').length, 1);
    const afterSecond = json<{ credentials: Record<string, string> }>(
      await broker!.request({ method: 'GET', url: `/v1/token/${connection_id}` }),
    );
    assert.equal(afterSecond.credentials.token, typed);

    assertNoCspViolations([...messages, ...stale.console], 'on the expired pages');
  });
});
