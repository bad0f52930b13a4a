/**
 * Configuration: each setting comes from the constructor argument, else the environment, else a
 * default. Resolved once, at construction; a missing credential fails there with a message that
 * names both ways to provide it.
 */
import { ConfigurationError } from './errors.ts';

export const DEFAULT_BASE_URL = 'http://localhost:8080';
export const DEFAULT_TIMEOUT_MS = 30_000;

/** Retry policy for broker calls (connection errors, 429 with Retry-After, 502/503/504). */
export interface RetryOptions {
  /** Retries after the first attempt; 0 disables retrying. Default 3. */
  maxRetries?: number;
  /** First backoff delay; doubled on every retry, with full jitter. Default 250 ms. */
  baseDelayMs?: number;
  /** Upper bound of one backoff delay (and of an honoured Retry-After). Default 10 s. */
  maxDelayMs?: number;
}

/** Reported before each retry of a broker call (for logging; never carries a credential). */
export interface RetryEvent {
  /** 1 for the first retry. */
  attempt: number;
  /** How long the SDK waits before it. */
  delayMs: number;
  method: string;
  path: string;
  /** `ECONNREFUSED`, `TimeoutError`, `HTTP 503`, … */
  reason: string;
}

export interface ResolvedRetry {
  readonly maxRetries: number;
  readonly baseDelayMs: number;
  readonly maxDelayMs: number;
}

export const DEFAULT_RETRY: ResolvedRetry = Object.freeze({
  maxRetries: 3,
  baseDelayMs: 250,
  maxDelayMs: 10_000,
});

/** Options shared by `NexusClient` and `NexusAdmin`. */
export interface CommonOptions {
  /** Broker base URL. Env `NEXUS_URL`; default `http://localhost:8080`. */
  baseUrl?: string;
  /** Per-attempt timeout of every broker call. Default 30 s. */
  timeoutMs?: number;
  retry?: RetryOptions;
  /** The `fetch` used to reach the broker (default: the global one). */
  fetch?: typeof fetch;
  /** Environment to read (default `process.env`); tests pass their own. */
  env?: Readonly<Record<string, string | undefined>>;
  /** Clock in milliseconds since the epoch (default `Date.now`); used for token expiry. */
  now?: () => number;
  /** Sent as `User-Agent`. */
  userAgent?: string;
  /** Called before every retry of a broker call. */
  onRetry?: (event: RetryEvent) => void;
}

export type Credential =
  | { readonly kind: 'apiKey'; readonly apiKey: string }
  | {
      readonly kind: 'client';
      readonly clientId: string;
      readonly clientSecret: string;
      readonly scope?: string;
    };

export interface ResolvedConfig {
  readonly baseUrl: string;
  readonly timeoutMs: number;
  readonly retry: ResolvedRetry;
  readonly fetch: typeof fetch;
  readonly now: () => number;
  readonly userAgent: string;
  readonly onRetry: ((event: RetryEvent) => void) | undefined;
}

const nonEmpty = (value: string | undefined): string | undefined =>
  value === undefined || value.trim() === '' ? undefined : value.trim();

export function resolveCommon(options: CommonOptions): ResolvedConfig {
  const env = options.env ?? process.env;
  const baseUrl = (nonEmpty(options.baseUrl) ?? nonEmpty(env.NEXUS_URL) ?? DEFAULT_BASE_URL).replace(
    /\/+$/,
    '',
  );
  try {
    const url = new URL(baseUrl);
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error('not http(s)');
  } catch {
    throw new ConfigurationError(
      `The Nexus URL is not a valid http(s) URL. Pass { baseUrl } or set NEXUS_URL (default ${DEFAULT_BASE_URL}).`,
    );
  }
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  if (!(timeoutMs > 0)) throw new ConfigurationError('timeoutMs must be a positive number of milliseconds.');
  const retry: ResolvedRetry = Object.freeze({
    maxRetries: options.retry?.maxRetries ?? DEFAULT_RETRY.maxRetries,
    baseDelayMs: options.retry?.baseDelayMs ?? DEFAULT_RETRY.baseDelayMs,
    maxDelayMs: options.retry?.maxDelayMs ?? DEFAULT_RETRY.maxDelayMs,
  });
  if (!Number.isInteger(retry.maxRetries) || retry.maxRetries < 0)
    throw new ConfigurationError('retry.maxRetries must be a whole number >= 0.');
  const fetchImpl = options.fetch ?? globalThis.fetch;
  return {
    baseUrl,
    timeoutMs,
    retry,
    fetch: fetchImpl,
    now: options.now ?? Date.now,
    userAgent: options.userAgent ?? '@nexus-broker/sdk',
    onRetry: options.onRetry,
  };
}

/**
 * The agent client's credential: arguments first (agent client id + secret, else API key), then the
 * environment in the same order (`NEXUS_CLIENT_ID` + `NEXUS_CLIENT_SECRET`, else `NEXUS_API_KEY`).
 */
export function resolveAgentCredential(options: {
  apiKey?: string;
  clientId?: string;
  clientSecret?: string;
  scope?: string;
  env?: Readonly<Record<string, string | undefined>>;
}): Credential {
  const env = options.env ?? process.env;
  const fromArgs = credentialFrom(
    nonEmpty(options.clientId),
    nonEmpty(options.clientSecret),
    nonEmpty(options.apiKey),
    'the clientId option',
    'the clientSecret option',
    options.scope,
  );
  if (fromArgs) return fromArgs;
  const fromEnv = credentialFrom(
    nonEmpty(env.NEXUS_CLIENT_ID),
    nonEmpty(env.NEXUS_CLIENT_SECRET),
    nonEmpty(env.NEXUS_API_KEY),
    'NEXUS_CLIENT_ID',
    'NEXUS_CLIENT_SECRET',
    options.scope,
  );
  if (fromEnv) return fromEnv;
  throw new ConfigurationError(
    'No Nexus credential: pass { clientId, clientSecret } (an agent) or { apiKey } to the constructor, ' +
      'or set NEXUS_CLIENT_ID and NEXUS_CLIENT_SECRET (or NEXUS_API_KEY) in the environment.',
  );
}

function credentialFrom(
  clientId: string | undefined,
  clientSecret: string | undefined,
  apiKey: string | undefined,
  idName: string,
  secretName: string,
  scope: string | undefined,
): Credential | undefined {
  if (clientId !== undefined && clientSecret !== undefined)
    return scope === undefined
      ? { kind: 'client', clientId, clientSecret }
      : { kind: 'client', clientId, clientSecret, scope };
  if (clientId !== undefined && apiKey === undefined)
    throw new ConfigurationError(`${idName} is set but ${secretName} is not; agent login needs both.`);
  if (clientSecret !== undefined && apiKey === undefined)
    throw new ConfigurationError(`${secretName} is set but ${idName} is not; agent login needs both.`);
  if (apiKey !== undefined) return { kind: 'apiKey', apiKey };
  return undefined;
}

/** The admin client's credential: the `apiKey` argument, else `NEXUS_API_KEY`. */
export function resolveAdminCredential(options: {
  apiKey?: string;
  env?: Readonly<Record<string, string | undefined>>;
}): Credential {
  const apiKey = nonEmpty(options.apiKey) ?? nonEmpty((options.env ?? process.env).NEXUS_API_KEY);
  if (apiKey === undefined)
    throw new ConfigurationError(
      'No Nexus admin API key: pass { apiKey } to the NexusAdmin constructor or set NEXUS_API_KEY in the environment.',
    );
  return { kind: 'apiKey', apiKey };
}
