/**
 * Debian's Chromium for browser tests (`bash scripts/services.sh ensure-chromium`; never a browser
 * Playwright downloads), launched headless by playwright-core with the flags a container needs.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Browser, chromium } from 'playwright-core';

export const CHROMIUM = '/usr/bin/chromium';
/** How long a browser step may wait (launch, navigation, a locator). */
export const WAIT = 20_000;

/**
 * Where the browser tests write their screenshots: a folder under the system's temporary one, so a
 * test run leaves the checkout as it was; `npm run screenshots` (NEXUS_SCREENSHOTS=docs) writes
 * them into docs/screenshots/, which the README and docs show.
 */
export const SCREENSHOTS =
  process.env.NEXUS_SCREENSHOTS === 'docs'
    ? join(import.meta.dirname, '..', '..', '..', 'docs', 'screenshots')
    : join(tmpdir(), 'nexus-screenshots');

export async function launchChromium(): Promise<Browser> {
  assert.ok(existsSync(CHROMIUM), `${CHROMIUM} not found: run \`bash scripts/services.sh ensure-chromium\``);
  mkdirSync(SCREENSHOTS, { recursive: true });
  return chromium.launch({
    executablePath: CHROMIUM,
    timeout: WAIT,
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--no-first-run', '--disable-sync'],
  });
}
