import { defineErrors, errorFrom, type NexusErrorOptions } from './nexus-error.ts';

/** Errors any route can produce, independent of the module. */
export const commonErrors = defineErrors({
  invalid_request: { status: 400, message: 'The request is not valid.' },
  unauthorized: {
    status: 401,
    message: 'Authentication is required: send an API key in X-API-Key or Authorization: Bearer.',
  },
  forbidden: { status: 403, message: 'This credential may not perform that action.' },
  address_not_allowed: { status: 403, message: 'Requests from this address are not allowed.' },
  not_found: { status: 404, message: 'Not found.' },
  route_not_found: { status: 404, message: 'No such route.' },
  method_not_allowed: { status: 405, message: 'Method not allowed on this route.' },
  conflict: { status: 409, message: 'The request conflicts with the current state.' },
  version_conflict: {
    status: 409,
    message: 'The object changed since you read it; fetch it again and retry.',
  },
  payload_too_large: { status: 413, message: 'The request body is too large.' },
  unsupported_media_type: { status: 415, message: 'Send the body as application/json.' },
  rate_limited: { status: 429, message: 'Too many requests; retry later.' },
  internal_error: {
    status: 500,
    message: 'Internal error. The request id identifies it in the broker logs.',
  },
  service_unavailable: { status: 503, message: 'A dependency of the broker is unavailable.' },
  database_unavailable: {
    status: 503,
    message: 'The broker cannot reach its database right now; retry after the time in Retry-After.',
  },
});

export type CommonErrorCode = keyof typeof commonErrors;

export function commonError(code: CommonErrorCode, options?: NexusErrorOptions) {
  return errorFrom(commonErrors, code, options);
}

/**
 * Seconds a caller is asked to wait after `database_unavailable`: about one connect attempt, and
 * long enough that a fleet of retrying agents does not hammer a database that is restarting.
 */
export const DATABASE_RETRY_AFTER_SECONDS = 5;

/**
 * `503 database_unavailable` for a failure `db/availability.ts` classified as the database being
 * away. The wait travels in `details.retry_after_seconds`, which the HTTP layer turns into
 * `Retry-After` (as for `rate_limited`) and gRPC into ErrorInfo metadata.
 */
export function databaseUnavailable(cause: unknown) {
  return commonError('database_unavailable', {
    cause,
    details: { retry_after_seconds: DATABASE_RETRY_AFTER_SECONDS },
  });
}
