/**
 * JSON → `google.protobuf.Struct` in the object form @grpc/proto-loader uses: the token answer
 * travels as a Struct so its fields stay exactly those of the REST body. The well-known types come
 * from protobufjs's bundled descriptors, whose field names are camelCase whatever `keepCase` says.
 */
export type ProtoValue =
  | { nullValue: 'NULL_VALUE' }
  | { numberValue: number }
  | { stringValue: string }
  | { boolValue: boolean }
  | { structValue: ProtoStruct }
  | { listValue: { values: ProtoValue[] } };

export interface ProtoStruct {
  fields: Record<string, ProtoValue>;
}

function toValue(value: unknown): ProtoValue {
  if (value === null) return { nullValue: 'NULL_VALUE' };
  if (typeof value === 'string') return { stringValue: value };
  if (typeof value === 'number') return { numberValue: value };
  if (typeof value === 'boolean') return { boolValue: value };
  if (Array.isArray(value)) return { listValue: { values: value.map(toValue) } };
  if (typeof value === 'object') return { structValue: toStruct(value as Record<string, unknown>) };
  throw new TypeError(`a ${typeof value} has no protobuf Value form`);
}

/** A JSON object as a Struct; `undefined` members are left out, as JSON.stringify would. */
export function toStruct(object: Record<string, unknown>): ProtoStruct {
  const fields: Record<string, ProtoValue> = {};
  for (const [key, value] of Object.entries(object)) if (value !== undefined) fields[key] = toValue(value);
  return { fields };
}
