import { defaultCredentialFields, strategyFor } from '../strategies/strategy.ts';
import { checkUrl, type Problem, type ValidationOptions } from './provider-url-rules.ts';
import type { StoredProfile } from './providers.schemas.ts';
import { PROBE_KEYS, PROBE_METHODS } from './validation-probe.ts';

/*
 * The params of static-credential providers: the capture form's schema (`credential_schema`) and
 * the probe of captured credentials (`validation`).
 */

const FIELD_NAME = /^[A-Za-z0-9_.-]{1,64}$/;
const SCHEMA_KEYS = new Set([
  '$schema',
  'type',
  'title',
  'description',
  'properties',
  'required',
  'additionalProperties',
]);
const PROPERTY_KEYS = new Set(['type', 'title', 'description', 'format', 'maxLength']);

/** `params.credential_schema`: the JSON Schema subset the capture form is generated from (capture.schema.ts). */
export function checkCredentialSchema(problems: Problem[], profile: StoredProfile): void {
  const schema = profile.params.credential_schema;
  const path = 'params.credential_schema';
  if (typeof schema !== 'object' || schema === null || Array.isArray(schema)) return; // reported already
  if (profile.auth_type === 'oauth2') {
    problems.push({ path, message: 'only for static-credential auth types' });
    return;
  }
  const s = schema as Record<string, unknown>;
  for (const key of Object.keys(s))
    if (!SCHEMA_KEYS.has(key)) problems.push({ path: `${path}.${key}`, message: 'not supported' });
  if (s.type !== undefined && s.type !== 'object')
    problems.push({ path: `${path}.type`, message: 'must be "object"' });
  const props = s.properties;
  if (typeof props !== 'object' || props === null || Array.isArray(props)) {
    problems.push({ path: `${path}.properties`, message: 'must be an object of field definitions' });
    return;
  }
  const names = Object.keys(props);
  if (names.length === 0 || names.length > 20)
    problems.push({ path: `${path}.properties`, message: 'must define 1 to 20 fields' });
  for (const [name, def] of Object.entries(props)) {
    const at = `${path}.properties.${name.slice(0, 64)}`;
    if (!FIELD_NAME.test(name)) {
      problems.push({
        path: at,
        message: 'field names are letters, digits, dot, dash and underscore (at most 64)',
      });
      continue;
    }
    if (typeof def !== 'object' || def === null || Array.isArray(def)) {
      problems.push({
        path: at,
        message: 'must be an object such as {"type": "string", "title": "API key"}',
      });
      continue;
    }
    const d = def as Record<string, unknown>;
    for (const key of Object.keys(d))
      if (!PROPERTY_KEYS.has(key)) problems.push({ path: `${at}.${key}`, message: 'not supported' });
    if (d.type !== undefined && d.type !== 'string')
      problems.push({ path: `${at}.type`, message: 'captured fields are strings' });
    for (const [key, max] of [
      ['title', 100],
      ['description', 300],
      ['format', 32],
    ] as const) {
      if (d[key] !== undefined && (typeof d[key] !== 'string' || d[key].length > max))
        problems.push({ path: `${at}.${key}`, message: `must be a string of at most ${max} characters` });
    }
    if (
      d.maxLength !== undefined &&
      (!Number.isInteger(d.maxLength) || (d.maxLength as number) < 1 || (d.maxLength as number) > 4096)
    )
      problems.push({ path: `${at}.maxLength`, message: 'must be an integer from 1 to 4096' });
  }
  if (s.required !== undefined) {
    if (!Array.isArray(s.required) || !s.required.every((r) => typeof r === 'string' && names.includes(r)))
      problems.push({ path: `${path}.required`, message: 'must list names of defined fields' });
  }
  // The strategy reads its fields from what the form captures.
  for (const field of defaultCredentialFields(strategyFor(profile))) {
    if (field !== 'session_token' && !names.includes(field))
      problems.push({
        path: `${path}.properties`,
        message: `must define "${field}", which the ${strategyFor(profile).type} strategy applies`,
      });
  }
}

/**
 * `params.validation`: the probe of captured credentials (see validation-probe.ts), in Nexus's
 * keys and the original's (`skip`, `failure_status`, `failure_body_contains`, `success_body_contains`).
 */
export function checkValidation(
  problems: Problem[],
  profile: StoredProfile,
  options: ValidationOptions,
): void {
  const value = profile.params.validation;
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return; // reported already
  const path = 'params.validation';
  const onlySkip = Object.keys(value).length === 1 && (value as { skip?: unknown }).skip === true;
  if (profile.auth_type === 'oauth2' || (profile.auth_type === 'aws_sigv4' && !onlySkip)) {
    problems.push({
      path,
      message: `not available for auth_type ${profile.auth_type}: only static credentials the broker can apply are probed`,
    });
    return;
  }
  const v = value as Record<string, unknown>;
  for (const key of Object.keys(v)) {
    if (!PROBE_KEYS.has(key)) problems.push({ path: `${path}.${key}`, message: 'unknown field' });
  }
  if (v.method !== undefined && !PROBE_METHODS.includes(v.method as never))
    problems.push({ path: `${path}.method`, message: `must be one of ${PROBE_METHODS.join(', ')}` });
  for (const key of ['expect_status', 'failure_status'] as const) {
    const list = v[key];
    if (
      list !== undefined &&
      (!Array.isArray(list) ||
        list.length === 0 ||
        list.length > 20 ||
        !list.every((n) => Number.isInteger(n) && n >= 200 && n <= 599))
    )
      problems.push({
        path: `${path}.${key}`,
        message: 'must be a list of 1 to 20 HTTP status codes between 200 and 599',
      });
  }
  for (const key of ['failure_body_contains', 'success_body_contains'] as const) {
    const text = v[key];
    if (text !== undefined && (typeof text !== 'string' || text.length === 0 || text.length > 256))
      problems.push({ path: `${path}.${key}`, message: 'must be a string of 1 to 256 characters' });
  }
  if (v.skip !== undefined && typeof v.skip !== 'boolean')
    problems.push({ path: `${path}.skip`, message: 'must be true or false' });
  // The original's opt-out: no probe, so nothing to probe either.
  if (v.skip === true) return;
  if (v.url === undefined) {
    if (profile.user_info_endpoint === undefined)
      problems.push({ path: `${path}.url`, message: 'required unless user_info_endpoint is set' });
  } else if (typeof v.url !== 'string' || v.url.length > 2048) {
    problems.push({ path: `${path}.url`, message: 'must be a URL or a path of at most 2048 characters' });
  } else if (v.url.startsWith('/')) {
    if (profile.api_base_url === undefined)
      problems.push({ path: `${path}.url`, message: 'a path needs api_base_url to resolve against' });
  } else {
    checkUrl(problems, `${path}.url`, v.url, options);
  }
}
