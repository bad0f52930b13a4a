import { createSerializerCompiler, ResponseSerializationError } from 'fastify-type-provider-zod';
import type { $ZodType } from 'zod/v4/core';

/**
 * Response serialisation. A response schema is also a filter: fields it does not list never leave
 * the broker. fastify-type-provider-zod's serializer runs zod's full encode on every answer (about
 * 5 µs for the token answer, most of a hot route's validation cost); for the schemas made only of
 * plain parts (objects, strings, enums, literals, numbers, booleans, records, arrays, optional and
 * nullable), this compiles the same filter once into a function that copies the listed fields and
 * checks each value's type, then `JSON.stringify`. Any other schema (a format, a length check, a
 * union, a default, a transform, a refinement) keeps zod's serializer, so what is sent is always
 * what zod would have sent (test/serializer.test.ts compares them).
 */
type Filter = (value: unknown, path: string) => unknown;

class Mismatch extends Error {}

const fail = (path: string, expected: string): never => {
  throw new Mismatch(`${path || '(root)'}: expected ${expected}`);
};

interface Def {
  readonly type: string;
  readonly checks?: readonly unknown[];
  readonly shape?: Record<string, $ZodType>;
  readonly catchall?: $ZodType;
  readonly innerType?: $ZodType;
  readonly element?: $ZodType;
  readonly keyType?: $ZodType;
  readonly valueType?: $ZodType;
  readonly entries?: Record<string, string | number>;
  readonly values?: readonly unknown[];
}

const defOf = (schema: $ZodType) => schema._zod.def as unknown as Def;
/** A leaf with nothing but its type (no format, pattern, length or other check). */
const plain = (def: Def) =>
  Object.keys(def).every((k) => k === 'type' || (k === 'checks' && def.checks?.length === 0));

/** The filter for `schema`, or undefined when it has a part this compiler does not handle. */
function compile(schema: $ZodType): Filter | undefined {
  const def = defOf(schema);
  switch (def.type) {
    case 'string':
      if (!plain(def)) return undefined;
      return (v, path) => (typeof v === 'string' ? v : fail(path, 'a string'));
    case 'boolean':
      if (!plain(def)) return undefined;
      return (v, path) => (typeof v === 'boolean' ? v : fail(path, 'a boolean'));
    case 'number':
      if (!plain(def)) return undefined;
      return (v, path) => (typeof v === 'number' && Number.isFinite(v) ? v : fail(path, 'a number'));
    case 'enum': {
      const allowed = new Set(Object.values(def.entries ?? {}));
      return (v, path) => (allowed.has(v as string) ? v : fail(path, 'one of the enum values'));
    }
    case 'literal': {
      const allowed = new Set(def.values);
      return (v, path) => (allowed.has(v) ? v : fail(path, 'the literal value'));
    }
    case 'optional': {
      const inner = compile(def.innerType as $ZodType);
      return inner && ((v, path) => (v === undefined ? undefined : inner(v, path)));
    }
    case 'nullable': {
      const inner = compile(def.innerType as $ZodType);
      return inner && ((v, path) => (v === null ? null : inner(v, path)));
    }
    case 'array': {
      if (def.checks !== undefined && def.checks.length > 0) return undefined;
      const element = compile(def.element as $ZodType);
      return (
        element &&
        ((v, path) =>
          Array.isArray(v) ? v.map((item, i) => element(item, `${path}/${i}`)) : fail(path, 'an array'))
      );
    }
    case 'record': {
      if (!plain(defOf(def.keyType as $ZodType)) || defOf(def.keyType as $ZodType).type !== 'string')
        return undefined;
      const value = compile(def.valueType as $ZodType);
      return (
        value &&
        ((v, path) => {
          if (!isObject(v)) return fail(path, 'an object');
          const out: Record<string, unknown> = {};
          for (const key of Object.keys(v)) out[key] = value(v[key], `${path}/${key}`);
          return out;
        })
      );
    }
    case 'object':
      return compileObject(def);
    default:
      return undefined;
  }
}

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

function compileObject(def: Def): Filter | undefined {
  if (def.checks !== undefined && def.checks.length > 0) return undefined;
  // No catchall: unknown keys are dropped. `never` (.strict()): they fail. Anything else: zod.
  const strict = def.catchall !== undefined && defOf(def.catchall).type === 'never';
  if (def.catchall !== undefined && !strict) return undefined;
  const fields: [string, Filter][] = [];
  for (const [key, part] of Object.entries(def.shape ?? {})) {
    const filter = compile(part);
    if (filter === undefined) return undefined;
    fields.push([key, filter]);
  }
  const known = new Set(fields.map(([key]) => key));
  return (v, path) => {
    if (!isObject(v)) return fail(path, 'an object');
    const out: Record<string, unknown> = {};
    for (const [key, filter] of fields) {
      const value = filter(v[key], `${path}/${key}`);
      if (value !== undefined) out[key] = value;
    }
    if (strict)
      for (const key of Object.keys(v)) if (!known.has(key)) fail(`${path}/${key}`, 'no such field');
    return out;
  };
}

const zodSerializer = createSerializerCompiler({});

/** Fastify's serializer compiler: the compiled filter where the schema allows it, zod's otherwise. */
export const serializerCompiler: typeof zodSerializer = (route) => {
  const schema = route.schema as $ZodType;
  const filter = schema?._zod === undefined ? undefined : compile(schema);
  if (filter === undefined) return zodSerializer(route);
  return (data: unknown) => {
    try {
      return JSON.stringify(filter(data, ''));
    } catch (error) {
      // The error handler logs only that the answer did not match (error-handler.ts), never the cause.
      if (error instanceof Mismatch)
        throw new ResponseSerializationError(route.method, route.url, { cause: error as never });
      throw error;
    }
  };
};

/** For tests: whether `schema` is compiled (true) or left to zod (false). */
export const isCompiled = (schema: $ZodType) => compile(schema) !== undefined;

/**
 * `schema` as a filter for answers that are not JSON text (gRPC's Struct): the compiled filter,
 * or zod's parse when the schema is not compiled. Either way a value that does not match throws,
 * and fields the schema does not list are dropped.
 */
export function answerFilter<T>(schema: $ZodType<T>): (value: unknown) => T {
  const filter = compile(schema);
  if (filter === undefined) return (value) => (schema as unknown as { parse(v: unknown): T }).parse(value);
  return (value) => {
    try {
      return filter(value, '') as T;
    } catch (error) {
      if (error instanceof Mismatch)
        throw new Error(`the answer does not match its schema: ${error.message}`);
      throw error;
    }
  };
}
