/**
 * The `nexus-secret:NAME` reference syntax, as the broker's resolver reads it: a string that is
 * exactly `nexus-secret:` followed by a name of letters, digits, dot, dash and underscore (1–128).
 */

export const SECRET_REFERENCE_PREFIX = 'nexus-secret:';
const REFERENCE = /^nexus-secret:([A-Za-z0-9_.-]{1,128})$/;

/** The secret name a value refers to, or undefined when it is not a reference. */
export function secretReference(value: unknown): string | undefined {
  if (typeof value !== 'string') return undefined;
  return REFERENCE.exec(value)?.[1];
}

/** Every distinct name referenced anywhere in a JSON-like value (objects, arrays, nested). */
export function findSecretReferences(config: unknown): string[] {
  const names = new Set<string>();
  const walk = (value: unknown): void => {
    const name = secretReference(value);
    if (name !== undefined) names.add(name);
    else if (Array.isArray(value)) for (const v of value) walk(v);
    else if (isPlainObject(value)) for (const v of Object.values(value)) walk(v);
  };
  walk(config);
  return [...names];
}

/** A copy of `config` where each reference with a known value is replaced; others are kept. */
export function replaceSecretReferences<T>(config: T, values: ReadonlyMap<string, string>): T {
  const replace = (value: unknown): unknown => {
    const name = secretReference(value);
    if (name !== undefined) return values.has(name) ? values.get(name) : value;
    if (Array.isArray(value)) return value.map(replace);
    if (isPlainObject(value))
      return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, replace(v)]));
    return value;
  };
  return replace(config) as T;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (value === null || typeof value !== 'object') return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}
