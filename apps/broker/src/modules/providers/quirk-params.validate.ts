import type { Problem } from './provider-url-rules.ts';
import type { StoredProfile } from './providers.schemas.ts';

/** `pkce`, `scope_separator`, `token_response` (decision 0015). */
export function checkQuirkParams(problems: Problem[], profile: StoredProfile): void {
  for (const key of ['pkce', 'scope_separator', 'token_response']) {
    if (profile.params[key] === undefined) continue;
    problems.push({ path: `params.${key}`, message: 'not supported yet' });
  }
}
