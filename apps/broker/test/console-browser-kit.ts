/**
 * What the console's browser test (console-browser.test.ts) uses on every page: Debian's Chromium
 * (`bash scripts/services.sh ensure-chromium`, never a browser Playwright downloads), navigation
 * that checks the page loaded without an error, axe-core, and screenshots (chromium.ts: SCREENSHOTS).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { launchChromium as launchBrowser, SCREENSHOTS, WAIT } from './chromium.ts';

const ROOT = join(import.meta.dirname, '..', '..', '..');
const AXE = readFileSync(join(ROOT, 'node_modules', 'axe-core', 'axe.min.js'), 'utf8');

export { WAIT };
export const LAPTOP = { width: 1280, height: 800 };
export const PHONE = { width: 390, height: 844 };
/** The console's pages, as its navigation names them. */
export const PAGES = [
  'Overview',
  'Connections',
  'Audit log',
  'Providers',
  'Agents',
  'Sessions',
  'User secrets',
  'Webhooks',
  'Admin keys',
] as const;

export const launchChromium = (): Promise<Browser> => launchBrowser();

/** Opens a page from the navigation; it must finish loading without an error shown. */
export async function go(page: Page, title: string): Promise<void> {
  await page
    .getByRole('navigation', { name: 'Console' })
    .getByRole('link', { name: title, exact: true })
    .click();
  await page.getByRole('heading', { level: 1, name: title }).waitFor();
  await page.getByText('Loading…').waitFor({ state: 'detached' });
  assert.equal(
    await page.getByRole('alert').count(),
    0,
    `${title}: ${await page.locator('main').textContent()}`,
  );
}

/** axe-core in the page (evaluated through the protocol, so the page's CSP does not apply to it). */
export async function assertAccessible(page: Page, where: string): Promise<void> {
  await page.evaluate(AXE);
  const violations = await page.evaluate<{ id: string; impact: string; help: string; nodes: string[] }[]>(
    `axe.run(document, { resultTypes: ['violations'] }).then((r) => r.violations
      .filter((v) => v.impact === 'serious' || v.impact === 'critical')
      .map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map((n) => n.html).slice(0, 3) })))`,
  );
  assert.deepEqual(violations, [], `axe on ${where}: ${JSON.stringify(violations, null, 2)}`);
}

/** A full-page screenshot; secrets shown once (keys, client secrets) are masked in it. */
export const shot = (page: Page, name: string) =>
  page.screenshot({
    path: join(SCREENSHOTS, `${name}.png`),
    fullPage: true,
    mask: [page.locator('.secret')],
  });

/** Opens the console and signs in with `key`; the overview must load without an error. */
export async function signIn(page: Page, origin: string, key: string): Promise<void> {
  const response = await page.goto(`${origin}/console`);
  assert.equal(response?.status(), 200);
  await page.getByLabel('Admin key').fill(key);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('heading', { level: 1, name: 'Overview' }).waitFor();
  await page.getByText('Loading…').waitFor({ state: 'detached' });
  assert.equal(await page.getByRole('alert').count(), 0, String(await page.locator('main').textContent()));
}

/** No message of the page's console says the CSP or Trusted Types blocked something. */
export function assertNoCspViolation(messages: readonly string[]): void {
  const blocked = messages.filter((m) => /content security policy|refused to|trusted ?type/i.test(m));
  assert.deepEqual(blocked, [], messages.join('\n'));
}
