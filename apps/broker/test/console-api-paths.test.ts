import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

/**
 * The console's API client calls exactly the path a page built. A connection id is taken from the
 * page's address (`#/connections/<id>`), which anyone can send an operator as a link: an id of
 * `../admin/v1/admin-keys/<key>` once made the connection page's Revoke button send
 * `DELETE /admin/v1/admin-keys/<key>` with the operator's key. The module runs here on Node with
 * `location` and `fetch` standing in for the browser's (the pages themselves are driven in
 * Chromium by console-browser*.test.ts).
 */
describe('console API client: the path called is the path built', () => {
  const called: string[] = [];
  const global = globalThis as Record<string, unknown>;
  const saved = { location: global.location, fetch: global.fetch };
  let api: (method: string, path: string) => Promise<unknown>;
  let ApiError: new (...args: never[]) => Error & { code: string };

  before(async () => {
    Object.assign(globalThis, {
      location: { origin: 'https://broker.example' },
      fetch: async (url: URL, init: RequestInit) => {
        called.push(`${init.method} ${url.pathname}`);
        return new Response(null, { status: 204 });
      },
    });
    // Imported by a computed name: the console is type-checked with its own (DOM) settings.
    const module = '../console/src/api.ts';
    ({ api, ApiError } = await import(module));
  });
  after(() => Object.assign(globalThis, saved));

  for (const id of [
    '../admin/v1/admin-keys/K1',
    '%2e%2e/admin/v1/admin-keys/K1',
    '.%2E/admin/v1/admin-keys/K1',
    '..\\admin\\v1\\admin-keys\\K1',
  ])
    it(`refuses a path that ${JSON.stringify(id)} would move elsewhere`, async () => {
      called.length = 0;
      await assert.rejects(api('DELETE', `/connections/${id}`), (error) => {
        assert.ok(error instanceof ApiError);
        assert.equal(error.code, 'invalid_path');
        return true;
      });
      assert.deepEqual(called, [], 'nothing was sent');
    });

  it('calls an encoded id where the page built it, and ordinary paths as they are', async () => {
    called.length = 0;
    await api('DELETE', `/connections/${encodeURIComponent('../admin/v1/admin-keys/K1')}`);
    await api('POST', '/admin/v1/connections/0b5e6a40-1c1e-4a51-9d57-0d0c7a2b9f10/refresh');
    assert.deepEqual(called, [
      'DELETE /connections/..%2Fadmin%2Fv1%2Fadmin-keys%2FK1',
      'POST /admin/v1/connections/0b5e6a40-1c1e-4a51-9d57-0d0c7a2b9f10/refresh',
    ]);
  });
});
