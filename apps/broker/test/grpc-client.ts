/**
 * An independent gRPC client for the tests: @grpc/grpc-js with @grpc/proto-loader reading the
 * published `proto/nexus/v1/nexus.proto` or, for the compatibility tests, the original's service
 * written out from the v1 contract (`fixtures/original-nexus.proto`), with no broker code; plus the
 * broker's gRPC listener started on a test broker's container.
 */
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { createGrpcServer, type GrpcServer } from '../src/grpc/server.ts';
import { createLogger } from '../src/http/logger.ts';
import type { TestBroker } from './harness.ts';

/** grpc-js's dynamic client methods, called with the shapes their .proto gives. */
// biome-ignore lint/suspicious/noExplicitAny: dynamic gRPC stubs take untyped arguments
type AnyFunction = (...args: any[]) => any;

export const PROTO_ROOT = fileURLToPath(new URL('../../../proto', import.meta.url));
export const FIXTURES = fileURLToPath(new URL('./fixtures', import.meta.url));

/** Where a client's `nexus.v1.NexusService` comes from. */
export interface ProtoSource {
  file: string;
  includeDirs: string[];
}

/** The published service. */
export const PUBLISHED: ProtoSource = { file: 'nexus/v1/nexus.proto', includeDirs: [PROTO_ROOT] };
/**
 * The original Go gateway's service, written from the contract's field table and not from `proto/`,
 * so that the two cannot drift together. Only Google's `google/api` files come from `proto/`.
 */
export const ORIGINAL: ProtoSource = { file: 'original-nexus.proto', includeDirs: [FIXTURES, PROTO_ROOT] };

const OPTIONS: protoLoader.Options = {
  keepCase: true,
  longs: Number,
  enums: String,
  defaults: false,
  arrays: true,
  oneofs: true,
  includeDirs: [PROTO_ROOT],
};

/** The broker's gRPC listener on an ephemeral loopback port, logging into the broker's log lines. */
export async function startGrpc(broker: TestBroker): Promise<{ server: GrpcServer; address: string }> {
  const sink = new Writable({
    write(chunk, _encoding, done) {
      broker.logs.push(...String(chunk).split('\n').filter(Boolean));
      done();
    },
  });
  const server = createGrpcServer(broker.container, createLogger('info', sink));
  const port = await server.listen('127.0.0.1', 0);
  return { server, address: `127.0.0.1:${port}` };
}

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** google.protobuf.Struct (proto-loader object form) → JSON, written here independently of the broker. */
export function fromStruct(struct: {
  fields?: Record<string, Record<string, unknown>>;
}): Record<string, Json> {
  const value = (v: Record<string, unknown>): Json => {
    if ('stringValue' in v) return v.stringValue as string;
    if ('numberValue' in v) return v.numberValue as number;
    if ('boolValue' in v) return v.boolValue as boolean;
    if ('nullValue' in v) return null;
    if ('structValue' in v) return fromStruct(v.structValue as never);
    if ('listValue' in v)
      return ((v.listValue as { values?: Record<string, unknown>[] }).values ?? []).map(value);
    throw new Error(`unknown Value ${JSON.stringify(v)}`);
  };
  return Object.fromEntries(Object.entries(struct.fields ?? {}).map(([k, v]) => [k, value(v)]));
}

export interface Failure {
  code: grpc.status;
  message: string;
  trailers: Record<string, string>;
  /** google.rpc.ErrorInfo decoded from grpc-status-details-bin. */
  errorInfo: { reason: string; domain: string; metadata: Record<string, string> } | undefined;
}

export class NexusClient {
  readonly raw: grpc.Client & Record<string, grpc.MethodDefinition<unknown, unknown>>;
  readonly #status: protoLoader.MessageTypeDefinition<object, object>;
  readonly #errorInfo: protoLoader.MessageTypeDefinition<object, object>;

  constructor(address: string, proto: ProtoSource = PUBLISHED) {
    const definitions = protoLoader.loadSync(proto.file, { ...OPTIONS, includeDirs: proto.includeDirs });
    const loaded = grpc.loadPackageDefinition(definitions) as unknown as {
      nexus: { v1: { NexusService: grpc.ServiceClientConstructor } };
    };
    this.raw = new loaded.nexus.v1.NexusService(address, grpc.credentials.createInsecure()) as never;
    // The standard google.rpc types, as any client library has them.
    const rpc = protoLoader.loadSync('google/rpc/status.proto', {
      ...OPTIONS,
      includeDirs: [fileURLToPath(new URL('../src/grpc/protos', import.meta.url))],
    });
    this.#status = rpc['google.rpc.Status'] as never;
    this.#errorInfo = rpc['google.rpc.ErrorInfo'] as never;
  }

  /** A unary call; resolves to the response, rejects with a decoded `Failure`. */
  call<T = Record<string, unknown>>(
    method: string,
    request: Record<string, unknown>,
    headers: Record<string, string> = {},
  ): Promise<T> {
    const metadata = new grpc.Metadata();
    for (const [key, value] of Object.entries(headers)) metadata.set(key, value);
    return new Promise((resolve, reject) => {
      const fn = (this.raw as unknown as Record<string, AnyFunction>)[method]!.bind(this.raw);
      fn(
        request,
        metadata,
        { deadline: Date.now() + 15_000 },
        (error: grpc.ServiceError | null, response: T) => {
          if (error === null) return resolve(response);
          reject(this.#failure(error));
        },
      );
    });
  }

  /** Like `call`, expecting a failure. */
  async fail(
    method: string,
    request: Record<string, unknown>,
    headers: Record<string, string> = {},
  ): Promise<Failure> {
    try {
      const response = await this.call(method, request, headers);
      throw new Error(`${method} answered OK: ${JSON.stringify(response)}`);
    } catch (error) {
      if (error instanceof Error) throw error;
      return error as Failure;
    }
  }

  #failure(error: grpc.ServiceError): Failure {
    const trailers: Record<string, string> = {};
    for (const [key, value] of Object.entries(error.metadata.getMap()))
      if (typeof value === 'string') trailers[key] = value;
    const bin = error.metadata.get('grpc-status-details-bin')[0];
    let errorInfo: Failure['errorInfo'];
    if (Buffer.isBuffer(bin)) {
      const status = this.#status.deserialize(bin) as { details?: { type_url: string; value: Buffer }[] };
      const any = status.details?.find((d) => d.type_url === 'type.googleapis.com/google.rpc.ErrorInfo');
      if (any) errorInfo = this.#errorInfo.deserialize(any.value) as never;
    }
    return { code: error.code, message: error.details, trailers, errorInfo };
  }

  close() {
    this.raw.close();
  }
}

const require_ = createRequire(import.meta.url);

/** `grpc.health.v1.Health/Check` with the health.proto that grpc-health-check publishes. */
export function healthCheck(address: string, service: string): Promise<string> {
  const { protoPath } = require_('grpc-health-check') as { protoPath: string };
  const loaded = grpc.loadPackageDefinition(protoLoader.loadSync(protoPath, OPTIONS)) as unknown as {
    grpc: { health: { v1: { Health: grpc.ServiceClientConstructor } } };
  };
  const health = new loaded.grpc.health.v1.Health(address, grpc.credentials.createInsecure());
  return new Promise((resolve, reject) => {
    (health as unknown as Record<string, AnyFunction>).Check!(
      { service },
      (error: Error | null, response: { status: string }) => {
        health.close();
        if (error) reject(error);
        else resolve(response.status);
      },
    );
  });
}

/** The services a server lists through `grpc.reflection.v1.ServerReflection`. */
export function reflectionServices(address: string): Promise<string[]> {
  const protoFile = join(
    dirname(require_.resolve('@grpc/reflection/package.json')),
    'build/proto/grpc/reflection/v1/reflection.proto',
  );
  const loaded = grpc.loadPackageDefinition(protoLoader.loadSync(protoFile, OPTIONS)) as unknown as {
    grpc: { reflection: { v1: { ServerReflection: grpc.ServiceClientConstructor } } };
  };
  const reflection = new loaded.grpc.reflection.v1.ServerReflection(
    address,
    grpc.credentials.createInsecure(),
  );
  return new Promise((resolve, reject) => {
    const stream = (reflection as unknown as Record<string, AnyFunction>)
      .ServerReflectionInfo!() as grpc.ClientDuplexStream<
      unknown,
      { list_services_response?: { service: { name: string }[] } }
    >;
    stream.on('data', (message: { list_services_response?: { service: { name: string }[] } }) => {
      stream.end();
      reflection.close();
      resolve((message.list_services_response?.service ?? []).map((s) => s.name));
    });
    stream.on('error', reject);
    stream.write({ list_services: '' });
  });
}
