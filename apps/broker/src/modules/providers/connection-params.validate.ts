import type { Problem, ValidationOptions } from './provider-url-rules.ts';
import type { StoredProfile } from './providers.schemas.ts';

/** `connection_parameters`, `learnt`, and `{name}` placeholders in the profile's URLs (decision 0015). */
export function checkConnectionParams(
  problems: Problem[],
  profile: StoredProfile,
  _options: ValidationOptions,
): void {
  for (const key of ['connection_parameters', 'learnt']) {
    if (profile.params[key] === undefined) continue;
    problems.push({ path: `params.${key}`, message: 'not supported yet' });
  }
}
