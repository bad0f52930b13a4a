import type { Problem } from './provider-url-rules.ts';
import type { StoredProfile } from './providers.schemas.ts';

/** `params.scope_separator`: how requested scopes are joined (`+` is written as a literal `+`). */
const SCOPE_SEPARATORS: readonly string[] = [' ', ',', '+'];
/** `params.token_response.scope_separator`: how the answer's granted scopes are joined. */
const ANSWER_SCOPE_SEPARATORS: readonly string[] = [' ', ','];
/** `tokens_at`: names joined by dots (catalog/schema/provider.schema.json), at most 8 deep. */
const TOKENS_AT = /^[A-Za-z_][A-Za-z0-9_]{0,63}(\.[A-Za-z_][A-Za-z0-9_]{0,63}){0,7}$/;
/** Names a dotted path never walks through: they are not the answer's own fields. */
const NOT_A_FIELD = new Set(['__proto__', 'constructor', 'prototype']);

const TOKEN_RESPONSE_FIELDS: Record<string, (problems: Problem[], path: string, value: unknown) => void> = {
  form_encoded: boolean,
  error_with_200: boolean,
  tokens_at(problems, path, value) {
    if (typeof value !== 'string' || !TOKENS_AT.test(value))
      problems.push({
        path,
        message: 'must be a dotted path of field names (authed_user, data.tokens), at most 8 deep',
      });
    else if (value.split('.').some((name) => NOT_A_FIELD.has(name)))
      problems.push({
        path,
        message: 'must name fields of the answer (not __proto__, constructor, prototype)',
      });
  },
  scope_separator(problems, path, value) {
    if (typeof value !== 'string' || !ANSWER_SCOPE_SEPARATORS.includes(value))
      problems.push({ path, message: 'must be " " or ","' });
  },
};

function boolean(problems: Problem[], path: string, value: unknown): void {
  if (typeof value !== 'boolean') problems.push({ path, message: 'must be true or false' });
}

/**
 * `pkce`, `scope_separator`, `token_response` (decision 0015: quirks are settings): how an oauth2
 * provider departs from the usual authorization request and token answer. What each does is in
 * token-answer-quirks.ts.
 */
export function checkQuirkParams(problems: Problem[], profile: StoredProfile): void {
  const { pkce, scope_separator: separator, token_response: answer } = profile.params;
  if (profile.auth_type !== 'oauth2') {
    for (const key of ['pkce', 'scope_separator', 'token_response']) {
      if (profile.params[key] !== undefined)
        problems.push({
          path: `params.${key}`,
          message: `only for oauth2: auth_type ${profile.auth_type} has no authorization request or token endpoint`,
        });
    }
    return;
  }
  if (pkce !== undefined) boolean(problems, 'params.pkce', pkce);
  if (separator !== undefined && (typeof separator !== 'string' || !SCOPE_SEPARATORS.includes(separator)))
    problems.push({ path: 'params.scope_separator', message: 'must be " ", "," or "+"' });
  if (answer === undefined) return;
  if (typeof answer !== 'object' || answer === null || Array.isArray(answer)) {
    problems.push({
      path: 'params.token_response',
      message: 'must be an object {form_encoded, tokens_at, scope_separator, error_with_200}',
    });
    return;
  }
  // Four fields exist: a longer list is reported by its first few names.
  for (const [key, value] of Object.entries(answer).slice(0, 16)) {
    const path = `params.token_response.${key}`;
    const check = Object.hasOwn(TOKEN_RESPONSE_FIELDS, key) ? TOKEN_RESPONSE_FIELDS[key] : undefined;
    if (check === undefined) problems.push({ path, message: 'unknown field' });
    else check(problems, path, value);
  }
}
