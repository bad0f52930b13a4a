import {
  ALL_STRATEGY_SETTINGS,
  API_KEY_DEFAULT_HEADER,
  IMPLIED,
  STRATEGY_SETTINGS,
  type Strategy,
} from '../strategies/strategy.ts';
import type { StoredProfile } from './providers.schemas.ts';
import type { Problem } from './providers.validate.ts';

export interface FoldedParams {
  /** The params to store: strategy settings only inside `auth_strategy.config`. */
  readonly params: Record<string, unknown>;
  /** Flat settings that cannot be folded (not a string, not a setting of the provider's strategy). */
  readonly problems: readonly Problem[];
  /** Flat settings that say something else than `auth_strategy.config` (`strategy_settings_conflict`). */
  readonly conflicts: readonly Problem[];
}

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

const shown = (v: unknown) => JSON.stringify(v).slice(0, 80);

/**
 * The one stored form of a static-credential provider's strategy. The original's registration
 * guide writes strategy settings flat in `params` (`params.param_name`, `params.header_name`,
 * `params.service`…); Nexus documents `params.auth_strategy.config`. Both are accepted and folded
 * into `auth_strategy` here, before validation, so a provider is stored (and GET answers it) one
 * way, and a folded setting never reaches the authorize URL as an extra parameter. The same setting
 * given both ways with different values is a conflict, never a silent choice.
 *
 * A new `api_key` provider that names no strategy gets the original's default written in:
 * `{type: header, config: {header_name: X-API-Key}}`, so the row itself says which header agents
 * send. A write over an existing `api_key` provider that names no strategy keeps the one its row
 * has; a row without any (registered before this rule, when the implied header was
 * `Authorization`) gets `Authorization` written in. An existing deployment's agents keep sending
 * their key where they did until an operator names another header.
 *
 * oauth2 providers are left as they are: they have no strategy settings, and their other string
 * params are extra authorize-URL parameters, as the contract says.
 */
export function foldStrategySettings(profile: StoredProfile, previous?: StoredProfile): FoldedParams {
  const unchanged = { params: profile.params, problems: [], conflicts: [] };
  if (profile.auth_type === 'oauth2') return unchanged;
  const params = { ...profile.params };
  const nested = params.auth_strategy;
  // A malformed auth_strategy is reported by validation (providers.validate.ts, checkStrategy).
  if (nested !== undefined && !isObject(nested)) return unchanged;
  const type = nested?.type ?? IMPLIED[profile.auth_type];
  if (typeof type !== 'string' || !Object.hasOwn(STRATEGY_SETTINGS, type)) return unchanged;
  const config = nested?.config ?? {};
  if (!isObject(config)) return unchanged;
  const spec = STRATEGY_SETTINGS[type as Strategy['type']];
  const own = new Set([...spec.required, ...spec.optional]);
  const merged: Record<string, unknown> = { ...config };
  const problems: Problem[] = [];
  const conflicts: Problem[] = [];
  let folded = false;
  for (const key of ALL_STRATEGY_SETTINGS) {
    if (!Object.hasOwn(params, key)) continue;
    const value = params[key];
    const path = `params.${key}`;
    if (!own.has(key)) {
      const settings = [...own].join(', ') || 'none';
      problems.push({
        path,
        message: `not a setting of the ${type} strategy that auth_type ${profile.auth_type} uses (its settings: ${settings}); choose the strategy with params.auth_strategy.type or auth_type`,
      });
    } else if (typeof value !== 'string') {
      problems.push({ path, message: 'must be a string (a strategy setting)' });
    } else if (Object.hasOwn(config, key) && config[key] !== value) {
      conflicts.push({
        path,
        message: `is ${shown(value)} but params.auth_strategy.config.${key} is ${shown(config[key])}: give it once, or the same value in both`,
      });
    } else {
      merged[key] = value;
      delete params[key];
      folded = true;
    }
  }
  if (nested === undefined && profile.auth_type === 'api_key') {
    // An api_key provider that already exists keeps its strategy when a write names none (as a
    // write without client_secret keeps the secret): omitting it never moves agents' keys.
    const before = previous?.auth_type === 'api_key' ? previous : undefined;
    const kept = before?.params.auth_strategy;
    if (!folded && isObject(kept)) {
      params.auth_strategy = kept;
      return { params, problems, conflicts };
    }
    if (merged.header_name === undefined) {
      merged.header_name =
        before === undefined ? API_KEY_DEFAULT_HEADER : (headerOf(kept) ?? LEGACY_API_KEY_HEADER);
      folded = true;
    }
  }
  if (folded) params.auth_strategy = { ...(nested ?? {}), type, config: merged };
  return { params, problems, conflicts };
}

/** What an api_key row without `auth_strategy` sends (DEFAULTS.header in strategy.ts). */
const LEGACY_API_KEY_HEADER = 'Authorization';

/** The header a stored header strategy names, if it is one. */
function headerOf(strategy: unknown): string | undefined {
  if (!isObject(strategy) || strategy.type !== 'header' || !isObject(strategy.config)) return undefined;
  const name = strategy.config.header_name;
  return typeof name === 'string' ? name : undefined;
}
