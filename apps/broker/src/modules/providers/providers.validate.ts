import { STRATEGY_SETTINGS } from '../strategies/strategy.ts';
import { checkCredentialSchema, checkValidation } from './capture-params.validate.ts';
import { CATALOG_PARAMS, checkCatalogParams } from './catalog-params.validate.ts';
import { hasPlaceholders } from './connection-params.ts';
import { checkHeadersConfig, isReservedHeader } from './headers.validate.ts';
import { checkUrl as checkPlainUrl, type Problem, type ValidationOptions } from './provider-url-rules.ts';
import type { AuthType, StoredProfile } from './providers.schemas.ts';

export type { Problem, ValidationOptions } from './provider-url-rules.ts';

/**
 * Authorization request parameters the broker sets itself (RFC 6749 §4.1.1, RFC 7636 §4.3,
 * OIDC Core §3.1.2.1, RFC 9101). Extra `params` may add to the request, never replace these.
 */
export const CORE_AUTHORIZE_PARAMS: ReadonlySet<string> = new Set([
  'response_type',
  'client_id',
  'redirect_uri',
  'scope',
  'state',
  'nonce',
  'code_challenge',
  'code_challenge_method',
  'response_mode',
  'request',
  'request_uri',
]);

const STRATEGY_FOR: Record<AuthType, readonly string[]> = {
  oauth2: ['oauth2'],
  api_key: ['header', 'query_param', 'headers'],
  header: ['header', 'headers'],
  query_param: ['query_param'],
  basic_auth: ['basic_auth'],
  hmac_payload: ['hmac_payload'],
  aws_sigv4: ['aws_sigv4'],
};

const ENUM_CONFIG: Record<string, readonly string[]> = {
  algo: ['sha256', 'sha1'],
  encoding: ['hex', 'base64'],
};

const MAX_PARAMS = 50;
const MAX_JSON_PARAM = 16 * 1024;
const BOOL_PARAMS = new Set(['skip_scope_on_auth', 'skip_scope_on_exchange']);
const OBJECT_PARAMS = new Set(['credential_schema', 'auth_strategy', 'validation']);

const MAX_JSON_DEPTH = 16;
const OAUTH_ONLY_PARAMS = [
  'skip_scope_on_auth',
  'skip_scope_on_exchange',
  'token_request_format',
  'revocation_endpoint',
] as const;

/**
 * A provider URL (provider-url-rules.ts). One with `{name}` placeholders is checked once sample
 * values fill it, and refused where placeholders are not filled (connection-params.validate.ts).
 */
function checkUrl(
  problems: Problem[],
  path: string,
  value: string | undefined,
  options: ValidationOptions,
  called = true,
): void {
  if (!hasPlaceholders(value)) checkPlainUrl(problems, path, value, options, called);
}

/** Whether a parsed JSON value nests deeper than `max` (iterative: no recursion to overflow). */
function deeperThan(value: unknown, max: number): boolean {
  const stack: [unknown, number][] = [[value, 1]];
  while (stack.length > 0) {
    const [node, depth] = stack.pop()!;
    if (typeof node !== 'object' || node === null) continue;
    if (depth > max) return true;
    for (const child of Object.values(node)) stack.push([child, depth + 1]);
  }
  return false;
}

function checkStrategy(problems: Problem[], authType: AuthType, strategy: unknown): void {
  const allowed = STRATEGY_FOR[authType];
  if (strategy === undefined) {
    const implied = STRATEGY_SETTINGS[allowed[0] as keyof typeof STRATEGY_SETTINGS];
    for (const key of implied.required) {
      problems.push({
        path: `params.auth_strategy.config.${key}`,
        message: `required for auth_type ${authType} (in params.auth_strategy.config, or flat as params.${key})`,
      });
    }
    return;
  }
  if (typeof strategy !== 'object' || strategy === null || Array.isArray(strategy)) {
    problems.push({ path: 'params.auth_strategy', message: 'must be an object {type, config}' });
    return;
  }
  const { type, config = {}, ...rest } = strategy as { type?: unknown; config?: unknown };
  for (const key of Object.keys(rest))
    problems.push({ path: `params.auth_strategy.${key}`, message: 'unknown field' });
  if (typeof type !== 'string' || !allowed.includes(type)) {
    problems.push({
      path: 'params.auth_strategy.type',
      message: `must be one of ${allowed.join(', ')} for auth_type ${authType}`,
    });
    return;
  }
  if (typeof config !== 'object' || config === null || Array.isArray(config)) {
    problems.push({ path: 'params.auth_strategy.config', message: 'must be an object' });
    return;
  }
  // Its config maps header names to templates, not settings (headers.validate.ts).
  if (type === 'headers') {
    checkHeadersConfig(problems, config as Record<string, unknown>);
    return;
  }
  const spec = STRATEGY_SETTINGS[type as keyof typeof STRATEGY_SETTINGS];
  const values = config as Record<string, unknown>;
  for (const key of spec.required) {
    if (typeof values[key] !== 'string' || values[key] === '') {
      problems.push({ path: `params.auth_strategy.config.${key}`, message: `required for strategy ${type}` });
    }
  }
  for (const [key, value] of Object.entries(values)) {
    const path = `params.auth_strategy.config.${key}`;
    if (!spec.required.includes(key) && !spec.optional.includes(key)) {
      problems.push({ path, message: `not a setting of strategy ${type}` });
    } else if (typeof value !== 'string' || value.length > 256) {
      problems.push({ path, message: 'must be a string of at most 256 characters' });
    } else if (ENUM_CONFIG[key] && !ENUM_CONFIG[key].includes(value)) {
      problems.push({ path, message: `must be one of ${ENUM_CONFIG[key].join(', ')}` });
    } else if (key === 'header_name' && !/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(value)) {
      problems.push({ path, message: 'must be a valid HTTP header name' });
    } else if (key === 'header_name' && isReservedHeader(value)) {
      problems.push({ path, message: 'is a header the broker and the proxy set themselves' });
    }
  }
}

function checkParams(problems: Problem[], profile: StoredProfile, options: ValidationOptions): void {
  const entries = Object.entries(profile.params);
  if (entries.length > MAX_PARAMS)
    problems.push({ path: 'params', message: `at most ${MAX_PARAMS} entries` });
  for (const [key, value] of entries) {
    const path = `params.${key}`;
    if (!/^[A-Za-z0-9_.-]{1,64}$/.test(key)) {
      problems.push({ path, message: 'parameter names are letters, digits, dot, dash and underscore' });
    } else if (CATALOG_PARAMS.has(key)) {
      // Settings that catalogue templates write (catalog-params.validate.ts checks them below).
    } else if (CORE_AUTHORIZE_PARAMS.has(key.toLowerCase())) {
      problems.push({ path, message: 'overrides a core authorization parameter the broker sets itself' });
    } else if (BOOL_PARAMS.has(key)) {
      if (typeof value !== 'boolean' && value !== 'true' && value !== 'false')
        problems.push({ path, message: 'must be true or false' });
    } else if (OBJECT_PARAMS.has(key)) {
      if (typeof value !== 'object' || value === null || Array.isArray(value))
        problems.push({ path, message: 'must be an object' });
      else if (deeperThan(value, MAX_JSON_DEPTH))
        problems.push({ path, message: `must be nested at most ${MAX_JSON_DEPTH} levels deep` });
      else if (JSON.stringify(value).length > MAX_JSON_PARAM)
        problems.push({ path, message: `must be at most ${MAX_JSON_PARAM} bytes of JSON` });
    } else if (key === 'token_request_format') {
      if (value !== 'json' && value !== 'form') problems.push({ path, message: 'must be json or form' });
    } else if (key === 'revocation_endpoint' || key === 'jwks_uri') {
      if (typeof value !== 'string') problems.push({ path, message: 'must be a URL' });
      else checkUrl(problems, path, value, options);
    } else if (typeof value !== 'string' || value.length > 2048) {
      problems.push({
        path,
        message: 'extra authorization parameters must be strings of at most 2048 characters',
      });
    }
  }
  checkCatalogParams(problems, profile, options);
  if (profile.params.validation !== undefined) checkValidation(problems, profile, options);
  if (profile.params.credential_schema !== undefined) checkCredentialSchema(problems, profile);
  if (profile.params.jwks_uri !== undefined) {
    // The key set of the configured issuer: without one, whose keys they are is unknown.
    if (profile.auth_type !== 'oauth2')
      problems.push({ path: 'params.jwks_uri', message: 'only for oauth2 (it verifies id_tokens)' });
    else if (profile.issuer === undefined)
      problems.push({ path: 'params.jwks_uri', message: 'needs issuer: the id_tokens it verifies name it' });
  }
  if (profile.auth_type !== 'oauth2') {
    // Settings of the authorization request and the token endpoint: a static provider has neither,
    // so they would be accepted and do nothing.
    for (const key of OAUTH_ONLY_PARAMS) {
      if (profile.params[key] !== undefined)
        problems.push({
          path: `params.${key}`,
          message: `only for oauth2: auth_type ${profile.auth_type} has no authorization request or token endpoint`,
        });
    }
  }
  if (profile.auth_type === 'oauth2') {
    if (profile.params.auth_strategy !== undefined) {
      problems.push({
        path: 'params.auth_strategy',
        message: 'only for static-credential auth types; oauth2 always uses the oauth2 strategy',
      });
    }
  } else {
    checkStrategy(problems, profile.auth_type, profile.params.auth_strategy);
  }
}
/** Rules that depend on `auth_type` and on several fields at once; the zod schema did the rest. */
export function validateProfile(profile: StoredProfile, options: ValidationOptions): Problem[] {
  const problems: Problem[] = [];
  // The browser opens auth_url; the broker calls the others.
  checkUrl(problems, 'auth_url', profile.auth_url, options, false);
  for (const field of ['token_url', 'issuer', 'api_base_url'] as const) {
    checkUrl(problems, field, profile[field], options);
  }
  // A path is resolved under api_base_url (checked above) where it is called (validation-probe.ts).
  if (profile.user_info_endpoint?.startsWith('/')) {
    if (profile.api_base_url === undefined)
      problems.push({ path: 'user_info_endpoint', message: 'a path needs api_base_url to resolve against' });
  } else {
    checkUrl(problems, 'user_info_endpoint', profile.user_info_endpoint, options);
  }
  if (profile.auth_type === 'oauth2') {
    if (profile.client_id === undefined) problems.push({ path: 'client_id', message: 'required for oauth2' });
    if (!options.hasClientSecret)
      problems.push({ path: 'client_secret', message: `required for oauth2 with ${profile.auth_header}` });
    if (profile.enable_discovery) {
      if (profile.issuer === undefined)
        problems.push({ path: 'issuer', message: 'required when enable_discovery is true' });
    } else {
      if (profile.auth_url === undefined)
        problems.push({
          path: 'auth_url',
          message: 'required for oauth2 unless enable_discovery is true with an issuer',
        });
      if (profile.token_url === undefined)
        problems.push({
          path: 'token_url',
          message: 'required for oauth2 unless enable_discovery is true with an issuer',
        });
    }
  } else {
    const oauthOnly = ['client_id', 'auth_url', 'token_url', 'issuer'] as const;
    for (const field of oauthOnly) {
      if (profile[field] !== undefined)
        problems.push({ path: field, message: `not used by auth_type ${profile.auth_type}` });
    }
    if (options.hasClientSecret)
      problems.push({ path: 'client_secret', message: `not used by auth_type ${profile.auth_type}` });
    if (profile.enable_discovery)
      problems.push({ path: 'enable_discovery', message: `not used by auth_type ${profile.auth_type}` });
    if (profile.auth_header !== 'client_secret_post')
      problems.push({ path: 'auth_header', message: `not used by auth_type ${profile.auth_type}` });
  }
  checkParams(problems, profile, options);
  return problems;
}
