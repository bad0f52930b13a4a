import type { StoredProfile } from '../providers/providers.schemas.ts';
import { defaultCredentialFields, strategyFor } from '../strategies/strategy.ts';

/**
 * The fields a capture form asks for. From the provider's `params.credential_schema` — a JSON
 * Schema subset: an object whose `properties` are strings (`title`, `description`, `format:
 * "password"`, `maxLength`) and a `required` list — or, without one, from its strategy's defaults.
 */
export interface CaptureField {
  readonly name: string;
  readonly title: string;
  readonly description: string;
  readonly secret: boolean;
  readonly required: boolean;
  readonly maxLength: number;
}

const MAX_FIELD = 4096;
const NAME = /^[A-Za-z0-9_.-]{1,64}$/;
const SECRET_NAME = /secret|password|key|token/i;
/**
 * Control characters (C0, DEL, C1). No API key, secret or user name holds one; a value with a
 * line break or NUL is a paste accident, and once stored every use of it fails (Node refuses it
 * in a header: `502 auth_injection_failed`), so it is refused at capture with the field named.
 */
const CONTROL = /\p{Cc}/u;

export function captureFields(profile: StoredProfile): CaptureField[] {
  const schema = profile.params.credential_schema as
    | {
        properties?: Record<
          string,
          { title?: unknown; description?: unknown; format?: unknown; maxLength?: unknown }
        >;
        required?: unknown;
      }
    | undefined;
  if (schema?.properties && typeof schema.properties === 'object') {
    const required = new Set(
      Array.isArray(schema.required) ? schema.required.filter((r): r is string => typeof r === 'string') : [],
    );
    return Object.entries(schema.properties)
      .filter(([name]) => NAME.test(name))
      .slice(0, 20)
      .map(([name, p]) => ({
        name,
        title: typeof p.title === 'string' ? p.title.slice(0, 100) : name,
        description: typeof p.description === 'string' ? p.description.slice(0, 300) : '',
        secret: p.format === 'password' || SECRET_NAME.test(name),
        required: required.has(name),
        maxLength:
          typeof p.maxLength === 'number' && p.maxLength > 0 ? Math.min(p.maxLength, MAX_FIELD) : MAX_FIELD,
      }));
  }
  const strategy = strategyFor(profile);
  return defaultCredentialFields(strategy).map((name) => ({
    name,
    title: name.replaceAll('_', ' '),
    description: '',
    secret: SECRET_NAME.test(name),
    required: name !== 'session_token',
    maxLength: MAX_FIELD,
  }));
}

/**
 * The JSON Schema of what a capture asks for, as the original's capture-schema answered it: the
 * provider's own `params.credential_schema` when it has one, otherwise one written from the fields
 * its strategy needs (secret fields with `format: "password"`).
 */
export function credentialSchema(profile: StoredProfile): Record<string, unknown> {
  const own = profile.params.credential_schema;
  if (typeof own === 'object' && own !== null && !Array.isArray(own)) return own as Record<string, unknown>;
  const fields = captureFields(profile);
  return {
    type: 'object',
    properties: Object.fromEntries(
      fields.map((f) => [
        f.name,
        {
          type: 'string',
          title: f.title,
          ...(f.description ? { description: f.description } : {}),
          ...(f.secret ? { format: 'password' } : {}),
          maxLength: f.maxLength,
        },
      ]),
    ),
    required: fields.filter((f) => f.required).map((f) => f.name),
  };
}

/** Checks submitted values against the fields: required present, bounded, printable, no unknown names. */
export function checkCaptured(
  fields: readonly CaptureField[],
  values: Record<string, unknown>,
):
  | { ok: true; values: Record<string, string> }
  | { ok: false; problems: { path: string; message: string }[] } {
  const problems: { path: string; message: string }[] = [];
  const out: Record<string, string> = {};
  const known = new Map(fields.map((f) => [f.name, f]));
  for (const [name, value] of Object.entries(values)) {
    const field = known.get(name);
    if (field === undefined)
      problems.push({ path: `credentials.${name.slice(0, 64)}`, message: 'not a field of this provider' });
    else if (typeof value !== 'string')
      problems.push({ path: `credentials.${name}`, message: 'must be a string' });
    else if (value.length > field.maxLength)
      problems.push({ path: `credentials.${name}`, message: `at most ${field.maxLength} characters` });
    else if (CONTROL.test(value))
      // Says what is wrong, never echoes the value (it is a secret).
      problems.push({
        path: `credentials.${name}`,
        message: 'contains a control character (a line break, tab or NUL, say); enter it again without one',
      });
    else if (value !== '') out[name] = value;
  }
  for (const field of fields) {
    const path = `credentials.${field.name}`;
    // A value refused above is not also "required": one message per field.
    if (field.required && out[field.name] === undefined && !problems.some((p) => p.path === path))
      problems.push({ path, message: 'required' });
  }
  return problems.length > 0 ? { ok: false, problems } : { ok: true, values: out };
}
