/**
 * openConnect's checks without a browser: a stand-in `window` records the popup it opened and
 * delivers messages. The real thing (a popup through the broker's pages and a real OpenID
 * provider in Chromium) is apps/broker/test/connect-browser.test.ts.
 */
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { ConnectError, openConnect } from '../src/index.ts';

const BROKER = 'https://broker.example';
const URL_ = `${BROKER}/connect/session?token=ncs_x`;

function fakeWindow(options: { block?: boolean } = {}) {
  const listeners = new Set<(e: MessageEvent) => void>();
  const popup = {
    closed: false,
    close() {
      this.closed = true;
    },
  };
  const opened: string[] = [];
  const win = {
    location: { href: 'https://app.example/settings' },
    screenX: 0,
    screenY: 0,
    outerWidth: 1200,
    outerHeight: 900,
    open(url: string) {
      opened.push(url);
      return options.block ? null : popup;
    },
    addEventListener: (_: string, f: (e: MessageEvent) => void) => listeners.add(f),
    removeEventListener: (_: string, f: (e: MessageEvent) => void) => listeners.delete(f),
  };
  (globalThis as unknown as { window: unknown }).window = win;
  return {
    popup,
    opened,
    listeners,
    send(data: unknown, from: { origin?: string; source?: unknown } = {}) {
      const event = { data, origin: from.origin ?? BROKER, source: 'source' in from ? from.source : popup };
      for (const f of [...listeners]) f(event as MessageEvent);
    },
  };
}

afterEach(() => {
  delete (globalThis as { window?: unknown }).window;
});

describe('openConnect', () => {
  it('resolves with the connection id from the broker, ignoring other origins and other windows', async () => {
    const w = fakeWindow();
    const result = openConnect({ url: URL_ });
    assert.deepEqual(w.opened, [URL_]);
    const success = { type: 'nexus-connect', status: 'success', connection_id: 'c-1', provider: 'github' };
    w.send({ ...success, connection_id: 'evil' }, { origin: 'https://evil.example' });
    w.send({ ...success, connection_id: 'evil' }, { source: {} });
    w.send('not an object');
    w.send({ type: 'other', status: 'success', connection_id: 'evil' });
    w.send(success);
    assert.deepEqual(await result, { connectionId: 'c-1', provider: 'github' });
    assert.equal(w.popup.closed, true, 'the popup is closed once the answer came');
    assert.equal(w.listeners.size, 0, 'the listener is removed');
  });

  it("rejects with the broker's typed reason", async () => {
    for (const [reason, code] of [
      ['denied', 'access_denied'],
      ['expired', 'session_expired'],
      ['failed', 'token_exchange_failed'],
      ['unheard-of', 'x'],
    ] as const) {
      const w = fakeWindow();
      const result = openConnect({ url: URL_ });
      w.send({ type: 'nexus-connect', status: 'failed', error: code, reason });
      await assert.rejects(result, (e: unknown) => {
        assert.ok(e instanceof ConnectError);
        assert.equal(e.reason, reason === 'unheard-of' ? 'failed' : reason);
        assert.equal(e.code, code);
        return true;
      });
    }
  });

  it("rejects with 'closed' when the user closes the popup, and 'blocked' when there is none", async () => {
    const w = fakeWindow();
    const result = openConnect({ url: URL_ });
    w.popup.closed = true;
    await assert.rejects(result, (e: unknown) => e instanceof ConnectError && e.reason === 'closed');
    assert.equal(w.listeners.size, 0);
    fakeWindow({ block: true });
    await assert.rejects(
      openConnect({ url: URL_ }),
      (e: unknown) => e instanceof ConnectError && e.reason === 'blocked',
    );
  });

  it('refuses a URL that is not http(s), and rejects with the reason of an abort', async () => {
    fakeWindow();
    await assert.rejects(openConnect({ url: 'javascript:alert(1)' }), TypeError);
    const w = fakeWindow();
    const controller = new AbortController();
    const result = openConnect({ url: URL_, signal: controller.signal });
    controller.abort(new Error('navigated away'));
    await assert.rejects(result, /navigated away/);
    assert.equal(w.popup.closed, true);
  });
});
