/**
 * Issue #21, the operator console at /console, in a real browser (Debian `chromium` driven by
 * `playwright-core`, as capture-browser.test.ts): an operator signs in with an admin key, registers
 * a provider from the form, sees a connection made through a real OpenID provider (oidc-provider,
 * oidc-fixture.ts), refreshes it (through the admin refresh, which answers no credential) and
 * revokes it, finds the revocation in the audit log and verifies the audit chain; a
 * read-only key sees no button that changes state and the API refuses it anyway; axe-core finds
 * no serious or critical violation on any page, on a laptop and on a phone. Screenshots go to
 * docs/screenshots/ with `npm run screenshots` (README and docs/console.md show them).
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { buildConsole } from '../console/build.mjs';
import {
  assertAccessible,
  assertNoCspViolation,
  go,
  LAPTOP,
  launchChromium,
  PAGES,
  PHONE,
  shot,
  signIn,
  WAIT,
} from './console-browser-kit.ts';
import { json, startBroker, type TestBroker } from './harness.ts';
import { type OidcFixture, startOidcProvider } from './oidc-fixture.ts';

const REDIRECT = 'http://127.0.0.1:8080/auth/callback';

describe('operator console in a real browser', { timeout: 240_000 }, () => {
  let broker: TestBroker;
  let idp: OidcFixture;
  let receiver: Server;
  let browser: Browser;
  let origin = '';
  let readKey = '';
  let connectionId = '';
  let accessToken = '';
  const messages: string[] = [];

  before(async () => {
    // The same build `npm run build` makes, so the test serves the frontend of this source tree.
    await buildConsole(join(import.meta.dirname, '..', 'dist', 'console'));
    idp = await startOidcProvider({
      clients: [
        {
          client_id: 'console-client',
          client_secret: 'console-client-secret',
          token_endpoint_auth_method: 'client_secret_post',
          redirect_uris: [REDIRECT],
        },
      ],
    });
    receiver = createServer((req, res) => {
      req.resume();
      res.writeHead(204).end();
    });
    await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
    // Webhook receivers on loopback are refused unless allowed (the private-address guard).
    broker = await startBroker({ env: { NEXUS_EGRESS_ALLOWED_CIDRS: '127.0.0.1/32' } });
    await broker.app.listen({ host: '127.0.0.1', port: 0 });
    const hook = await broker.request({
      method: 'POST',
      url: '/admin/v1/webhooks',
      payload: {
        url: `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hooks`,
        events: ['connection.revoked'],
      },
    });
    assert.equal(hook.statusCode, 201, hook.body);
    origin = `http://127.0.0.1:${(broker.app.server.address() as AddressInfo).port}`;
    const created = await broker.request({
      method: 'POST',
      url: '/admin/v1/admin-keys',
      payload: { name: 'auditor', scope: 'read' },
    });
    assert.equal(created.statusCode, 201, created.body);
    readKey = json<{ key: string }>(created).key;
    browser = await launchChromium();
  });

  after(async () => {
    await browser?.close();
    await broker?.close();
    await idp?.close();
    receiver?.closeAllConnections();
    await new Promise((resolve) => receiver?.close(resolve));
  });

  async function open(viewport = LAPTOP): Promise<{ context: BrowserContext; page: Page }> {
    const context = await browser.newContext({ viewport });
    const page = await context.newPage();
    page.setDefaultTimeout(WAIT);
    page.on('console', (m) => messages.push(`${m.type()}: ${m.text()}`));
    page.on('pageerror', (e) => messages.push(`pageerror: ${e.message}`));
    return { context, page };
  }

  it('signs in, registers a provider, opens a connection, refreshes and revokes it, and audits it', async () => {
    const { context, page } = await open();
    const requests: { method: string; url: string; cookie: string | undefined; key: string | undefined }[] =
      [];
    page.on('request', (r) => {
      const headers = r.headers();
      requests.push({ method: r.method(), url: r.url(), cookie: headers.cookie, key: headers['x-api-key'] });
    });

    // A wrong key is refused with the API's message.
    await page.goto(`${origin}/console`);
    await page.getByLabel('Admin key').fill('not-a-key');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('alert').getByText('The API key is not valid').waitFor();
    await assertAccessible(page, 'sign-in');
    await shot(page, 'console-sign-in');

    await page.getByLabel('Admin key').fill(broker.adminKey);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { level: 1, name: 'Overview' }).waitFor();
    assert.equal(await page.getByText('full-access key').count(), 1);
    // The key's name and scope come from GET /admin/v1/admin-keys/current: signing in changes nothing.
    await page.locator('.key-name').getByText('env:test').waitFor();
    assert.deepEqual(
      requests.filter((r) => r.method !== 'GET').map((r) => r.url),
      [],
    );

    // Register the OpenID provider through the form.
    await go(page, 'Providers');
    await page.getByText('Register a provider').click();
    await page.getByLabel('Name', { exact: true }).fill('acme-idp');
    await page.getByLabel('Issuer', { exact: true }).fill(idp.issuer);
    await page.getByLabel('Discover endpoints from the issuer').check();
    await page.getByLabel('Client id').fill('console-client');
    await page.getByLabel('Client secret').fill('console-client-secret');
    await page.getByLabel('Default scopes').fill('openid email');
    await page.getByRole('button', { name: 'Register' }).click();
    await page.getByRole('status').getByText('Provider acme-idp registered.').waitFor();
    await page.getByRole('cell', { name: 'acme-idp', exact: true }).waitFor();

    // A user consents at the real provider.
    const started = await broker.request({
      method: 'POST',
      url: '/v1/request-connection',
      payload: { user_id: 'alice', provider_name: 'acme-idp', return_url: 'http://localhost:3000/connected' },
    });
    assert.equal(started.statusCode, 200, started.body);
    const { authUrl } = json<{ authUrl: string; connection_id: string }>(started);
    connectionId = json<{ connection_id: string }>(started).connection_id;
    const callback = await idp.consent(authUrl, 'alice');
    const landed = await broker.request({
      method: 'GET',
      url: callback.pathname + callback.search,
      key: null,
    });
    assert.equal(landed.statusCode, 302, landed.body);
    const token = await broker.request({ method: 'GET', url: `/connections/${connectionId}/token` });
    accessToken = json<{ access_token: string }>(token).access_token;
    assert.ok(accessToken.length > 10);

    await go(page, 'Overview');
    await page.getByRole('link', { name: /1\s+active/ }).waitFor();
    await shot(page, 'console-overview');

    await go(page, 'Connections');
    await page.getByLabel('User (workspace)').fill('alice');
    await page.getByRole('button', { name: 'Filter' }).click();
    const row = page.getByRole('row').filter({ hasText: 'alice' });
    await row.getByText('active').waitFor();
    await shot(page, 'console-connections');
    await row.getByRole('link').click();
    await page.getByRole('heading', { level: 1, name: `Connection ${connectionId}` }).waitFor();
    await page.getByRole('cell', { name: 'connection.active', exact: true }).waitFor();

    await page.getByRole('button', { name: 'Refresh now' }).click();
    await page.getByRole('status').getByText('Refreshed.').waitFor();
    await page.getByRole('cell', { name: 'connection.refreshed (success)' }).first().waitFor();
    // The admin refresh answers no credential; the token route's refresh is not called.
    const refreshes = requests.filter((r) => r.method === 'POST' && r.url.includes('/refresh'));
    assert.deepEqual(
      refreshes.map((r) => new URL(r.url).pathname),
      [`/admin/v1/connections/${connectionId}/refresh`],
    );

    await page.getByRole('button', { name: 'Revoke' }).click();
    // The question takes the focus (the button pressed is gone); Enter answers it.
    await page.waitForFunction("document.activeElement?.textContent === 'Yes, revoke this connection'");
    await page.keyboard.press('Enter');
    await page.getByRole('status').getByText('Revoked.').waitFor();
    await page.getByRole('definition').getByText('revoked').waitFor();
    await page.getByRole('cell', { name: 'connection.revoked', exact: true }).waitFor();
    await assertAccessible(page, 'a connection');
    await shot(page, 'console-connection');
    const stored = await broker.request({ method: 'GET', url: `/connections?workspace_id=alice` });
    assert.equal(json<{ connections: { status: string }[] }>(stored).connections[0]?.status, 'revoked');

    await go(page, 'Audit log');
    await page.getByLabel('Event type').fill('connection.revoked');
    await page.getByRole('button', { name: 'Filter' }).click();
    // Filtered: the other events of the connection are gone, the revocation remains.
    await page.getByRole('cell', { name: 'connection.activated' }).first().waitFor({ state: 'detached' });
    const revoked = page.getByRole('row').filter({ hasText: `connection:${connectionId}` });
    await revoked.first().waitFor();
    assert.equal(await revoked.count(), 1);
    await revoked.getByRole('cell', { name: 'connection.revoked', exact: true }).waitFor();
    await revoked.getByRole('cell', { name: 'success', exact: true }).waitFor();
    // The chain's verification (GET /audit/verify), shown on the page.
    await page.getByRole('button', { name: 'Verify the chain' }).click();
    await page.getByRole('status').getByText('Chain intact.').waitFor();
    await assertAccessible(page, 'audit log, verified');
    await shot(page, 'console-audit');

    // Every page: no serious accessibility problem; the credential was never on any of them.
    for (const title of PAGES) {
      await go(page, title);
      await assertAccessible(page, title);
      assert.ok(!(await page.content()).includes(accessToken), `${title} shows the access token`);
    }
    // The key went only to the broker, only as a header, never as a cookie.
    assert.ok(
      requests.every((r) => r.url.startsWith(`${origin}/`)),
      'a request left the broker',
    );
    assert.ok(requests.every((r) => r.cookie === undefined));
    assert.ok(requests.some((r) => r.key === broker.adminKey));
    assert.deepEqual(await context.cookies(), []);
    assert.equal(await page.evaluate('sessionStorage.length + localStorage.length'), 0);
    assertNoCspViolation(messages);

    // Reloading forgets the key.
    await page.reload();
    await page.getByLabel('Admin key').waitFor();
    await context.close();
  });

  it('adds and deletes a catalogue provider; creates an agent (secret shown once), rotates, deactivates; redelivers; creates an admin key', async () => {
    const { context, page } = await open();
    await signIn(page, origin, broker.adminKey);

    // A provider from the catalogue (GET /catalog, decision 0015), then deleted.
    await go(page, 'Providers');
    await page.getByText(/^Add from the catalogue/).click();
    const fromCatalogue = page.getByRole('form', { name: 'Add a provider from the catalogue' });
    await fromCatalogue.getByLabel('API').selectOption('github');
    await fromCatalogue.getByLabel('Client id').fill('gh-client');
    await fromCatalogue.getByLabel('Client secret').fill('gh-client-secret');
    await fromCatalogue.getByRole('button', { name: 'Add' }).click();
    await page.getByRole('status').getByText('Provider github registered from the catalogue.').waitFor();
    await page.getByRole('cell', { name: 'github', exact: true }).waitFor();
    const made = await broker.request({ method: 'GET', url: '/providers/by-name/github' });
    assert.equal(made.statusCode, 200, made.body);
    await assertAccessible(page, 'providers, with the catalogue form open');
    await shot(page, 'console-providers');
    await page.getByRole('button', { name: 'Delete github' }).click();
    await page.getByRole('button', { name: 'Yes, delete' }).click();
    await page.getByRole('status').getByText('Provider github deleted.').waitFor();
    await page.getByRole('cell', { name: 'github', exact: true }).waitFor({ state: 'detached' });
    const gone = await broker.request({ method: 'GET', url: '/providers/by-name/github' });
    assert.equal(gone.statusCode, 404);

    await go(page, 'Agents');
    await page.getByText('Create an agent').click();
    await page.getByLabel('Agent id').fill('report-bot');
    await page.getByLabel('Providers').fill('acme-idp');
    await page.getByLabel('Users (workspaces)').fill('*');
    await page.getByRole('button', { name: 'Create', exact: true }).click();
    const first = await page.getByLabel('Client secret of report-bot.').inputValue();
    assert.ok(first.length >= 20);

    await page.getByRole('button', { name: 'Open report-bot' }).click();
    const grantsForm = page.getByRole('form', { name: 'Grants of report-bot' });
    await grantsForm.getByLabel('Users (workspaces)').fill('alice, bob');
    await grantsForm.getByRole('button', { name: 'Save grants' }).click();
    await page.getByRole('status').getByText('Grants saved.').waitFor();
    await page
      .getByRole('row')
      .filter({ hasText: 'report-bot' })
      .getByRole('cell', { name: 'alice, bob' })
      .waitFor();
    await page.getByRole('button', { name: 'Rotate secret' }).click();
    const second = await page.getByLabel('New client secret of report-bot.').inputValue();
    assert.ok(second.length >= 20 && second !== first);
    await page
      .getByRole('row')
      .filter({ hasText: 'report-bot' })
      .getByRole('cell', { name: '2', exact: true })
      .waitFor();
    await page.getByRole('button', { name: 'Deactivate' }).click();
    await page.getByRole('button', { name: /Yes, deactivate/ }).click();
    await page.getByRole('cell', { name: 'no (deactivated)' }).waitFor();
    const agent = await broker.request({ method: 'GET', url: '/admin/v1/agents/report-bot' });
    assert.equal(json<{ active: boolean }>(agent).active, false);
    await assertAccessible(page, 'agents, with one open');
    await shot(page, 'console-agents');

    // The revocation of the first test was delivered to the webhook; send it again.
    assert.deepEqual(await broker.container.webhookDelivery.runOnce(), {
      delivered: 1,
      failed: 0,
      retried: 0,
    });
    await go(page, 'Webhooks');
    await page.getByRole('button', { name: /^Deliveries/ }).click();
    const delivered = page.getByRole('row').filter({ hasText: 'connection.revoked' });
    await delivered.getByText('delivered').waitFor();
    await delivered.getByRole('button', { name: /^Redeliver/ }).click();
    await page.getByRole('status').getByText('Event connection.revoked queued again.').waitFor();
    await page.getByRole('row').filter({ hasText: 'pending' }).waitFor();
    await assertAccessible(page, 'webhook deliveries');
    await shot(page, 'console-webhooks');

    // A user's secrets: their metadata, never their values.
    const value = 'crm-secret-value-9f2c1e';
    const put = await broker.request({
      method: 'POST',
      url: '/api/v2/secrets?user_id=alice',
      payload: { name: 'crm-token', value, description: 'CRM access' },
    });
    assert.equal(put.statusCode < 300, true, put.body);
    await go(page, 'User secrets');
    await page.getByLabel('User', { exact: true }).fill('alice');
    await page.getByRole('button', { name: 'Show' }).click();
    const secretRow = page.getByRole('row').filter({ hasText: 'crm-token' });
    await secretRow.getByRole('cell', { name: 'CRM access' }).waitFor();
    await secretRow.getByRole('button', { name: 'Versions of crm-token' }).click();
    await page.getByRole('heading', { name: 'Versions of crm-token' }).waitFor();
    await page
      .getByRole('table', { name: 'Versions of crm-token' })
      .getByRole('cell', { name: '1', exact: true })
      .waitFor();
    assert.ok(!(await page.content()).includes(value), 'a secret value is on the page');
    await assertAccessible(page, 'user secrets');

    await go(page, 'Admin keys');
    await page.getByText('Create an admin key').click();
    await page.getByLabel('Name').fill('ci-deployer');
    await page.getByLabel('Scope').selectOption('full');
    await page.getByRole('button', { name: 'Create', exact: true }).click();
    const key = await page.getByLabel('Admin key ci-deployer.').inputValue();
    const used = await broker.request({ method: 'GET', url: '/providers', key });
    assert.equal(used.statusCode, 200);
    await page.getByRole('cell', { name: 'ci-deployer', exact: true }).waitFor();
    await assertAccessible(page, 'admin keys');
    await shot(page, 'console-admin-keys');
    assertNoCspViolation(messages);
    await context.close();
  });

  it('a read-only key sees no button that changes state, and the API refuses it anyway', async () => {
    const { context, page } = await open(PHONE);
    await signIn(page, origin, readKey);
    assert.equal(await page.getByText('read-only key').count(), 1);
    await page.locator('.key-name').getByText('auditor').waitFor();
    await shot(page, 'console-phone-overview');

    await go(page, 'Connections');
    await page.getByRole('row').filter({ hasText: 'alice' }).getByRole('link').click();
    await page.getByRole('heading', { level: 1, name: `Connection ${connectionId}` }).waitFor();
    await page.getByText('Read-only key: refresh and revoke need a key').waitFor();
    assert.equal(await page.getByRole('button', { name: /revoke|refresh/i }).count(), 0);
    await shot(page, 'console-phone-connection');

    await go(page, 'Providers');
    assert.equal(await page.getByText('Register a provider').count(), 0);
    assert.equal(await page.getByRole('button', { name: /delete|edit/i }).count(), 0);
    await go(page, 'Sessions');
    assert.equal(await page.getByRole('button', { name: /close session/i }).count(), 0);
    await go(page, 'Agents');
    assert.equal(await page.getByText('Create an agent').count(), 0);
    await page.getByRole('button', { name: 'Open report-bot' }).click();
    assert.equal(await page.getByRole('button', { name: /rotate|deactivate|activate|save/i }).count(), 0);
    await go(page, 'Admin keys');
    assert.equal(await page.getByText('Create an admin key').count(), 0);
    assert.equal(await page.getByRole('button', { name: /revoke/i }).count(), 0);

    // Even a hand-made request from the page with the same key is refused by the broker.
    const status = await page.evaluate<number>(
      `fetch('/providers/by-name/acme-idp', { method: 'DELETE', headers: { 'x-api-key': ${JSON.stringify(readKey)} } }).then((r) => r.status)`,
    );
    assert.equal(status, 403);
    const still = await broker.request({ method: 'GET', url: '/providers/by-name/acme-idp' });
    assert.equal(still.statusCode, 200);

    // Pages whose data needs a full key are not offered.
    const nav = page.getByRole('navigation', { name: 'Console' });
    assert.equal(await nav.getByRole('link', { name: 'Webhooks' }).count(), 0);
    assert.equal(await nav.getByRole('link', { name: 'User secrets' }).count(), 0);
    for (const title of PAGES.filter((t) => t !== 'Webhooks' && t !== 'User secrets')) {
      await go(page, title);
      await assertAccessible(page, `${title} (read-only, phone)`);
    }
    assertNoCspViolation(messages);
    await context.close();
  });
});
