/** The testbed's vocabulary: its strategies and providers, and the values the control API reads and hands out. */
import { randomBytes } from 'node:crypto';
import type { OidcFixture } from '../../apps/broker/test/oidc-fixture.ts';
import type { StaticCredentials, Strategy } from './upstream.ts';

export const RETURN_URL = 'http://localhost:3000/connected';
export const WORKSPACE = 'testbed-user';
export const STRATEGIES: readonly Strategy[] = [
  'oauth2',
  'header',
  'headers',
  'query_param',
  'basic_auth',
  'hmac_payload',
  'aws_sigv4',
];
export const PROVIDERS: Record<Strategy, string> = {
  oauth2: 'tb-oauth2',
  header: 'tb-header',
  headers: 'tb-headers',
  query_param: 'tb-query',
  basic_auth: 'tb-basic',
  hmac_payload: 'tb-hmac',
  aws_sigv4: 'tb-sigv4',
};
export const SCOPES = ['tb:read', 'tb:write', 'secrets:read'];

/**
 * The provider the testbed registers for each strategy: the OpenID provider's client for oauth2, and
 * for the others a strategy whose credential the upstream checks at `{upstream}/{strategy}`
 * (upstream.ts; `headers`: two headers, one with text around its field).
 */
export function providerProfiles(
  upstreamUrl: string,
  idp: Pick<OidcFixture, 'clients' | 'issuer' | 'endpoints'>,
): Record<string, unknown>[] {
  const client = idp.clients[0]!;
  return [
    {
      name: PROVIDERS.oauth2,
      client_id: client.client_id,
      client_secret: client.client_secret,
      issuer: idp.issuer,
      enable_discovery: true,
      scopes: ['openid', 'email'],
      api_base_url: `${upstreamUrl}/oauth2`,
      params: { revocation_endpoint: idp.endpoints.revocation },
    },
    {
      name: PROVIDERS.header,
      auth_type: 'header',
      api_base_url: `${upstreamUrl}/header`,
      params: {
        auth_strategy: {
          type: 'header',
          config: { header_name: 'X-Api-Key', credential_field: 'api_key' },
        },
      },
    },
    {
      name: PROVIDERS.headers,
      auth_type: 'header',
      api_base_url: `${upstreamUrl}/headers`,
      params: {
        auth_strategy: {
          type: 'headers',
          config: { 'X-Api-Key': '{api_key}', 'X-App-Key': 'app {app_key}' },
        },
      },
    },
    {
      name: PROVIDERS.query_param,
      auth_type: 'query_param',
      api_base_url: `${upstreamUrl}/query_param`,
      params: {
        auth_strategy: {
          type: 'query_param',
          config: { param_name: 'api_key', credential_field: 'api_key' },
        },
      },
    },
    {
      name: PROVIDERS.basic_auth,
      auth_type: 'basic_auth',
      api_base_url: `${upstreamUrl}/basic_auth`,
    },
    {
      name: PROVIDERS.hmac_payload,
      auth_type: 'hmac_payload',
      api_base_url: `${upstreamUrl}/hmac_payload`,
      params: {
        auth_strategy: {
          type: 'hmac_payload',
          config: {
            header_name: 'X-Signature',
            secret_field: 'api_secret',
            algo: 'sha256',
            encoding: 'hex',
          },
        },
      },
    },
    {
      name: PROVIDERS.aws_sigv4,
      auth_type: 'aws_sigv4',
      api_base_url: `${upstreamUrl}/aws_sigv4`,
      params: { auth_strategy: { type: 'aws_sigv4', config: { region: 'eu-west-1', service: 'testbed' } } },
    },
  ];
}

export function tokenTtlOf(value: unknown): number | undefined {
  if (value === undefined || value === null) return undefined;
  const seconds = Number(value);
  if (!Number.isInteger(seconds) || seconds < 1 || seconds > 86_400)
    throw new Error('token_ttl must be an integer number of seconds from 1 to 86400');
  return seconds;
}

export const optionalString = (value: unknown): string | undefined =>
  typeof value === 'string' ? value : undefined;

/** A close code a server may send (RFC 6455 §7.4: 1000–1003, 1007–1014, 3000–4999). */
export function closeCode(value: unknown): number {
  const code = Number(value);
  const ok =
    Number.isInteger(code) &&
    ((code >= 1000 && code <= 1014 && ![1004, 1005, 1006].includes(code)) || (code >= 3000 && code <= 4999));
  if (!ok) throw new Error('code must be a close code a server may send');
  return code;
}

export function strategyOf(value: unknown): Strategy {
  if (STRATEGIES.includes(value as Strategy)) return value as Strategy;
  throw new Error(`strategy must be one of ${STRATEGIES.join(', ')}`);
}

/** Fresh credentials of the shape each strategy's provider expects (the upstream accepts them from now on). */
export function newCredentials(strategy: Exclude<Strategy, 'oauth2'>): StaticCredentials {
  const token = () => randomBytes(12).toString('hex');
  switch (strategy) {
    case 'header':
    case 'query_param':
      return { api_key: `key-${token()}` };
    case 'headers':
      return { api_key: `key-${token()}`, app_key: `app-${token()}` };
    case 'basic_auth':
      return { username: `user-${token()}`, password: `pw-${token()}` };
    case 'hmac_payload':
      return { api_secret: `hs-${token()}` };
    case 'aws_sigv4':
      return {
        access_key: `AKIA${randomBytes(8).toString('hex').toUpperCase()}`,
        secret_key: randomBytes(30).toString('base64'),
        session_token: `st-${token()}`,
      };
  }
}
