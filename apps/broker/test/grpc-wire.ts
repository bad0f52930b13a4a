/**
 * The wire of a `.proto`, as a lock file records it: for each message of the `nexus.*` packages,
 * every field number with what it means (`repeated string scopes`), and the reserved numbers; for
 * each call, its request and response types, streaming and `google.api.http` route. A proto3 field
 * number *is* the wire (a client decodes by number, never by name), so a number that changes meaning
 * silently hands a client one value in place of another. `compareWire` tells the changes that break
 * a deployed client from the additions that do not, like `buf breaking` with its WIRE rules.
 */
import * as protoLoader from '@grpc/proto-loader';
import type { ProtoSource } from './grpc-client.ts';

export interface WireMessage {
  /** Field number → `[optional |repeated ]<type> <name>`, the field's line in a `.proto`. */
  fields: Record<string, string>;
  /** Numbers retired with `reserved`: never to be used again. */
  reserved: number[];
}

export interface Wire {
  messages: Record<string, WireMessage>;
  /** `Service/Method` → `Request -> Response` with `stream` marks and the HTTP route. */
  methods: Record<string, string>;
}

/** google/protobuf/descriptor.proto as proto-loader bundles it; no defaults, so absent stays absent. */
const descriptorTypes = () =>
  protoLoader.loadSync('google/protobuf/descriptor.proto', {
    keepCase: true,
    longs: Number,
    enums: String,
    defaults: false,
    arrays: true,
  });

interface FieldDescriptor {
  name: string;
  number: number;
  label: string;
  type: string;
  typeName?: string;
  oneofIndex?: number;
  proto3Optional?: boolean;
}
interface ServiceDescriptor {
  name: string;
  method: {
    name: string;
    inputType: string;
    outputType: string;
    clientStreaming?: boolean;
    serverStreaming?: boolean;
  }[];
}
interface MessageDescriptor {
  name: string;
  field: FieldDescriptor[];
  nestedType: MessageDescriptor[];
  oneofDecl: { name: string }[];
  reservedRange: { start: number; end: number }[];
}

const SCALAR = (type: string) => type.replace(/^TYPE_/, '').toLowerCase();

function fieldLine(message: MessageDescriptor, f: FieldDescriptor): string {
  const type =
    f.type === 'TYPE_MESSAGE' || f.type === 'TYPE_ENUM' ? f.typeName!.replace(/^\./, '') : SCALAR(f.type);
  // proto3 `optional` is a synthetic one-field oneof named `_<field>`; a real oneof is named.
  const oneof = f.oneofIndex === undefined ? undefined : message.oneofDecl[f.oneofIndex]?.name;
  const label =
    f.label === 'LABEL_REPEATED'
      ? 'repeated '
      : oneof === `_${f.name}`
        ? 'optional '
        : oneof !== undefined
          ? `oneof ${oneof} `
          : '';
  return `${label}${type} ${f.name}`;
}

/** The wire of one `.proto` file and what it imports (only `nexus.*` packages are described). */
export function describeWire(source: ProtoSource): Wire {
  const definitions = protoLoader.loadSync(source.file, {
    keepCase: true,
    includeDirs: source.includeDirs,
  });
  const fileType = descriptorTypes()[
    'google.protobuf.FileDescriptorProto'
  ] as protoLoader.MessageTypeDefinition<object, object>;
  const messages: Record<string, WireMessage> = {};
  const methods: Record<string, string> = {};
  const anyDefinition = Object.values(definitions).find((d) => 'fileDescriptorProtos' in d) as
    | protoLoader.MessageTypeDefinition<object, object>
    | undefined;
  for (const bytes of anyDefinition?.fileDescriptorProtos ?? []) {
    const file = fileType.deserialize(bytes as Buffer) as {
      package?: string;
      messageType: MessageDescriptor[];
      service: ServiceDescriptor[];
    };
    if (!file.package?.startsWith('nexus.')) continue;
    const visit = (prefix: string, message: MessageDescriptor) => {
      const name = `${prefix}.${message.name}`;
      const fields: Record<string, string> = {};
      for (const f of message.field) fields[String(f.number)] = fieldLine(message, f);
      // protobufjs writes a reserved range with an inclusive end (`reserved 2;` is {2, 2}).
      const reserved = message.reservedRange.flatMap(({ start, end }) =>
        Array.from({ length: Math.max(end, start) - start + 1 }, (_, i) => start + i),
      );
      messages[name] = { fields, reserved: reserved.sort((a, b) => a - b) };
      for (const nested of message.nestedType) visit(name, nested);
    };
    for (const message of file.messageType) visit(file.package, message);
    for (const service of file.service) {
      const serviceName = `${file.package}.${service.name}`;
      const definition = definitions[serviceName] as protoLoader.ServiceDefinition;
      for (const m of service.method) {
        // Custom options do not survive protobufjs's descriptors: read the parsed ones.
        const options = definition[m.name]!.options as Record<string, unknown>;
        const http = options['(google.api.http)'] as Record<string, string> | undefined;
        const route = http
          ? Object.entries(http)
              .map(([k, v]) => (k === 'body' ? `body ${v}` : `${k.toUpperCase()} ${v}`))
              .join(' ')
          : 'no HTTP route';
        const type = (t: string, stream: boolean | undefined) =>
          `${stream ? 'stream ' : ''}${t.replace(/^\./, '')}`;
        methods[`${serviceName}/${m.name}`] =
          `${type(m.inputType, m.clientStreaming)} -> ${type(m.outputType, m.serverStreaming)}; ${route}`;
      }
    }
  }
  return { messages, methods };
}

export interface WireChanges {
  /** Changes that break a client built from `before`: a number that now means something else, or is gone. */
  breaking: string[];
  /** New messages, numbers, reservations and calls: safe, but to be recorded in the lock. */
  added: string[];
}

/** What `after` changes on the wire of `before` (a lock, or the original's service). */
export function compareWire(before: Wire, after: Wire): WireChanges {
  const breaking: string[] = [];
  const added: string[] = [];
  for (const [name, was] of Object.entries(before.messages)) {
    const now = after.messages[name];
    if (now === undefined) {
      breaking.push(`message ${name} was removed`);
      continue;
    }
    for (const [number, line] of Object.entries(was.fields)) {
      const current = now.fields[number];
      if (current === line) continue;
      if (current !== undefined)
        breaking.push(`${name} field ${number} was \`${line}\` and is now \`${current}\``);
      else if (now.reserved.includes(Number(number)))
        added.push(`${name} field ${number} (\`${line}\`) retired as reserved`);
      else breaking.push(`${name} field ${number} (\`${line}\`) was removed without \`reserved ${number};\``);
    }
    for (const number of was.reserved) {
      if (now.fields[String(number)] !== undefined)
        breaking.push(
          `${name} field ${number} is reserved and may not be used again (${now.fields[number]})`,
        );
      else if (!now.reserved.includes(number)) breaking.push(`${name} no longer reserves ${number}`);
    }
    for (const [number, line] of Object.entries(now.fields))
      if (was.fields[number] === undefined && !was.reserved.includes(Number(number)))
        added.push(`${name} field ${number} \`${line}\``);
    for (const number of now.reserved)
      if (!was.reserved.includes(number) && was.fields[String(number)] === undefined)
        added.push(`${name} reserves ${number}`);
  }
  for (const name of Object.keys(after.messages))
    if (before.messages[name] === undefined) added.push(`message ${name}`);
  for (const [name, was] of Object.entries(before.methods)) {
    const now = after.methods[name];
    if (now === undefined) breaking.push(`call ${name} was removed`);
    else if (now !== was) breaking.push(`call ${name} was \`${was}\` and is now \`${now}\``);
  }
  for (const name of Object.keys(after.methods))
    if (before.methods[name] === undefined) added.push(`call ${name}`);
  return { breaking, added };
}

/** `wire` restricted to the messages and calls that `scope` has (the original's part of ours). */
export function restrictWire(wire: Wire, scope: Wire): Wire {
  return {
    messages: Object.fromEntries(Object.entries(wire.messages).filter(([k]) => k in scope.messages)),
    methods: Object.fromEntries(Object.entries(wire.methods).filter(([k]) => k in scope.methods)),
  };
}
