import { addressProblem } from '../../egress/endpoint-rules.ts';
import { defaultCredentialFields, STRATEGY_SETTINGS, strategyFor } from '../strategies/strategy.ts';
import type { AuthType, StoredProfile } from './providers.schemas.ts';
import { PROBE_KEYS, PROBE_METHODS } from './validation-probe.ts';

export interface Problem {
  path: string;
  message: string;
}

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
  api_key: ['header', 'query_param'],
  header: ['header'],
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

const LOOPBACK = /^(localhost|127(\.\d{1,3}){3}|\[::1\])$/;

export interface ValidationOptions {
  /** Development allows http for loopback hosts (a local identity provider); production never. */
  readonly allowLoopbackHttp: boolean;
  /** Whether a client secret will exist after this write (given now or already stored). */
  readonly hasClientSecret: boolean;
  /**
   * `NEXUS_EGRESS_ALLOWED_CIDRS`: special-purpose ranges a URL the broker calls may name as a
   * literal address. Without it, no special-purpose literal is accepted (loopback outside production
   * excepted).
   */
  readonly egressAllowedCidrs?: readonly string[] | undefined;
}

/**
 * A provider URL: absolute, https (plain http only for loopback outside production), without
 * credentials or fragment. A URL the broker itself calls (`called`: every one but `auth_url`, which
 * only the user's browser opens) may not name a special-purpose address (egress/endpoint-rules.ts);
 * the egress guard checks it again, after DNS resolution, whenever it is called.
 */
function checkUrl(
  problems: Problem[],
  path: string,
  value: string | undefined,
  options: ValidationOptions,
  called = true,
): void {
  if (value === undefined) return;
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    problems.push({ path, message: 'must be an absolute URL' });
    return;
  }
  if (url.username || url.password) problems.push({ path, message: 'must not contain credentials' });
  if (url.hash) problems.push({ path, message: 'must not contain a fragment' });
  const secure =
    url.protocol === 'https:' ||
    (url.protocol === 'http:' && options.allowLoopbackHttp && LOOPBACK.test(url.hostname));
  if (!secure) {
    problems.push({
      path,
      message: options.allowLoopbackHttp
        ? 'must use https (http is allowed only for localhost in development)'
        : 'must use https',
    });
    return;
  }
  if (!called) return;
  const problem = addressProblem(url, {
    allowLoopback: options.allowLoopbackHttp,
    allowCidrs: options.egressAllowedCidrs ?? [],
  });
  if (problem !== undefined) problems.push({ path, message: problem });
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

const FIELD_NAME = /^[A-Za-z0-9_.-]{1,64}$/;
const SCHEMA_KEYS = new Set([
  '$schema',
  'type',
  'title',
  'description',
  'properties',
  'required',
  'additionalProperties',
]);
const PROPERTY_KEYS = new Set(['type', 'title', 'description', 'format', 'maxLength']);

/** `params.credential_schema`: the JSON Schema subset the capture form is generated from (capture.schema.ts). */
function checkCredentialSchema(problems: Problem[], profile: StoredProfile): void {
  const schema = profile.params.credential_schema;
  const path = 'params.credential_schema';
  if (typeof schema !== 'object' || schema === null || Array.isArray(schema)) return; // reported already
  if (profile.auth_type === 'oauth2') {
    problems.push({ path, message: 'only for static-credential auth types' });
    return;
  }
  const s = schema as Record<string, unknown>;
  for (const key of Object.keys(s))
    if (!SCHEMA_KEYS.has(key)) problems.push({ path: `${path}.${key}`, message: 'not supported' });
  if (s.type !== undefined && s.type !== 'object')
    problems.push({ path: `${path}.type`, message: 'must be "object"' });
  const props = s.properties;
  if (typeof props !== 'object' || props === null || Array.isArray(props)) {
    problems.push({ path: `${path}.properties`, message: 'must be an object of field definitions' });
    return;
  }
  const names = Object.keys(props);
  if (names.length === 0 || names.length > 20)
    problems.push({ path: `${path}.properties`, message: 'must define 1 to 20 fields' });
  for (const [name, def] of Object.entries(props)) {
    const at = `${path}.properties.${name.slice(0, 64)}`;
    if (!FIELD_NAME.test(name)) {
      problems.push({
        path: at,
        message: 'field names are letters, digits, dot, dash and underscore (at most 64)',
      });
      continue;
    }
    if (typeof def !== 'object' || def === null || Array.isArray(def)) {
      problems.push({
        path: at,
        message: 'must be an object such as {"type": "string", "title": "API key"}',
      });
      continue;
    }
    const d = def as Record<string, unknown>;
    for (const key of Object.keys(d))
      if (!PROPERTY_KEYS.has(key)) problems.push({ path: `${at}.${key}`, message: 'not supported' });
    if (d.type !== undefined && d.type !== 'string')
      problems.push({ path: `${at}.type`, message: 'captured fields are strings' });
    for (const [key, max] of [
      ['title', 100],
      ['description', 300],
      ['format', 32],
    ] as const) {
      if (d[key] !== undefined && (typeof d[key] !== 'string' || d[key].length > max))
        problems.push({ path: `${at}.${key}`, message: `must be a string of at most ${max} characters` });
    }
    if (
      d.maxLength !== undefined &&
      (!Number.isInteger(d.maxLength) || (d.maxLength as number) < 1 || (d.maxLength as number) > 4096)
    )
      problems.push({ path: `${at}.maxLength`, message: 'must be an integer from 1 to 4096' });
  }
  if (s.required !== undefined) {
    if (!Array.isArray(s.required) || !s.required.every((r) => typeof r === 'string' && names.includes(r)))
      problems.push({ path: `${path}.required`, message: 'must list names of defined fields' });
  }
  // The strategy reads its fields from what the form captures.
  for (const field of defaultCredentialFields(strategyFor(profile))) {
    if (field !== 'session_token' && !names.includes(field))
      problems.push({
        path: `${path}.properties`,
        message: `must define "${field}", which the ${strategyFor(profile).type} strategy applies`,
      });
  }
}

/**
 * `params.validation`: the probe of captured credentials (see validation-probe.ts), in Nexus's
 * keys and the original's (`skip`, `failure_status`, `failure_body_contains`, `success_body_contains`).
 */
function checkValidation(problems: Problem[], profile: StoredProfile, options: ValidationOptions): void {
  const value = profile.params.validation;
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return; // reported already
  const path = 'params.validation';
  const onlySkip = Object.keys(value).length === 1 && (value as { skip?: unknown }).skip === true;
  if (profile.auth_type === 'oauth2' || (profile.auth_type === 'aws_sigv4' && !onlySkip)) {
    problems.push({
      path,
      message: `not available for auth_type ${profile.auth_type}: only static credentials the broker can apply are probed`,
    });
    return;
  }
  const v = value as Record<string, unknown>;
  for (const key of Object.keys(v)) {
    if (!PROBE_KEYS.has(key)) problems.push({ path: `${path}.${key}`, message: 'unknown field' });
  }
  if (v.method !== undefined && !PROBE_METHODS.includes(v.method as never))
    problems.push({ path: `${path}.method`, message: `must be one of ${PROBE_METHODS.join(', ')}` });
  for (const key of ['expect_status', 'failure_status'] as const) {
    const list = v[key];
    if (
      list !== undefined &&
      (!Array.isArray(list) ||
        list.length === 0 ||
        list.length > 20 ||
        !list.every((n) => Number.isInteger(n) && n >= 200 && n <= 599))
    )
      problems.push({
        path: `${path}.${key}`,
        message: 'must be a list of 1 to 20 HTTP status codes between 200 and 599',
      });
  }
  for (const key of ['failure_body_contains', 'success_body_contains'] as const) {
    const text = v[key];
    if (text !== undefined && (typeof text !== 'string' || text.length === 0 || text.length > 256))
      problems.push({ path: `${path}.${key}`, message: 'must be a string of 1 to 256 characters' });
  }
  if (v.skip !== undefined && typeof v.skip !== 'boolean')
    problems.push({ path: `${path}.skip`, message: 'must be true or false' });
  // The original's opt-out: no probe, so nothing to probe either.
  if (v.skip === true) return;
  if (v.url === undefined) {
    if (profile.user_info_endpoint === undefined)
      problems.push({ path: `${path}.url`, message: 'required unless user_info_endpoint is set' });
  } else if (typeof v.url !== 'string' || v.url.length > 2048) {
    problems.push({ path: `${path}.url`, message: 'must be a URL or a path of at most 2048 characters' });
  } else if (v.url.startsWith('/')) {
    if (profile.api_base_url === undefined)
      problems.push({ path: `${path}.url`, message: 'a path needs api_base_url to resolve against' });
  } else {
    checkUrl(problems, `${path}.url`, v.url, options);
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
