/**
 * Debian's Chromium for browser tests (`bash scripts/services.sh ensure-chromium`; never a browser
 * Playwright downloads), launched headless by playwright-core with the flags a container needs.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { type Browser, chromium } from 'playwright-core';

export const CHROMIUM = '/usr/bin/chromium';
/** How long a browser step may wait (launch, navigation, a locator). */
export const WAIT = 20_000;

export async function launchChromium(): Promise<Browser> {
  assert.ok(existsSync(CHROMIUM), `${CHROMIUM} not found: run \`bash scripts/services.sh ensure-chromium\``);
  return chromium.launch({
    executablePath: CHROMIUM,
    timeout: WAIT,
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--no-first-run', '--disable-sync'],
  });
}
