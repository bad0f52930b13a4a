/**
 * The console's shell and its pages over the admin endpoints added for it (issue #21), in a real
 * browser (console-browser-kit.ts): the page is static under a strict CSP; editing a provider with `PATCH` and `If-Match` (the client secret is
 * never shown, only replaced; a change made meanwhile is refused, not overwritten), and the
 * Sessions page (every agent's sessions, filtered; closing one). axe-core on each; screenshots
 * for docs/screenshots/ (`npm run screenshots`).
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { buildConsole } from '../console/build.mjs';
import { surfaceOf } from '../src/http/surfaces.ts';
import {
  assertAccessible,
  assertNoCspViolation,
  go,
  LAPTOP,
  launchChromium,
  shot,
  signIn,
  WAIT,
} from './console-browser-kit.ts';
import { createAgentWithToken, json, startBroker, type TestBroker } from './harness.ts';

const SECRET = 'crm-client-secret-first';
const NEW_SECRET = 'crm-client-secret-second';

describe('operator console: CSP, provider edit and sessions, in a real browser', { timeout: 180_000 }, () => {
  let broker: TestBroker;
  let browser: Browser;
  let origin = '';
  let providerId = '';
  const sessions: string[] = [];
  const messages: string[] = [];

  before(async () => {
    await buildConsole(join(import.meta.dirname, '..', 'dist', 'console'));
    broker = await startBroker();
    await broker.app.listen({ host: '127.0.0.1', port: 0 });
    origin = `http://127.0.0.1:${(broker.app.server.address() as { port: number }).port}`;
    const made = await broker.request({
      method: 'POST',
      url: '/providers',
      payload: {
        profile: {
          name: 'crm-oauth',
          client_id: 'crm-client',
          client_secret: SECRET,
          auth_url: 'https://crm.example.com/oauth/authorize',
          token_url: 'https://crm.example.com/oauth/token',
          scopes: ['contacts.read'],
        },
      },
    });
    assert.equal(made.statusCode, 201, made.body);
    providerId = json<{ id: string }>(made).id;
    await broker.request({ method: 'POST', url: '/admin/v1/scopes', payload: { name: 'reports:read' } });
    for (const name of ['report-bot', 'audit-bot']) {
      const agent = await createAgentWithToken(broker, name, { allowed_scopes: ['reports:read'] });
      const opened = await broker.request({
        method: 'POST',
        url: '/v1/agent-sessions',
        key: null,
        headers: { authorization: `Bearer ${agent.token}` },
        payload: { scopes: ['reports:read'], ttl_seconds: 900 },
      });
      assert.equal(opened.statusCode, 201, opened.body);
      sessions.push(json<{ session_id: string }>(opened).session_id);
    }
    browser = await launchChromium();
  });

  after(async () => {
    await browser?.close();
    await broker?.close();
  });

  async function signedIn(): Promise<Page> {
    const context = await browser.newContext({ viewport: LAPTOP });
    const page = await context.newPage();
    page.setDefaultTimeout(WAIT);
    page.on('pageerror', (e) => messages.push(`pageerror: ${e.message}`));
    page.on('console', (m) => messages.push(`${m.type()}: ${m.text()}`));
    await signIn(page, origin, broker.adminKey);
    return page;
  }

  const stored = async () => broker.container.providers.loadForUse(providerId);

  it('serves one static page under a strict CSP, with no inline script and no third-party origin', async () => {
    // Served where the admin API is: on split listeners, the admin one.
    assert.equal(surfaceOf('/console', 'public'), 'admin');
    assert.equal(surfaceOf('/console/app.js', 'public'), 'admin');
    const page = await broker.request({ method: 'GET', url: '/console', key: null });
    assert.equal(page.statusCode, 200);
    const csp = String(page.headers['content-security-policy']);
    assert.match(csp, /default-src 'none'/);
    assert.match(csp, /script-src 'self'(;|$)/);
    assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval|https?:/);
    assert.doesNotMatch(page.body, /<script>|<script [^>]*>[^<]/, 'no inline script');
    assert.doesNotMatch(page.body, /https?:\/\//, 'no other origin');
    const script = await broker.request({ method: 'GET', url: '/console/app.js', key: null });
    assert.equal(script.statusCode, 200);
    assert.match(String(script.headers['content-type']), /javascript/);
    assert.doesNotMatch(script.body, /\beval\(|new Function\(/);
  });

  it('edits a provider: changed fields only, the secret replaced but never shown, a stale form refused', async () => {
    const page = await signedIn();
    await go(page, 'Providers');
    await page.getByRole('button', { name: 'Edit crm-oauth' }).click();
    const form = page.getByRole('form', { name: 'Edit provider crm-oauth' });
    await form.getByText('Client secret: stored (never shown).').waitFor();
    assert.equal(await form.getByLabel('Default scopes').inputValue(), 'contacts.read');
    await form.getByLabel('Default scopes').fill('contacts.read contacts.write');
    await form.getByLabel('Replace the client secret').fill(NEW_SECRET);
    await form.getByRole('button', { name: 'Save' }).click();
    await page
      .getByRole('status')
      .getByText('Provider crm-oauth saved (scopes, client secret replaced).')
      .waitFor();
    const after = await stored();
    assert.deepEqual(after.profile.scopes, ['contacts.read', 'contacts.write']);
    assert.equal(after.clientSecret, NEW_SECRET);
    assert.equal(await form.getByLabel('Replace the client secret').inputValue(), '', 'the field is emptied');
    const html = await page.content();
    assert.ok(!html.includes(SECRET) && !html.includes(NEW_SECRET), 'a client secret is on the page');
    await assertAccessible(page, 'providers, editing one');
    await shot(page, 'console-provider-edit');

    // Someone else changes the provider meanwhile: this form's version is stale, so 409.
    const other = await broker.request({
      method: 'PATCH',
      url: `/providers/${providerId}`,
      payload: { description: 'changed elsewhere' },
    });
    assert.equal(other.statusCode, 200, other.body);
    await form.getByLabel('Default scopes').fill('contacts.read');
    await form.getByRole('button', { name: 'Save' }).click();
    await page.getByRole('alert').getByText('version_conflict').waitFor();
    assert.deepEqual((await stored()).profile.scopes, ['contacts.read', 'contacts.write'], 'not overwritten');
    assert.deepEqual(
      messages.filter((m) => m.startsWith('pageerror')),
      [],
    );
    assertNoCspViolation(messages);
    await page.context().close();
  });

  it("lists every agent's sessions, filters them, and closes one", async () => {
    const page = await signedIn();
    await go(page, 'Sessions');
    for (const agent of ['report-bot', 'audit-bot'])
      await page.getByRole('row').filter({ hasText: agent }).getByText('active').waitFor();
    await page.getByLabel('Agent', { exact: true }).fill('report-bot');
    await page.getByRole('button', { name: 'Filter' }).click();
    await page.getByRole('row').filter({ hasText: 'audit-bot' }).waitFor({ state: 'detached' });
    const row = page.getByRole('row').filter({ hasText: 'report-bot' });
    const short = sessions[0]!.slice(0, 8);
    await row.getByRole('button', { name: `Close session ${short}` }).click();
    await page.getByRole('button', { name: 'Yes, close it' }).click();
    await page.getByRole('status').getByText(`Session ${short} closed`).waitFor();
    await row.getByText('closed').waitFor();
    const seen = await broker.request({ method: 'GET', url: `/v1/agent-sessions/${sessions[0]}` });
    assert.equal(json<{ status: string }>(seen).status, 'closed');
    assert.ok(!/eyJ/.test(await page.content()), 'a token is on the page');
    await page.getByLabel('Agent', { exact: true }).fill('');
    await page.getByRole('button', { name: 'Filter' }).click();
    await page.getByRole('row').filter({ hasText: 'audit-bot' }).waitFor();
    await assertAccessible(page, 'sessions');
    await shot(page, 'console-sessions');
    assertNoCspViolation(messages);
    await page.context().close();
  });
});
