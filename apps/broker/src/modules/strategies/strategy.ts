import type { StoredProfile } from '../providers/providers.schemas.ts';
import { headersFields } from './headers.ts';

/** What an agent applies to its outgoing request (the v1 contract's strategies table). */
export interface Strategy {
  readonly type:
    | 'oauth2'
    | 'header'
    | 'headers'
    | 'query_param'
    | 'basic_auth'
    | 'hmac_payload'
    | 'aws_sigv4';
  /** Settings by name; for `headers`, header names to value templates (headers.ts). */
  readonly config: Readonly<Record<string, string>>;
}

/** Defaults per strategy type, as the original documents them; the provider's config wins. */
const DEFAULTS: Record<Strategy['type'], Record<string, string>> = {
  oauth2: {},
  header: { header_name: 'Authorization', credential_field: 'api_key' },
  headers: {},
  query_param: { credential_field: 'api_key' },
  basic_auth: { username_field: 'username', password_field: 'password' },
  hmac_payload: { secret_field: 'api_secret', algo: 'sha256', encoding: 'hex' },
  aws_sigv4: { region: 'us-east-1' },
};

/**
 * The settings each strategy reads from its config, required and optional (the v1 contract's
 * strategies table). The original's registration guide also writes them flat in `params`
 * (`params.param_name`); providers/provider-params.ts folds that form into `auth_strategy.config`.
 */
export const STRATEGY_SETTINGS: Record<
  Strategy['type'],
  { readonly required: readonly string[]; readonly optional: readonly string[] }
> = {
  oauth2: { required: [], optional: [] },
  header: { required: [], optional: ['header_name', 'credential_field', 'value_prefix'] },
  // Its config keys are header names, not settings (headers.validate.ts checks them).
  headers: { required: [], optional: [] },
  query_param: { required: ['param_name'], optional: ['credential_field'] },
  basic_auth: { required: [], optional: ['username_field', 'password_field'] },
  hmac_payload: { required: ['header_name'], optional: ['secret_field', 'algo', 'encoding'] },
  aws_sigv4: { required: ['service'], optional: ['region'] },
};

/** Every setting name of every strategy. */
export const ALL_STRATEGY_SETTINGS: ReadonlySet<string> = new Set(
  Object.values(STRATEGY_SETTINGS).flatMap((s) => [...s.required, ...s.optional]),
);

/**
 * The header an `api_key` provider registered without a strategy gets, as the original answered
 * agents (`{type: header, config: {header_name: X-API-Key}}`). It is written into the provider's
 * `params.auth_strategy` when the provider is registered (provider-params.ts); a row written before
 * that rule (no `auth_strategy`) keeps `DEFAULTS.header`'s `Authorization`.
 */
export const API_KEY_DEFAULT_HEADER = 'X-API-Key';

/** The strategy type a static auth type applies when its profile names none. */
export const IMPLIED: Record<StoredProfile['auth_type'], Strategy['type']> = {
  oauth2: 'oauth2',
  api_key: 'header',
  header: 'header',
  query_param: 'query_param',
  basic_auth: 'basic_auth',
  hmac_payload: 'hmac_payload',
  aws_sigv4: 'aws_sigv4',
};

/**
 * The strategy of a provider: its `params.auth_strategy` (validated at registration, flat settings
 * folded in) or the implied one. An `api_key` row without one was written before registration
 * started recording the original's `X-API-Key` default, and keeps sending `Authorization`.
 */
export function strategyFor(profile: StoredProfile): Strategy {
  if (profile.auth_type === 'oauth2') return { type: 'oauth2', config: {} };
  const given = profile.params.auth_strategy as
    | { type?: Strategy['type']; config?: Record<string, string> }
    | undefined;
  const type = given?.type ?? IMPLIED[profile.auth_type];
  return { type, config: { ...DEFAULTS[type], ...(given?.config ?? {}) } };
}

/** The credential fields a static provider's capture form asks for, when it has no `credential_schema`. */
export function defaultCredentialFields(strategy: Strategy): string[] {
  switch (strategy.type) {
    case 'header':
    case 'query_param':
      return [strategy.config.credential_field ?? 'api_key'];
    case 'headers':
      return headersFields(strategy.config);
    case 'basic_auth':
      return [strategy.config.username_field ?? 'username', strategy.config.password_field ?? 'password'];
    case 'hmac_payload':
      return [strategy.config.secret_field ?? 'api_secret'];
    case 'aws_sigv4':
      return ['access_key', 'secret_key', 'session_token'];
    default:
      return [];
  }
}
