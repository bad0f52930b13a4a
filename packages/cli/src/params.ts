/**
 * A provider's `params` in the one form the broker stores (apps/broker/src/modules/providers/
 * provider-params.ts), so that plan compares like with like and apply writes what plan showed:
 * - strategy settings the original's guides write flat (`params.header_name`, `params.param_name`,
 *   `params.service`…) are folded into `params.auth_strategy.config`;
 * - an `api_key` provider that names no header gets the broker's default written in: the one the
 *   broker already holds for it when that is a default (`X-API-Key`, or `Authorization` on a row
 *   registered before that default), else `X-API-Key`.
 * Anything the broker would refuse (a setting of another strategy, a non-string, the same setting
 * given twice with different values) is left as written, for the broker to refuse with its reason.
 */

const SETTINGS: Record<string, readonly string[]> = {
  header: ['header_name', 'credential_field', 'value_prefix'],
  query_param: ['param_name', 'credential_field'],
  basic_auth: ['username_field', 'password_field'],
  hmac_payload: ['header_name', 'secret_field', 'algo', 'encoding'],
  aws_sigv4: ['service', 'region'],
};
const ALL_SETTINGS = [...new Set(Object.values(SETTINGS).flat())];
const IMPLIED: Record<string, string> = {
  api_key: 'header',
  header: 'header',
  query_param: 'query_param',
  basic_auth: 'basic_auth',
  hmac_payload: 'hmac_payload',
  aws_sigv4: 'aws_sigv4',
};
export const API_KEY_DEFAULT_HEADER = 'X-API-Key';
/** Headers the broker itself writes for an api_key provider that names none. */
const DEFAULT_HEADERS = [API_KEY_DEFAULT_HEADER, 'Authorization'];

type Obj = Record<string, unknown>;
const isObject = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/** What the broker holds for the provider, when it has it. */
export interface CurrentProvider {
  auth_type: string;
  params: Obj | null | undefined;
}

export function storedParams(profile: Record<string, unknown>, current?: CurrentProvider): unknown {
  const authType = String(profile.auth_type);
  if (!isObject(profile.params) || authType === 'oauth2') return profile.params;
  const params: Obj = { ...profile.params };
  const nested = params.auth_strategy;
  if (nested !== undefined && !isObject(nested)) return profile.params;
  const type = nested?.type ?? IMPLIED[authType];
  if (typeof type !== 'string' || !Object.hasOwn(SETTINGS, type)) return profile.params;
  const config = nested?.config ?? {};
  if (!isObject(config)) return profile.params;
  const own = SETTINGS[type]!;
  const merged: Obj = { ...config };
  let folded = false;
  for (const key of ALL_SETTINGS) {
    if (!Object.hasOwn(params, key)) continue;
    const value = params[key];
    if (!own.includes(key) || typeof value !== 'string') continue;
    if (Object.hasOwn(config, key) && config[key] !== value) continue;
    merged[key] = value;
    delete params[key];
    folded = true;
  }
  if (nested === undefined && authType === 'api_key' && merged.header_name === undefined) {
    const held = current?.params?.auth_strategy;
    const legacy = current?.auth_type === 'api_key' && held === undefined;
    // Nothing to say: on a new provider or a row without a strategy the broker writes its default.
    if (!folded && (current === undefined || legacy)) return params;
    let header = legacy ? 'Authorization' : API_KEY_DEFAULT_HEADER;
    if (isObject(held) && held.type === 'header' && isObject(held.config)) {
      const { header_name: name, ...rest } = held.config;
      if (typeof name === 'string' && DEFAULT_HEADERS.includes(name) && sameShallow(rest, merged))
        header = name;
    }
    merged.header_name = header;
    folded = true;
  }
  if (folded) params.auth_strategy = { ...(nested ?? {}), type, config: merged };
  return params;
}

function sameShallow(a: Obj, b: Obj): boolean {
  const keys = Object.keys(a);
  return keys.length === Object.keys(b).length && keys.every((k) => a[k] === b[k]);
}
