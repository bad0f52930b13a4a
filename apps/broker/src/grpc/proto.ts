import { fileURLToPath } from 'node:url';
import * as protoLoader from '@grpc/proto-loader';
import { protoPath as healthProtoPath } from 'grpc-health-check';

/** The published `.proto` (repository root `proto/`), the same file the SDKs ship. */
export const NEXUS_PROTO_DIR = fileURLToPath(new URL('../../../../proto', import.meta.url));
export const NEXUS_PROTO_FILE = 'nexus/v1/nexus.proto';
export const NEXUS_SERVICE_NAME = 'nexus.v1.NexusService';

const LOADER_OPTIONS: protoLoader.Options = {
  // snake_case on the wire and in handler objects, like the REST bodies.
  keepCase: true,
  longs: Number,
  enums: String,
  // Absent fields stay absent (proto3 cannot tell "" from unset): the validator sees undefined.
  defaults: false,
  arrays: true,
  oneofs: true,
};

/**
 * The service definitions the broker serves, loaded once at start (not at import time):
 * `nexus.v1.NexusService` and `grpc.health.v1.Health`, which reflection describes too.
 */
export function loadServiceDefinitions(): protoLoader.PackageDefinition {
  return protoLoader.loadSync([NEXUS_PROTO_FILE, healthProtoPath], {
    ...LOADER_OPTIONS,
    includeDirs: [NEXUS_PROTO_DIR],
  });
}

/** `google.rpc.Status` and `google.rpc.ErrorInfo`, for `grpc-status-details-bin` (kept out of reflection). */
export function loadStatusTypes(): {
  status: protoLoader.MessageTypeDefinition<object, object>;
  errorInfo: protoLoader.MessageTypeDefinition<object, object>;
} {
  const definitions = protoLoader.loadSync('google/rpc/status.proto', {
    ...LOADER_OPTIONS,
    includeDirs: [fileURLToPath(new URL('./protos', import.meta.url))],
  });
  return {
    status: definitions['google.rpc.Status'] as protoLoader.MessageTypeDefinition<object, object>,
    errorInfo: definitions['google.rpc.ErrorInfo'] as protoLoader.MessageTypeDefinition<object, object>,
  };
}
