/**
 * Issue #18: a value with a control character (here a tab and an escape pasted with the key) is
 * refused by the hosted capture page in a real browser (Debian `chromium`, driven by
 * `playwright-core`): the refusal is shown under the field it concerns, nothing is stored, and the
 * same link then accepts the corrected values and reaches the application.
 * Chromium comes from `bash scripts/services.sh ensure-chromium` (never downloaded by Playwright).
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { type Browser, chromium } from 'playwright-core';
import { json, startBroker, type TestBroker } from './harness.ts';

const CHROMIUM = '/usr/bin/chromium';
const WAIT = 20_000;
const PROVIDER = 'browser-values';

describe('capture page refuses control characters in a real browser', { timeout: 120_000 }, () => {
  let broker: TestBroker | undefined;
  let browser: Browser | undefined;
  let appServer: Server | undefined;
  let brokerOrigin = '';
  let appPort = 0;
  const appRequests: URL[] = [];

  before(async () => {
    assert.ok(
      existsSync(CHROMIUM),
      `${CHROMIUM} not found: install it with \`bash scripts/services.sh ensure-chromium\``,
    );
    broker = await startBroker();
    await broker.app.listen({ host: '127.0.0.1', port: 0 });
    brokerOrigin = `http://127.0.0.1:${(broker.app.server.address() as AddressInfo).port}`;
    appServer = createServer((req, res) => {
      appRequests.push(new URL(req.url ?? '/', 'http://app.invalid'));
      res
        .writeHead(200, { 'content-type': 'text/html; charset=utf-8' })
        .end('<h1>Back in the application</h1>');
    });
    await new Promise<void>((resolve) => appServer!.listen(0, '127.0.0.1', resolve));
    appPort = (appServer.address() as AddressInfo).port;
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
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      timeout: WAIT,
      args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--no-first-run'],
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
  });

  it('shows the refusal next to the field, stores nothing, then accepts the corrected form', async () => {
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
    const configured = new URL(authUrl);
    const captureUrl = new URL(`${configured.pathname}${configured.search}`, brokerOrigin).toString();

    const page = await (await browser!.newContext()).newPage();
    page.setDefaultTimeout(WAIT);
    const messages: string[] = [];
    page.on('console', (m) => messages.push(`${m.type()}: ${m.text()}`));
    assert.equal((await page.goto(captureUrl))?.status(), 200);

    // A key pasted from a spreadsheet cell keeps its tab; an account name with an escape character.
    const pasted = 'tok_pasted\tsecret';
    await page.locator('input[name="token"]').fill(pasted);
    await page.locator('input[name="account"]').fill('acme\x1b');
    assert.equal(await page.locator('input[name="token"]').inputValue(), pasted, 'the browser kept the tab');
    const [refused] = await Promise.all([
      page.waitForResponse((r) => r.request().method() === 'POST'),
      page.getByRole('button', { name: 'Connect', exact: true }).click(),
    ]);
    assert.equal(refused.status(), 400);
    await page.waitForLoadState('load');

    // Each message is the element right after its input, and the input points at it.
    for (const name of ['token', 'account']) {
      const error = page.locator(`input[name="${name}"] + p.field-error`);
      assert.equal(await error.count(), 1, `${name}: no message next to the field`);
      assert.match((await error.textContent()) ?? '', /control character/);
      assert.equal(await error.getAttribute('id'), `f-${name}-error`);
      const input = page.locator(`input[name="${name}"]`);
      assert.equal(await input.getAttribute('aria-invalid'), 'true');
      assert.equal(await input.getAttribute('aria-describedby'), `f-${name}-error`);
    }
    // Styled by the nonce'd stylesheet: the page's CSP let it apply.
    assert.equal(
      await page.evaluate<string>(`getComputedStyle(document.querySelector('p.field-error')).color`),
      'rgb(207, 34, 46)',
    );
    assert.ok(!(await page.content()).includes('tok_pasted'), 'the refused value is not echoed');
    assert.deepEqual(
      messages.filter((m) => /content security policy|refused to/i.test(m)),
      [],
    );
    const pending = await broker!.request({ method: 'GET', url: `/v1/check-connection/${connection_id}` });
    assert.equal(json<{ status: string }>(pending).status, 'pending', 'nothing was stored');

    // The same link, corrected.
    await page.locator('input[name="token"]').fill('tok_clean_secret');
    await page.locator('input[name="account"]').fill('acme');
    await page.getByRole('button', { name: 'Connect', exact: true }).click();
    await page.waitForURL((url) => url.port === String(appPort) && url.pathname === '/done');
    assert.equal(new URL(page.url()).searchParams.get('status'), 'success');
    assert.equal(appRequests.filter((u) => u.pathname === '/done').length, 1);
    const token = json<{ credentials: Record<string, string> }>(
      await broker!.request({ method: 'GET', url: `/v1/token/${connection_id}` }),
    );
    assert.deepEqual(token.credentials, { token: 'tok_clean_secret', account: 'acme' });
  });
});
