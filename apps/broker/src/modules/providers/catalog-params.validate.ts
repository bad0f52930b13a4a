import { checkConnectionParams } from './connection-params.validate.ts';
import type { Problem, ValidationOptions } from './provider-url-rules.ts';
import type { StoredProfile } from './providers.schemas.ts';
import { checkQuirkParams } from './quirk-params.validate.ts';

/**
 * The `params` settings a provider made from a catalogue template carries (decision 0015), each
 * also accepted on a hand-written profile. Each group is checked in its own file.
 */
export const CATALOG_PARAMS: ReadonlySet<string> = new Set([
  // Which catalogue entry, at which version, the provider was made from; what the capture form shows.
  'template',
  'capture_help',
  'docs_url',
  // Authorization request and token endpoint quirks (quirk-params.validate.ts).
  'pkce',
  'scope_separator',
  'token_response',
  // Per-connection parameters and values learnt at consent (connection-params.validate.ts).
  'connection_parameters',
  'learnt',
]);

/** Checks every catalogue setting present in `profile.params`. */
export function checkCatalogParams(
  problems: Problem[],
  profile: StoredProfile,
  options: ValidationOptions,
): void {
  for (const key of ['template', 'capture_help', 'docs_url']) {
    if (profile.params[key] === undefined) continue;
    problems.push({ path: `params.${key}`, message: 'not supported yet' });
  }
  checkQuirkParams(problems, profile);
  checkConnectionParams(problems, profile, options);
}
