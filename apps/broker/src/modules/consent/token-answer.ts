import * as oauth from 'oauth4webapi';
import type { OAuthClient } from '../providers/oauth-client.ts';
import type { CallbackStep } from './callback-failure.ts';

/**
 * Reads the token endpoint's answer to the code exchange, reporting each step before it runs so
 * that a failure is classified by what was being checked (callback-failure.ts).
 *
 * oauth4webapi checks the answer and its id_token in one call, with the same error codes for both.
 * The answer is therefore read twice: first without its id_token (a failure is the token
 * endpoint's), then, when id_tokens are verified, as it came (the answer already passed, so a
 * failure is the id_token's). A verifiable id_token is required with openid and checked: claims
 * (iss pinned to the issuer configured or discovered, aud, exp, nonce), then its signature against
 * that issuer's key set. One that cannot be verified never gets here (`oc.idTokens`, discarded).
 */
export async function readTokenAnswer(
  oc: Pick<OAuthClient, 'as' | 'client' | 'idTokens' | 'requestOptions'>,
  response: Response,
  expected: { readonly openid: boolean; readonly nonce: string | null },
  step: (next: CallbackStep) => void,
): Promise<oauth.TokenEndpointResponse> {
  step('token_response');
  let tokens = await oauth.processAuthorizationCodeResponse(oc.as, oc.client, await withoutIdToken(response));
  if (oc.idTokens.mode !== 'verify') return tokens;
  step('id_token');
  tokens = await oauth.processAuthorizationCodeResponse(oc.as, oc.client, response, {
    expectedNonce: expected.nonce ?? oauth.expectNoNonce,
    requireIdToken: expected.openid,
  });
  if (tokens.id_token !== undefined) {
    step('id_token_signature');
    await oauth.validateApplicationLevelSignature(oc.as, response, oc.requestOptions());
  }
  return tokens;
}

/**
 * A copy of a successful JSON answer without its `id_token`. Other answers are copied untouched
 * (unread: a body that fails to arrive fails while oauth4webapi reads it, as it always did).
 * JSON answers were already read whole by the client's fetch (providers/token-answer-quirks.ts).
 */
async function withoutIdToken(response: Response): Promise<Response> {
  const copy = response.clone();
  if (!response.ok || !(response.headers.get('content-type') ?? '').toLowerCase().includes('json'))
    return copy;
  const text = await copy.text();
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    body = undefined;
  }
  const init = { status: response.status, statusText: response.statusText, headers: response.headers };
  if (typeof body !== 'object' || body === null || !('id_token' in body)) return new Response(text, init);
  const { id_token: _, ...rest } = body as Record<string, unknown>;
  const headers = new Headers(response.headers);
  headers.delete('content-length');
  return new Response(JSON.stringify(rest), { ...init, headers });
}
