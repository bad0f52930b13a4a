import { addressProblem } from '../../egress/endpoint-rules.ts';

/** One refusal of a provider profile: where, and why. */
export interface Problem {
  path: string;
  message: string;
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
export function checkUrl(
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
