import * as oauth from 'oauth4webapi';
import { errorFrom } from '../../errors/nexus-error.ts';
import { providerErrors } from './providers.errors.ts';

export interface DiscoveredMetadata {
  readonly issuer: string;
  readonly authorization_endpoint: string;
  readonly token_endpoint: string;
  readonly jwks_uri?: string | undefined;
  readonly userinfo_endpoint?: string | undefined;
  readonly revocation_endpoint?: string | undefined;
  readonly raw: oauth.AuthorizationServer;
}

interface Entry {
  readonly expiresAt: number;
  readonly value?: DiscoveredMetadata;
  readonly error?: Error;
}

const TIMEOUT_MS = 10_000;
/** A failure is remembered briefly only, so one bad minute upstream does not stick. */
const FAILURE_TTL_MS = 15_000;

/**
 * Fetches and validates OpenID discovery documents (OIDC Discovery 1.0 §4) with oauth4webapi,
 * which checks that the document's `issuer` equals the one asked for (§4.3). Successful results
 * are cached for the configured TTL.
 */
export function createDiscovery(deps: {
  ttlSeconds: number;
  allowInsecure: (url: URL) => boolean;
  now?: () => number;
}) {
  const now = deps.now ?? Date.now;
  const cache = new Map<string, Entry>();
  const inflight = new Map<string, Promise<DiscoveredMetadata>>();

  async function fetchMetadata(issuer: string): Promise<DiscoveredMetadata> {
    const url = new URL(issuer);
    let as: oauth.AuthorizationServer;
    try {
      const response = await oauth.discoveryRequest(url, {
        algorithm: 'oidc',
        signal: AbortSignal.timeout(TIMEOUT_MS),
        [oauth.allowInsecureRequests]: deps.allowInsecure(url),
      });
      as = await oauth.processDiscoveryResponse(url, response);
    } catch (cause) {
      const reason = cause instanceof Error ? cause.message.slice(0, 200) : 'unknown error';
      throw errorFrom(providerErrors, 'discovery_failed', {
        message: `OpenID discovery for ${issuer} failed: ${reason}`,
        detail: reason,
        cause,
      });
    }
    if (typeof as.authorization_endpoint !== 'string' || typeof as.token_endpoint !== 'string') {
      throw errorFrom(providerErrors, 'discovery_failed', {
        message: `The discovery document of ${issuer} has no authorization_endpoint or token_endpoint.`,
      });
    }
    return {
      issuer: as.issuer,
      authorization_endpoint: as.authorization_endpoint,
      token_endpoint: as.token_endpoint,
      jwks_uri: as.jwks_uri,
      userinfo_endpoint: as.userinfo_endpoint,
      revocation_endpoint: as.revocation_endpoint,
      raw: as,
    };
  }

  function load(issuer: string): Promise<DiscoveredMetadata> {
    const running = inflight.get(issuer);
    if (running) return running;
    const promise = fetchMetadata(issuer)
      .then((value) => {
        cache.set(issuer, { value, expiresAt: now() + deps.ttlSeconds * 1000 });
        return value;
      })
      .catch((error: Error) => {
        cache.set(issuer, { error, expiresAt: now() + FAILURE_TTL_MS });
        throw error;
      })
      .finally(() => inflight.delete(issuer));
    inflight.set(issuer, promise);
    return promise;
  }

  return {
    /** Fetches now, ignoring the cache (registration and updates must see the live document). */
    refresh: load,
    /** Cached metadata, fetched on a miss or after the TTL. */
    async get(issuer: string): Promise<DiscoveredMetadata> {
      const entry = cache.get(issuer);
      if (entry && entry.expiresAt > now()) {
        if (entry.value) return entry.value;
        throw entry.error;
      }
      return load(issuer);
    },
  };
}

export type Discovery = ReturnType<typeof createDiscovery>;
