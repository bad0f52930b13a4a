/**
 * `nexus dev` (issue #21) as a newcomer uses it: started as a process, its printed URL opened in
 * Debian's Chromium (playwright-core), the demo consent completed through the demo identity
 * provider's own pages, and the token call the last page shows run as shown, in bash, against
 * the running broker. A second start reuses the demo provider and agent (same ids, same agent
 * secret), and production mode is refused. Screenshots: dev-*.png (chromium.ts: SCREENSHOTS).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { type AddressInfo, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import type { Browser, Page } from 'playwright-core';
import { CHROMIUM, launchChromium, SCREENSHOTS, WAIT } from './chromium.ts';
import {
  baseEnv,
  type CliProcess,
  freePort,
  killAllChildren,
  runCli,
  show,
  spawnCli,
} from './cli-helpers.ts';
import { createTestDatabase, DIALECT, type TestDatabase } from './harness.ts';

const OPEN_URL = /Open (http:\/\/127\.0\.0\.1:\d+\/dev) in your browser/;
const BANNER_LINE = (what: string) =>
  new RegExp(`demo ${what} "[\\w-]+" ([0-9a-f-]{36}): (registered|reused)`);

describe('nexus dev: a consent in the browser, then the token call', { timeout: 180_000 }, () => {
  let db: TestDatabase;
  let browser: Browser | undefined;
  let env: Record<string, string>;
  let idpPort = 0;
  let dev: CliProcess | undefined;
  const first = { url: '', provider: '', agent: '', connection: '', curl: '' };

  before(async () => {
    assert.ok(
      existsSync(CHROMIUM),
      `${CHROMIUM} not found: install it with \`bash scripts/services.sh ensure-chromium\``,
    );
    db = await createTestDatabase();
    idpPort = await freePort();
    env = { ...baseEnv(), ...db.env, PORT: String(await freePort()) };
    browser = await launchChromium();
  });

  after(async () => {
    await browser?.close();
    killAllChildren();
    await db?.drop();
  });

  async function start(): Promise<{ url: string; provider: RegExpMatchArray; agent: RegExpMatchArray }> {
    dev = spawnCli(['dev', '--idp-port', String(idpPort)], env);
    const [, url] = await dev.waitFor('stderr', OPEN_URL, 60_000);
    // On the test's database (SQLite, or PostgreSQL under run-with-postgres).
    await dev.waitFor('stdout', new RegExp(`"msg":"nexus ready"|"database":"${DIALECT}"`));
    assert.match(dev.stdout(), new RegExp(`"database":"${DIALECT}"`));
    return {
      url: url!,
      provider: dev.stderr().match(BANNER_LINE('provider'))!,
      agent: dev.stderr().match(BANNER_LINE('agent'))!,
    };
  }

  async function stop(): Promise<void> {
    dev!.kill('SIGTERM');
    const result = await dev!.wait(20_000);
    assert.equal(result.code, 0, show(result));
  }

  /** Runs the shell block the page shows, as a reader would paste it. */
  async function runShown(curl: string): Promise<Record<string, unknown>> {
    const { stdout } = await promisify(execFile)('bash', ['-eo', 'pipefail', '-c', curl], {
      timeout: WAIT,
      env: baseEnv(),
    });
    return JSON.parse(stdout) as Record<string, unknown>;
  }

  /** What the reader sees in an element (a `pre` keeps its line breaks). */
  const text = async (page: Page, selector: string) => (await page.locator(selector).textContent()) ?? '';
  const bannerOf = (page: Page) => text(page, '.demo');

  it('prints one URL; the consent completes in Chromium and the token call shown works', async () => {
    const started = await start();
    assert.equal(started.provider[2], 'registered', dev!.stderr());
    assert.equal(started.agent[2], 'registered', dev!.stderr());
    first.url = started.url;
    first.provider = started.provider[1]!;
    first.agent = started.agent[1]!;

    const page = await browser!.newPage({ viewport: { width: 1000, height: 820 } });
    await page.goto(first.url);
    assert.match(await bannerOf(page), /DEMO/);
    await page.getByRole('link', { name: 'Connect the demo account' }).click();

    // The demo identity provider's login page: another origin, labelled demo, the account filled in.
    await page.getByRole('button', { name: 'Sign in as the demo user' }).waitFor({ timeout: WAIT });
    assert.equal(new URL(page.url()).origin, `http://127.0.0.1:${idpPort}`);
    assert.match(await bannerOf(page), /DEMO: this identity provider is a local demo/);
    await page.screenshot({ path: join(SCREENSHOTS, 'dev-demo-login.png') });
    await page.getByRole('button', { name: 'Sign in as the demo user' }).click();

    await page.getByRole('button', { name: 'Allow' }).waitFor({ timeout: WAIT });
    assert.match(await bannerOf(page), /DEMO/);
    await page.getByRole('button', { name: 'Allow' }).click();

    // Back at the broker: the token page.
    await page.locator('#curl').waitFor({ timeout: WAIT });
    assert.equal(new URL(page.url()).origin, new URL(first.url).origin);
    assert.match(await bannerOf(page), /DEMO/);
    first.connection = await text(page, '#connection-id');
    first.curl = await text(page, '#curl');
    const sdk = await text(page, '#sdk');
    assert.match(sdk, new RegExp(`getToken\\('${first.connection}'\\)`));
    await page.screenshot({ path: join(SCREENSHOTS, 'dev-token-call.png'), fullPage: true });
    await page.close();

    const token = await runShown(first.curl);
    assert.equal(token.connection_id, first.connection);
    assert.equal((token.strategy as { type: string }).type, 'oauth2');
    assert.equal(typeof token.access_token, 'string');
    assert.equal(JSON.stringify(token).includes('refresh_token'), false, 'no refresh token handed out');
    // The access token is the demo provider's own: its userinfo endpoint accepts it.
    const userinfo = await fetch(`http://127.0.0.1:${idpPort}/me`, {
      headers: { authorization: `Bearer ${token.access_token}` },
    });
    assert.equal(userinfo.status, 200);
    assert.equal(((await userinfo.json()) as { sub: string }).sub, 'demo');
  });

  it('denying at the demo provider ends on a "not connected" page, labelled demo', async () => {
    const page = await browser!.newPage();
    await page.goto(first.url);
    await page.getByRole('link', { name: 'Connect the demo account' }).click();
    await page.getByRole('button', { name: 'Sign in as the demo user' }).click();
    await page.getByRole('button', { name: 'Deny' }).click();
    await page.getByRole('heading', { name: 'Not connected' }).waitFor({ timeout: WAIT });
    assert.equal(new URL(page.url()).origin, new URL(first.url).origin);
    assert.match(await text(page, '[role="alert"]'), /access_denied/);
    assert.match(await bannerOf(page), /DEMO/);
    await page.close();
  });

  it('a second start reuses the demo provider and agent, and the agent credentials shown before', async () => {
    assert.ok(first.curl, 'the first test connected');
    await stop();
    const again = await start();
    assert.equal(again.url, first.url);
    assert.deepEqual([again.provider[1], again.provider[2]], [first.provider, 'reused']);
    assert.deepEqual([again.agent[1], again.agent[2]], [first.agent, 'reused']);
    // The connection made before the restart is still served, with the credentials shown then.
    const token = await runShown(first.curl);
    assert.equal(token.connection_id, first.connection);
    await stop();
  });

  it('`nexus serve` never loads oidc-provider; `nexus dev` does', async () => {
    // A resolve hook in the child says when anything asks for the package.
    const dir = mkdtempSync(join(tmpdir(), 'nexus-dev-hook-'));
    const hook = join(dir, 'hook.mjs');
    writeFileSync(
      hook,
      `import { registerHooks } from 'node:module';
registerHooks({ resolve(specifier, context, next) {
  if (specifier === 'oidc-provider') process.stderr.write('RESOLVED oidc-provider\\n');
  return next(specifier, context);
} });\n`,
    );
    try {
      const hooked = { ...env, NODE_OPTIONS: `--import=${hook}` };
      const served = spawnCli(['serve'], hooked);
      await served.waitFor('stdout', /"msg":"nexus ready"/, 60_000);
      served.kill('SIGTERM');
      const result = await served.wait(20_000);
      assert.equal(result.code, 0, show(result));
      assert.doesNotMatch(result.stderr, /RESOLVED oidc-provider/);

      const demo = spawnCli(['dev', '--idp-port', String(idpPort)], hooked);
      await demo.waitFor('stderr', OPEN_URL, 60_000);
      demo.kill('SIGTERM');
      assert.match((await demo.wait(20_000)).stderr, /RESOLVED oidc-provider/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('says which port is taken when the demo provider cannot listen', async () => {
    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    try {
      const port = (taken.address() as AddressInfo).port;
      const result = await runCli(['dev', '--idp-port', String(port)], env, 30_000);
      assert.equal(result.code, 2, show(result));
      assert.match(result.stderr, new RegExp(`demo identity provider's port ${port} is in use`));
    } finally {
      taken.close();
    }
  });

  it('refuses production mode before starting anything', async () => {
    const modes: Record<string, string>[] = [{ NEXUS_ENV: 'production' }, { NODE_ENV: 'production' }];
    for (const mode of modes) {
      const result = await runCli(['dev', '--idp-port', String(idpPort)], { ...env, ...mode });
      assert.equal(result.code, 2, show(result));
      assert.match(result.stderr, /refuses production mode/);
      assert.doesNotMatch(result.stderr, /admin API key was created/);
    }
  });
});
