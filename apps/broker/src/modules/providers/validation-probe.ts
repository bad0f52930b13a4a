import type { StoredProfile } from './providers.schemas.ts';

/**
 * `params.validation` of a static-credential provider: how the broker checks credentials a user
 * typed into the capture page before it stores them. `{}` probes `user_info_endpoint`; it and `url`
 * are absolute URLs or paths under `api_base_url`; any 2xx answer accepts unless `expect_status` says
 * otherwise.
 */
export interface ProbeSpec {
  readonly url: string;
  readonly method: 'GET' | 'HEAD' | 'POST';
  /** Statuses that mean "accepted"; empty means any 2xx. */
  readonly expectStatus: readonly number[];
}

export const PROBE_METHODS = ['GET', 'HEAD', 'POST'] as const;
export const PROBE_KEYS = new Set(['url', 'method', 'expect_status']);

interface ValidationParam {
  url?: string;
  method?: ProbeSpec['method'];
  expect_status?: number[];
}

/**
 * A provider URL as the broker calls it: an absolute URL as it is, a path (`/users/me`, as the
 * original documents `user_info_endpoint`) appended to `api_base_url` (so `https://api.example.com/v3`
 * and `/user` give `https://api.example.com/v3/user`). Assumes a validated profile.
 */
export function underApiBase(profile: Pick<StoredProfile, 'api_base_url'>, target: string): string {
  return target.startsWith('/') ? `${(profile.api_base_url ?? '').replace(/\/+$/, '')}${target}` : target;
}

/** The probe a provider asks for, or undefined when it has none. Assumes a validated profile. */
export function probeSpecFor(profile: StoredProfile): ProbeSpec | undefined {
  const given = profile.params.validation as ValidationParam | undefined;
  if (given === undefined || profile.auth_type === 'oauth2') return undefined;
  const target = given.url ?? profile.user_info_endpoint;
  if (target === undefined) return undefined;
  return {
    url: underApiBase(profile, target),
    method: given.method ?? 'GET',
    expectStatus: given.expect_status ?? [],
  };
}
