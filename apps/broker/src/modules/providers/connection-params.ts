import type { Strategy } from '../strategies/strategy.ts';
import type { StoredProfile } from './providers.schemas.ts';

/**
 * Per-connection parameters (decision 0015): `{name}` placeholders in a provider's URLs, filled per
 * connection from its `connection_config` (values given to request-connection, or their defaults)
 * and from values learnt at consent: from the token response, or from an API answer read with the
 * new access token (consent/learnt-api.ts). These helpers are pure; the checks of a provider's
 * declarations are in connection-params.validate.ts.
 */

/** A placeholder: `{name}`, the name as `connection_parameters` and `learnt` keys are written. */
export const PLACEHOLDER = /\{([A-Za-z_][A-Za-z0-9_]{0,63})\}/g;

/** The profile fields whose placeholders are filled (`params.revocation_endpoint` besides). */
export const TEMPLATED_FIELDS = ['auth_url', 'token_url', 'user_info_endpoint', 'api_base_url'] as const;

/** A connection's values by name: its connection_config and learnt values. */
export type ConnectionConfig = Readonly<Record<string, string>>;

export interface ConnectionParameter {
  readonly title: string;
  readonly description?: string;
  readonly pattern: string;
  readonly default?: string;
  readonly example?: string;
}

/**
 * Where a learnt value comes from: the token response, or (`api`) the JSON answer to a GET of
 * `url` with the new access token, whose placeholders name connection parameters or values learnt
 * from the token response.
 */
export type LearntValue =
  | { readonly from: 'token_response'; readonly path: string; readonly pattern: string }
  | { readonly from: 'api'; readonly url: string; readonly path: string; readonly pattern: string };

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/** The names a URL template's placeholders name, in order. */
export function placeholdersIn(template: string | undefined): string[] {
  if (template === undefined) return [];
  return [...template.matchAll(PLACEHOLDER)].map((m) => m[1]!);
}

/** Whether `template` names at least one placeholder. */
export const hasPlaceholders = (template: string | undefined): boolean => placeholdersIn(template).length > 0;

/**
 * `template` with every placeholder that `values` has a value for replaced by it, as it is: values
 * were checked against their anchored patterns (and, inside a URL, to URL-safe characters) before
 * they were stored, so nothing is percent-encoded. A placeholder without a value is left as written
 * (a learnt value before the consent that learns it); the URL it is in is then not usable.
 */
export function fill(template: string, values: ConnectionConfig): string {
  return template.replace(PLACEHOLDER, (whole, name: string) =>
    Object.hasOwn(values, name) ? values[name]! : whole,
  );
}

/** The profile with its templated URLs filled for one connection (unchanged without values). */
export function forConnection(profile: StoredProfile, values: ConnectionConfig | null): StoredProfile {
  if (values === null || Object.keys(values).length === 0) return profile;
  const out: StoredProfile = { ...profile };
  for (const field of TEMPLATED_FIELDS) {
    const value = profile[field];
    if (value !== undefined) out[field] = fill(value, values);
  }
  const revocation = profile.params.revocation_endpoint;
  if (typeof revocation === 'string')
    out.params = { ...profile.params, revocation_endpoint: fill(revocation, values) };
  return out;
}

/**
 * A static strategy with its settings filled for one connection: `{"service": "s3", "region":
 * "{region}"}` signs for the connection's region. The `headers` strategy is left alone: its
 * placeholders are credential fields, filled where the strategy is applied.
 */
export function strategyForConnection(strategy: Strategy, values: ConnectionConfig | null): Strategy {
  if (strategy.type === 'headers' || values === null || Object.keys(values).length === 0) return strategy;
  const config = Object.fromEntries(
    Object.entries(strategy.config).map(([key, value]) => [key, fill(value, values)]),
  );
  return { type: strategy.type, config };
}

/** The provider's declared per-connection parameters (malformed declarations were refused on write). */
export function connectionParameters(params: Record<string, unknown>): Record<string, ConnectionParameter> {
  const declared = params.connection_parameters;
  return isObject(declared) ? (declared as Record<string, ConnectionParameter>) : {};
}

/** The provider's declared learnt values. */
export function learntValues(params: Record<string, unknown>): Record<string, LearntValue> {
  const declared = params.learnt;
  return isObject(declared) ? (declared as Record<string, LearntValue>) : {};
}

/** A stored `connection_config` column: a JSON object of strings, or null. */
export function parseConnectionConfig(column: string | null | undefined): ConnectionConfig | null {
  if (column === null || column === undefined) return null;
  const parsed = JSON.parse(column) as unknown;
  return isObject(parsed) ? (parsed as ConnectionConfig) : null;
}

/** Characters a value may have when it fills a placeholder inside a URL (RFC 3986 §2.3 unreserved). */
const URL_SAFE = /^[A-Za-z0-9._~-]+$/;

/**
 * Whether `name` fills a placeholder at the very start of one of the profile's URLs (a value that
 * is itself an absolute https URL, as Salesforce's `instance_url`): such a value may hold `:` and `/`.
 */
export function startsAUrl(
  profile: Pick<StoredProfile, (typeof TEMPLATED_FIELDS)[number] | 'params'>,
  name: string,
) {
  const urls = [...TEMPLATED_FIELDS.map((f) => profile[f]), profile.params.revocation_endpoint];
  return urls.some((u) => typeof u === 'string' && u.startsWith(`{${name}}`));
}

/**
 * Why `value` cannot fill `name`'s placeholders, or undefined: it must match the declared anchored
 * pattern, and (unless it starts a URL) hold only URL-safe characters, so that it can never reach
 * another host or path than the template says.
 */
export function valueProblem(
  profile: Pick<StoredProfile, (typeof TEMPLATED_FIELDS)[number] | 'params'>,
  name: string,
  pattern: string,
  value: string,
): string | undefined {
  if (value.length > 2048) return 'must be at most 2048 characters';
  if (!new RegExp(pattern, 'u').test(value)) return `does not match the pattern ${pattern}`;
  if (startsAUrl(profile, name)) {
    const url = URL.parse(value);
    if (url === null || (url.protocol !== 'https:' && url.protocol !== 'http:'))
      return 'must be an absolute https URL';
    if (url.username || url.password || url.search || url.hash)
      return 'must be an origin or a path, without credentials, query or fragment';
    return undefined;
  }
  if (!URL_SAFE.test(value)) return "must hold only letters, digits, '.', '_', '~' and '-'";
  return undefined;
}

const INDEX = /^(0|[1-9][0-9]{0,5})$/;

/**
 * The value at a dotted `path` of a JSON answer, when it is a string. A numeric segment indexes an
 * array (`0.id`: the first site's id); other segments name an object's own members.
 */
export function readPath(body: unknown, path: string): string | undefined {
  let node: unknown = body;
  for (const key of path.split('.')) {
    if (Array.isArray(node) && INDEX.test(key)) node = node[Number(key)];
    else if (isObject(node) && Object.hasOwn(node, key)) node = node[key];
    else return undefined;
  }
  return typeof node === 'string' ? node : undefined;
}

/** A refusal of one name of a request's `connection_config`. */
export interface ConfigProblem {
  readonly name: string;
  readonly message: string;
}

/**
 * The values a new connection stores: those given in request-connection's `connection_config`,
 * each declared parameter's `default` when it was not given. Unknown names, missing values and
 * values that do not fit are problems (and nothing is created). Null when the provider declares
 * no parameters and none were given.
 */
export function resolveConnectionConfig(
  profile: Pick<StoredProfile, (typeof TEMPLATED_FIELDS)[number] | 'params'>,
  given: Readonly<Record<string, unknown>> | undefined,
): { values: Record<string, string> | null; problems: ConfigProblem[] } {
  const declared = connectionParameters(profile.params);
  const learnt = learntValues(profile.params);
  const problems: ConfigProblem[] = [];
  for (const name of Object.keys(given ?? {})) {
    if (Object.hasOwn(declared, name)) continue;
    problems.push({
      name,
      message: Object.hasOwn(learnt, name)
        ? 'is learnt from the provider at consent, not given'
        : 'is not a connection parameter of this provider',
    });
  }
  const values: Record<string, string> = {};
  for (const [name, spec] of Object.entries(declared)) {
    const raw = given !== undefined && Object.hasOwn(given, name) ? given[name] : spec.default;
    if (raw === undefined) {
      problems.push({ name, message: `is required (${spec.title})` });
      continue;
    }
    if (typeof raw !== 'string') {
      problems.push({ name, message: 'must be a string' });
      continue;
    }
    const problem = valueProblem(profile, name, spec.pattern, raw);
    if (problem === undefined) values[name] = raw;
    else problems.push({ name, message: problem });
  }
  const none = Object.keys(declared).length === 0 && Object.keys(given ?? {}).length === 0;
  return { values: none ? null : values, problems };
}

/**
 * The learnt values of a token answer (consent): each value declared `from: token_response` read at
 * its path and checked against its pattern. A value that is missing or does not fit is a problem:
 * the consent fails.
 */
export function learntFrom(
  profile: Pick<StoredProfile, (typeof TEMPLATED_FIELDS)[number] | 'params'>,
  answer: Record<string, unknown>,
): { values: Record<string, string>; problems: ConfigProblem[] } {
  const values: Record<string, string> = {};
  const problems: ConfigProblem[] = [];
  for (const [name, spec] of Object.entries(learntValues(profile.params))) {
    if (spec.from === 'api') continue;
    const learnt = learntValueIn(profile, name, spec, answer, 'the token response');
    if (learnt.ok) values[name] = learnt.value;
    else problems.push({ name, message: learnt.message });
  }
  return { values, problems };
}

/** The value of learnt value `name` in `answer` (read from `source`), checked against its pattern. */
export function learntValueIn(
  profile: Pick<StoredProfile, (typeof TEMPLATED_FIELDS)[number] | 'params'>,
  name: string,
  spec: LearntValue,
  answer: unknown,
  source: string,
): { ok: true; value: string } | { ok: false; message: string } {
  const value = readPath(answer, spec.path);
  if (value === undefined) return { ok: false, message: `is missing from ${source} (${spec.path})` };
  const problem = valueProblem(profile, name, spec.pattern, value);
  return problem === undefined ? { ok: true, value } : { ok: false, message: problem };
}

/** `template` filled with `values` as a URL; undefined when a placeholder has no value or it is not a URL. */
export function filledUrl(template: string, values: ConnectionConfig | undefined): URL | undefined {
  const filled = fill(template, values ?? {});
  if (hasPlaceholders(filled)) return undefined;
  return URL.parse(filled) ?? undefined;
}
