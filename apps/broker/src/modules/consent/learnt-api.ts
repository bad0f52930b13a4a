import * as oauth from 'oauth4webapi';
import {
  type ConfigProblem,
  type ConnectionConfig,
  fill,
  hasPlaceholders,
  learntValueIn,
  learntValues,
} from '../providers/connection-params.ts';
import type { OAuthClient } from '../providers/oauth-client.ts';
import type { StoredProfile } from '../providers/providers.schemas.ts';

/**
 * Values learnt at consent from an API answer (`params.learnt.<name>.from: api`, decision 0015):
 * Atlassian's cloud id from `accessible-resources`, Mailchimp's data centre from its metadata,
 * Docusign's account base URI from userinfo. None is in the token response; each is the JSON answer
 * to a GET of the declared `url` with the new access token (`Authorization: Bearer`).
 *
 * The call goes through the provider's OAuth client, so it has what the code exchange had: the
 * egress guard for identity-provider endpoints (no redirects, a 1 MiB answer at most) and
 * NEXUS_UPSTREAM_TIMEOUT_SECONDS. `url` is filled with the connection's parameters and the values
 * learnt from the token response (never another API-learnt value: validation refuses that).
 *
 * Nothing here throws: a value that cannot be read (network, a non-2xx answer, not JSON, missing,
 * not matching its pattern) is a problem, and the consent fails with `learnt_value_invalid`.
 * Problems name the value and the URL called, never a value read or the token.
 */
export async function learntFromApi(
  profile: Pick<StoredProfile, 'auth_url' | 'token_url' | 'user_info_endpoint' | 'api_base_url' | 'params'>,
  known: ConnectionConfig,
  accessToken: string,
  oc: Pick<OAuthClient, 'requestOptions'>,
): Promise<{ values: Record<string, string>; problems: ConfigProblem[] }> {
  const values: Record<string, string> = {};
  const problems: ConfigProblem[] = [];
  // Values read from one URL (Docusign's base URI and account id) come from one call.
  const answers = new Map<string, ReturnType<typeof readJson>>();
  for (const [name, spec] of Object.entries(learntValues(profile.params))) {
    if (spec.from !== 'api') continue;
    const filled = fill(spec.url, known);
    const url = hasPlaceholders(filled) ? null : URL.parse(filled);
    if (url === null) {
      problems.push({ name, message: 'has no usable URL to read it from (a placeholder has no value)' });
      continue;
    }
    const where = `${url.origin}${url.pathname}`;
    if (!answers.has(url.href)) answers.set(url.href, readJson(url, accessToken, oc));
    const answer = await answers.get(url.href)!;
    if (!answer.ok) {
      problems.push({ name, message: `could not be read: GET ${where} ${answer.reason}` });
      continue;
    }
    const learnt = learntValueIn(profile, name, spec, answer.body, `the answer of GET ${where}`);
    if (learnt.ok) values[name] = learnt.value;
    else problems.push({ name, message: learnt.message });
  }
  return { values, problems };
}

/** The JSON answer to a GET of `url` with the access token, or why there is none. */
async function readJson(
  url: URL,
  accessToken: string,
  oc: Pick<OAuthClient, 'requestOptions'>,
): Promise<{ ok: true; body: unknown } | { ok: false; reason: string }> {
  let response: Response;
  try {
    response = await oauth.protectedResourceRequest(
      accessToken,
      'GET',
      url,
      new Headers({ accept: 'application/json' }),
      null,
      oc.requestOptions(),
    );
  } catch (error) {
    // A 401 with a WWW-Authenticate challenge is thrown by oauth4webapi: still an answer.
    if (error instanceof oauth.WWWAuthenticateChallengeError)
      return { ok: false, reason: `answered ${error.status}` };
    return { ok: false, reason: `failed (${failureCode(error)})` };
  }
  if (!response.ok) {
    await response.body?.cancel();
    return { ok: false, reason: `answered ${response.status}` };
  }
  try {
    return { ok: true, body: await response.json() };
  } catch {
    return { ok: false, reason: 'answered something that is not JSON' };
  }
}

/** A failure's code (the egress guard's socket-style `cause.code`, a timeout), never its text. */
function failureCode(error: unknown): string {
  if (error instanceof Error && error.name === 'TimeoutError') return 'timeout';
  const cause = error instanceof Error ? (error.cause as { code?: unknown } | undefined) : undefined;
  if (typeof cause?.code === 'string') return cause.code;
  if (error instanceof Error && 'code' in error && typeof error.code === 'string') return error.code;
  return 'network';
}
