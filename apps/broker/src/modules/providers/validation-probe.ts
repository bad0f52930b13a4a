import { strategyFor } from '../strategies/strategy.ts';
import type { StoredProfile } from './providers.schemas.ts';

/**
 * How the broker checks credentials a user typed into the capture page before it stores them.
 *
 * - `params.validation` of a static-credential provider says so explicitly: `{}` probes
 *   `user_info_endpoint`; it and `url` are absolute URLs or paths under `api_base_url`; any 2xx
 *   answer accepts unless `expect_status` says otherwise. The original's keys are honoured too:
 *   `skip: true` (never probe), `failure_status` (the statuses that mean "refused", 401 and 403
 *   otherwise), `failure_body_contains` and `success_body_contains` (for APIs that refuse with a 200,
 *   such as Slack's `{"ok": false}`).
 * - Without `params.validation`, a provider with both `api_base_url` and `user_info_endpoint` is
 *   probed the way the original probed it: `GET user_info_endpoint` under `api_base_url`, any 2xx
 *   accepts, 401 and 403 refuse. Request-signing strategies (hmac_payload, aws_sigv4) are not probed
 *   implicitly, as the original did not: a plain GET says nothing about whether they sign right.
 */
export interface ProbeSpec {
  readonly url: string;
  readonly method: 'GET' | 'HEAD' | 'POST';
  /** Statuses that mean "accepted"; empty means any 2xx. */
  readonly expectStatus: readonly number[];
  /** Statuses that mean "refused" (401 and 403 unless `failure_status` says otherwise). */
  readonly failureStatus: readonly number[];
  /** An accepted answer whose body contains this is a refusal after all. */
  readonly failureBodyContains?: string | undefined;
  /** An accepted answer must contain this, or it is a refusal. */
  readonly successBodyContains?: string | undefined;
  /** Whether the probe comes from `api_base_url` + `user_info_endpoint` alone (no `params.validation`). */
  readonly implicit: boolean;
}

export const PROBE_METHODS = ['GET', 'HEAD', 'POST'] as const;
export const PROBE_KEYS = new Set([
  'url',
  'method',
  'expect_status',
  'skip',
  'failure_status',
  'failure_body_contains',
  'success_body_contains',
]);

const REFUSED_BY_DEFAULT = [401, 403] as const;

interface ValidationParam {
  url?: string;
  method?: ProbeSpec['method'];
  expect_status?: number[];
  skip?: boolean;
  failure_status?: number[];
  failure_body_contains?: string;
  success_body_contains?: string;
}

/**
 * A provider URL as the broker calls it: an absolute URL as it is, a path (`/users/me`, as the
 * original documents `user_info_endpoint`) appended to `api_base_url` (so `https://api.example.com/v3`
 * and `/user` give `https://api.example.com/v3/user`). Assumes a validated profile.
 */
export function underApiBase(profile: Pick<StoredProfile, 'api_base_url'>, target: string): string {
  return target.startsWith('/') ? `${(profile.api_base_url ?? '').replace(/\/+$/, '')}${target}` : target;
}

/** The probe a provider asks for (explicitly or, as the original did, implicitly), or undefined for none. */
export function probeSpecFor(profile: StoredProfile): ProbeSpec | undefined {
  if (profile.auth_type === 'oauth2') return undefined;
  const given = profile.params.validation as ValidationParam | undefined;
  if (given === undefined) return implicitProbe(profile);
  if (given.skip === true) return undefined;
  const target = given.url ?? profile.user_info_endpoint;
  if (target === undefined) return undefined;
  return {
    url: underApiBase(profile, target),
    method: given.method ?? 'GET',
    expectStatus: given.expect_status ?? [],
    failureStatus: given.failure_status ?? REFUSED_BY_DEFAULT,
    failureBodyContains: given.failure_body_contains,
    successBodyContains: given.success_body_contains,
    implicit: false,
  };
}

function implicitProbe(profile: StoredProfile): ProbeSpec | undefined {
  if (profile.api_base_url === undefined || profile.user_info_endpoint === undefined) return undefined;
  const type = strategyFor(profile).type;
  if (type === 'hmac_payload' || type === 'aws_sigv4') return undefined;
  return {
    url: underApiBase(profile, profile.user_info_endpoint),
    method: 'GET',
    expectStatus: [],
    failureStatus: REFUSED_BY_DEFAULT,
    implicit: true,
  };
}
