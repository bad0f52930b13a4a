import type { SafeFetch } from './safe-fetch.ts';

/**
 * jose's `customFetch` for remote JWKS, over the egress guard: a `jwks_uri` (an agent's, or one a
 * trusted issuer's discovery document names) cannot make the broker fetch from inside its network.
 */
export function joseFetch(safe: SafeFetch) {
  return async (url: string, options: { headers: Headers }): Promise<Response> => {
    const answer = await safe(url, { method: 'GET', headers: Object.fromEntries(options.headers) });
    const headers = new Headers();
    for (const [name, value] of Object.entries(answer.headers)) {
      if (typeof value === 'string') headers.set(name, value);
    }
    return new Response(new Uint8Array(answer.body), { status: answer.status, headers });
  };
}
