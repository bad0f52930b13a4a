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
  checkTemplateRecord(problems, profile.params.template);
  checkCaptureHelp(problems, profile);
  checkDocsUrl(problems, profile.params.docs_url);
  checkQuirkParams(problems, profile);
  checkConnectionParams(problems, profile, options);
}

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/** `params.template`: `{key, version}` of the catalogue entry the provider was made from. */
function checkTemplateRecord(problems: Problem[], value: unknown): void {
  if (value === undefined) return;
  const path = 'params.template';
  if (!isObject(value)) {
    problems.push({ path, message: 'must be an object {key, version}' });
    return;
  }
  const { key, version, ...rest } = value;
  for (const extra of Object.keys(rest))
    problems.push({ path: `${path}.${extra}`, message: 'unknown field' });
  if (typeof key !== 'string' || !/^[a-z0-9][a-z0-9-]{0,62}$/.test(key))
    problems.push({
      path: `${path}.key`,
      message: 'must be a catalogue key (lower-case letters, digits, dashes)',
    });
  if (typeof version !== 'number' || !Number.isInteger(version) || version < 1)
    problems.push({ path: `${path}.version`, message: 'must be a whole number from 1' });
}

/** `params.capture_help`: the line the hosted capture form shows; static-credential providers only. */
function checkCaptureHelp(problems: Problem[], profile: StoredProfile): void {
  const value = profile.params.capture_help;
  if (value === undefined) return;
  const path = 'params.capture_help';
  if (typeof value !== 'string' || value.length === 0 || value.length > 500)
    problems.push({ path, message: 'must be a string of 1 to 500 characters' });
  else if (profile.auth_type === 'oauth2')
    problems.push({ path, message: 'only for static-credential auth types: oauth2 has no capture form' });
}

/** `params.docs_url`: the provider's API documentation, an https link shown to people (never fetched). */
function checkDocsUrl(problems: Problem[], value: unknown): void {
  if (value === undefined) return;
  const path = 'params.docs_url';
  let url: URL | undefined;
  try {
    url = typeof value === 'string' && value.length <= 2048 ? new URL(value) : undefined;
  } catch {
    url = undefined;
  }
  if (url === undefined || url.protocol !== 'https:' || url.username !== '' || url.password !== '')
    problems.push({ path, message: 'must be an https URL of at most 2048 characters, without credentials' });
}
