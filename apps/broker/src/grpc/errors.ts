import { Metadata, status } from '@grpc/grpc-js';
import type { MessageTypeDefinition } from '@grpc/proto-loader';
import { isDatabaseUnavailable, isUnstorableText } from '../db/availability.ts';
import { commonError, databaseUnavailable } from '../errors/common.errors.ts';
import { NexusError } from '../errors/nexus-error.ts';
import { unstorableRefused } from '../http/unstorable-text.ts';

/** `ErrorInfo.domain` of every broker error. */
export const ERROR_DOMAIN = 'nexus';

/** Codes whose HTTP status alone would pick the wrong gRPC code. */
const BY_CODE: Readonly<Record<string, status>> = {
  version_conflict: status.ABORTED,
  rate_limited: status.RESOURCE_EXHAUSTED,
};

/**
 * The gRPC status of a broker error, from its HTTP status: the catalogue stays the one source
 * (docs/errors.md), and a code added there maps here without a new entry.
 */
export function grpcCode(error: NexusError): status {
  const byCode = BY_CODE[error.code];
  if (byCode !== undefined) return byCode;
  switch (error.status) {
    case 400:
    case 413:
    case 415:
    case 422:
      return status.INVALID_ARGUMENT;
    case 401:
      return status.UNAUTHENTICATED;
    case 403:
      return status.PERMISSION_DENIED;
    case 404:
      return status.NOT_FOUND;
    case 409:
      // attention_required, connection_not_active, refresh_not_supported: the state must change first.
      return status.FAILED_PRECONDITION;
    case 429:
      return status.RESOURCE_EXHAUSTED;
    case 501:
      return status.UNIMPLEMENTED;
    case 502:
    case 503:
      // The provider or a dependency of the broker (database, secret backend) is down: retry later.
      return status.UNAVAILABLE;
    case 504:
      return status.DEADLINE_EXCEEDED;
    default:
      return status.INTERNAL;
  }
}

/** What the user must do for a connection in this state: the hint sent with FAILED_PRECONDITION. */
const REQUIRED_ACTION: Readonly<Record<string, string>> = {
  attention_required: 'reconnect',
  expired: 'reconnect',
  revoked: 'reconnect',
  failed: 'reconnect',
  pending: 'complete_consent',
};

/** Flat string metadata for ErrorInfo: strings as they are, anything else as JSON. */
function flatten(details: unknown): Record<string, string> {
  if (details === undefined || details === null) return {};
  if (typeof details !== 'object' || Array.isArray(details)) return { details: JSON.stringify(details) };
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(details as Record<string, unknown>))
    out[key] = typeof value === 'string' ? value : JSON.stringify(value);
  return out;
}

/** Trailers stay small: details whose JSON is over 4 KiB are replaced by a note saying so. */
const MAX_DETAILS_JSON = 4096;
const bounded = (details: unknown): unknown =>
  details === undefined || JSON.stringify(details).length <= MAX_DETAILS_JSON
    ? details
    : [{ path: 'request', message: 'more problems than the trailers can carry: fix the first and retry' }];

/** JSON with every character outside printable ASCII escaped: metadata values must be printable ASCII. */
const asciiJson = (value: unknown) =>
  JSON.stringify(value).replace(
    /[^\x20-\x7e]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );

export interface GrpcFailure {
  code: status;
  details: string;
  metadata: Metadata;
}

/**
 * Builds failures the way REST builds error bodies: caller-safe message, stable code, details only
 * when exposable. The reason travels twice: trailing metadata `nexus-error-code` (plus
 * `nexus-error-details` as JSON) and a `google.rpc.Status` with one `google.rpc.ErrorInfo` in
 * `grpc-status-details-bin`, which standard gRPC libraries decode.
 */
export function createErrorMapper(types: {
  status: MessageTypeDefinition<object, object>;
  errorInfo: MessageTypeDefinition<object, object>;
}): (error: NexusError, requestId: string) => GrpcFailure {
  return (error, requestId) => {
    const code = grpcCode(error);
    // As on REST (http/error-handler.ts): a 500's own code describes the broker's insides and
    // stays in the log (server.ts logs it); the caller reads `internal_error` and the request id.
    const reason = error.expose ? error.code : 'internal_error';
    const message = error.expose ? error.message : commonError('internal_error').message;
    const details = error.expose ? bounded(error.details) : undefined;
    const info: Record<string, string> = { ...flatten(details), request_id: requestId };
    const state = (details as { status?: unknown } | undefined)?.status;
    if (code === status.FAILED_PRECONDITION && typeof state === 'string' && REQUIRED_ACTION[state])
      info.required_action = REQUIRED_ACTION[state];
    const metadata = new Metadata();
    metadata.set('nexus-error-code', reason);
    metadata.set('nexus-request-id', requestId);
    if (details !== undefined) metadata.set('nexus-error-details', asciiJson(details));
    const errorInfo = types.errorInfo.serialize({ reason, domain: ERROR_DOMAIN, metadata: info });
    metadata.set(
      'grpc-status-details-bin',
      types.status.serialize({
        code,
        message,
        details: [{ type_url: 'type.googleapis.com/google.rpc.ErrorInfo', value: errorInfo }],
      }),
    );
    return { code, details: message, metadata };
  };
}

/**
 * Any thrown value as a NexusError, classified as REST classifies it (http/error-handler.ts): a
 * database that is away is `database_unavailable` (503, so UNAVAILABLE, with
 * `retry_after_seconds` in ErrorInfo), other unexpected failures `internal_error` (logged, not sent).
 */
export function asNexusError(error: unknown): NexusError {
  const unexpected = !(error instanceof NexusError) || error.status === 500;
  if (unexpected && isDatabaseUnavailable(error)) return databaseUnavailable(error);
  if (unexpected && isUnstorableText(error)) return unstorableRefused();
  return error instanceof NexusError ? error : commonError('internal_error', { cause: error });
}
