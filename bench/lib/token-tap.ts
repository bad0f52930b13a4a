/**
 * A transparent recorder in front of an OAuth token endpoint: the broker's `token_url` points here,
 * every request is forwarded unchanged to the real provider and its answer passed back unchanged.
 * It sees what the provider's counters cannot tell: which refresh tokens were presented more than
 * once (reuse), every `invalid_grant` answer, the grant chain each refresh belongs to (a chain
 * starts at an authorization-code exchange and follows the rotated refresh tokens), and every
 * access token issued with its expiry, so a bench can check the tokens the broker hands out.
 * Tokens are kept as SHA-256 prefixes, never in clear.
 */
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface GrantChain {
  readonly id: number;
  readonly startedAt: number;
  /** The successful refreshes of this chain: when, and the digest of the access token issued. */
  readonly refreshes: Array<{ at: number; token: string }>;
}

export type TokenState = 'valid' | 'expired' | 'unknown';

export interface TapCounts {
  code_grants: number;
  refresh_grants: number;
  refresh_ok: number;
  /** Refresh answers with `error: invalid_grant`. */
  invalid_grant: number;
  /** Other non-2xx answers (and failures to reach the provider). */
  other_errors: number;
  /** Refresh requests presenting a refresh token that had already been presented. */
  reused_refresh_tokens: number;
  /** Refresh requests presenting a refresh token this tap never saw issued. */
  unknown_refresh_tokens: number;
}

export interface TokenTap {
  readonly url: string;
  readonly counts: TapCounts;
  readonly chains: ReadonlyMap<number, GrantChain>;
  /** Whether `accessToken` was issued by the provider, and is unexpired at `at`. */
  tokenState(accessToken: string, at?: number): TokenState;
  /** The chain an access token was issued under. */
  chainOf(accessToken: string): number | undefined;
  /** Forgets access tokens that expired more than `keepMs` ago (bounded memory on long runs). */
  prune(keepMs: number): void;
  close(): Promise<void>;
}

/** How the tap keeps a token: a SHA-256 prefix. */
export const tokenDigest = (token: string) =>
  createHash('sha256').update(token).digest('base64url').slice(0, 22);
const digest = tokenDigest;

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const part of req) parts.push(part as Buffer);
  return Buffer.concat(parts);
}

/** Starts the tap on 127.0.0.1 forwarding to `target` (the provider's token endpoint). */
export async function startTokenTap(target: string): Promise<TokenTap> {
  const counts: TapCounts = {
    code_grants: 0,
    refresh_grants: 0,
    refresh_ok: 0,
    invalid_grant: 0,
    other_errors: 0,
    reused_refresh_tokens: 0,
    unknown_refresh_tokens: 0,
  };
  const chains = new Map<number, GrantChain>();
  /** refresh-token digest → chain id, for every refresh token issued. */
  const refreshChain = new Map<string, number>();
  /** refresh-token digests already presented once. */
  const presented = new Set<string>();
  /** access-token digest → expiry and chain. */
  const accessTokens = new Map<string, { expiresAt: number; chain: number }>();
  let nextChain = 1;

  const server = createServer((req, res) => {
    void (async () => {
      const body = await readBody(req);
      const params = new URLSearchParams(body.toString('utf8'));
      const grantType = params.get('grant_type');
      let chain: number | undefined;
      let presentedToken: string | undefined;
      if (grantType === 'refresh_token') {
        counts.refresh_grants++;
        presentedToken = digest(params.get('refresh_token') ?? '');
        const again = presented.has(presentedToken);
        if (again) counts.reused_refresh_tokens++;
        presented.add(presentedToken);
        chain = refreshChain.get(presentedToken);
        if (chain === undefined && !again) counts.unknown_refresh_tokens++;
      } else if (grantType === 'authorization_code') {
        counts.code_grants++;
      }
      const headers: Record<string, string> = {};
      for (const name of ['content-type', 'authorization', 'accept', 'dpop']) {
        const value = req.headers[name];
        if (typeof value === 'string') headers[name] = value;
      }
      let status = 502;
      let text = '{"error":"tap_upstream_failed"}';
      let type = 'application/json';
      try {
        const answer = await fetch(target, {
          method: 'POST',
          headers,
          body,
          signal: AbortSignal.timeout(30_000),
        });
        status = answer.status;
        type = answer.headers.get('content-type') ?? type;
        text = await answer.text();
      } catch {}
      const at = Date.now();
      let parsed: Record<string, unknown> = {};
      try {
        parsed = JSON.parse(text) as Record<string, unknown>;
      } catch {}
      if (status >= 200 && status < 300 && typeof parsed.access_token === 'string') {
        if (grantType === 'authorization_code') {
          chain = nextChain++;
          chains.set(chain, { id: chain, startedAt: at, refreshes: [] });
        } else if (grantType === 'refresh_token') {
          counts.refresh_ok++;
          if (chain !== undefined)
            chains.get(chain)?.refreshes.push({ at, token: digest(parsed.access_token) });
          // Spent: a second presentation is counted as reuse from `presented`, not from here.
          if (presentedToken !== undefined) refreshChain.delete(presentedToken);
        }
        const expiresIn = typeof parsed.expires_in === 'number' ? parsed.expires_in : 3600;
        accessTokens.set(digest(parsed.access_token), {
          expiresAt: at + expiresIn * 1000,
          chain: chain ?? 0,
        });
        if (typeof parsed.refresh_token === 'string' && chain !== undefined)
          refreshChain.set(digest(parsed.refresh_token), chain);
      } else if (parsed.error === 'invalid_grant') {
        counts.invalid_grant++;
      } else {
        counts.other_errors++;
      }
      res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' });
      res.end(text);
    })().catch(() => {
      if (!res.headersSent) res.writeHead(500);
      res.end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;

  return {
    url: `http://127.0.0.1:${port}/token`,
    counts,
    chains,
    tokenState(accessToken, at = Date.now()) {
      const known = accessTokens.get(digest(accessToken));
      if (known === undefined) return 'unknown';
      return known.expiresAt > at ? 'valid' : 'expired';
    },
    chainOf(accessToken) {
      return accessTokens.get(digest(accessToken))?.chain;
    },
    prune(keepMs) {
      const before = Date.now() - keepMs;
      for (const [key, value] of accessTokens) if (value.expiresAt < before) accessTokens.delete(key);
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
