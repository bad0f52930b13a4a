import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { hasZodFastifySchemaValidationErrors, isResponseSerializationError } from 'fastify-type-provider-zod';
import { isDatabaseUnavailable, isUnstorableText, unavailableCause } from '../db/availability.ts';
import { commonError, commonErrors, databaseUnavailable } from '../errors/common.errors.ts';
import { NexusError } from '../errors/nexus-error.ts';
import { unstorableRefused } from './unstorable-text.ts';

/**
 * The wire envelope of every error: the v1 contract's `{error, message}` plus details and the
 * request id. `code` repeats `error`: the original gateway wrote `error`, the original Go SDK reads
 * `code`, and an original client gets a typed error only when both are there.
 */
export interface ErrorBody {
  error: string;
  code: string;
  message: string;
  details?: unknown;
  request_id: string;
}

/** Fastify's own error codes that are the caller's fault, mapped to our stable codes. */
const FASTIFY_CODES: Record<string, () => NexusError> = {
  FST_ERR_CTP_BODY_TOO_LARGE: () => commonError('payload_too_large'),
  FST_ERR_CTP_INVALID_MEDIA_TYPE: () => commonError('unsupported_media_type'),
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: () =>
    commonError('invalid_request', { message: 'Content-Length does not match the body.' }),
  FST_ERR_CTP_EMPTY_JSON_BODY: () => commonError('invalid_request', { message: 'The JSON body is empty.' }),
  FST_ERR_CTP_INVALID_JSON_BODY: () =>
    commonError('invalid_request', { message: 'The body is not valid JSON.' }),
  FST_ERR_BAD_URL: () => commonError('invalid_request', { message: 'The URL is malformed.' }),
  FST_ERR_ASYNC_CONSTRAINT: () => commonError('invalid_request'),
};

function toNexusError(error: FastifyError | Error): NexusError {
  // A database that is away is the one unexpected failure with a retryable answer, whether the
  // driver's error arrives bare or wrapped by a service as an internal error.
  if ((!(error instanceof NexusError) || error.status === 500) && isDatabaseUnavailable(error))
    return databaseUnavailable(error);
  // A NUL the edge did not see (unstorable-text.ts), inside a decoded value: a 400 on PostgreSQL too.
  if ((!(error instanceof NexusError) || error.status === 500) && isUnstorableText(error))
    return unstorableRefused();
  if (error instanceof NexusError) return error;
  if (hasZodFastifySchemaValidationErrors(error)) {
    const where = (error as FastifyError).validationContext ?? 'request';
    const details = error.validation.slice(0, 20).flatMap((v) => {
      const at = v.instancePath === '/' ? where : `${where}${v.instancePath.replaceAll('/', '.')}`;
      // An unknown field is reported at the field itself, one entry per field.
      const keys = (v.params as { keys?: unknown }).keys;
      if (v.keyword === 'unrecognized_keys' && Array.isArray(keys))
        return keys
          .slice(0, 20)
          .map((key) => ({ path: `${at}.${String(key).slice(0, 64)}`, message: 'unknown field' }));
      return [{ path: at, message: v.message ?? 'invalid' }];
    });
    return commonError('invalid_request', { message: `The request ${where} is not valid.`, details });
  }
  const code = (error as FastifyError).code;
  const mapped = code === undefined ? undefined : FASTIFY_CODES[code];
  if (mapped) return mapped();
  // A JSON syntax error from the body parser carries statusCode 400 and no code in some paths.
  if (error instanceof SyntaxError && (error as FastifyError).statusCode === 400) {
    return commonError('invalid_request', { message: 'The body is not valid JSON.' });
  }
  const status = (error as FastifyError).statusCode;
  if (status !== undefined && status >= 400 && status < 500) {
    return commonError(
      status === 404 ? 'not_found' : status === 413 ? 'payload_too_large' : 'invalid_request',
    );
  }
  return commonError('internal_error', { cause: error });
}

/** Logs a 5xx with its real code, detail and cause (for a 500, the only place its code appears). */
function logFailure(request: FastifyRequest, error: NexusError, thrown: unknown): void {
  request.log.error(
    {
      err: isResponseSerializationError(thrown)
        ? { message: 'response did not match its schema', type: thrown.code }
        : (error.cause ?? thrown),
      code: error.code,
      detail: error.detail,
    },
    'request failed',
  );
}

/**
 * Sends an error answer. A 500 is an unexpected failure: its code (`key_not_in_ring`,
 * `decryption_failed`, …) describes the broker's insides, so the caller gets `internal_error`, the
 * generic message and the request id, and the code goes to the log. 502/503 codes are meant for
 * callers (retry, or tell the user) and go out as they are.
 */
export function sendError(request: FastifyRequest, reply: FastifyReply, error: NexusError): FastifyReply {
  if (!error.expose) logFailure(request, error, error);
  return send(request, reply, error);
}

function send(request: FastifyRequest, reply: FastifyReply, error: NexusError): FastifyReply {
  const code = error.expose ? error.code : 'internal_error';
  const body: ErrorBody = {
    error: code,
    code,
    message: error.expose ? error.message : commonErrors.internal_error.message,
    ...(error.expose && error.details !== undefined ? { details: error.details } : {}),
    request_id: request.id,
  };
  // RFC 6749 §5.2: a client that authenticated with HTTP Basic is challenged the same way.
  if (error.status === 401)
    reply.header(
      'www-authenticate',
      /^basic\s/i.test(request.headers.authorization ?? '') ? 'Basic realm="nexus"' : 'Bearer',
    );
  // RFC 9110 §10.2.3: how long to wait before retrying (rate_limited, database_unavailable).
  const retryAfter = (error.details as { retry_after_seconds?: unknown } | undefined)?.retry_after_seconds;
  if (typeof retryAfter === 'number') reply.header('retry-after', String(retryAfter));
  return reply.status(error.status).type('application/json').send(body);
}

/**
 * What a thrown error answers, logged as the error handler logs it: for routes that answer with a
 * page of their own instead of the JSON envelope (the hosted capture form). Show only what
 * `expose` allows, as `send` does.
 */
export function rejection(request: FastifyRequest, error: unknown): NexusError {
  const nexus = toNexusError(error instanceof Error ? error : new Error(String(error)));
  logRejection(request, nexus, error);
  return nexus;
}

function logRejection(request: FastifyRequest, nexus: NexusError, error: unknown): void {
  if (nexus.code === 'database_unavailable') {
    // Expected while the database restarts and logged once per request: the driver's message
    // is enough, a stack per request would bury the first line of the outage.
    const { message, code } = unavailableCause(nexus.cause) ?? {};
    request.log.warn({ code: nexus.code, cause: { message, code } }, 'database unavailable');
  } else if (nexus.status >= 500 && nexus.status !== 501) {
    // 501: a feature the operator did not configure (it names the variable), not a failure.
    logFailure(request, nexus, error);
  } else if (nexus.detail !== undefined) {
    request.log.info({ code: nexus.code, detail: nexus.detail }, 'request rejected');
  }
}

/** The one place errors become responses: a stack trace or driver message never reaches the caller. */
export function installErrorHandling(app: FastifyInstance): void {
  app.setErrorHandler((error: FastifyError, request, reply) => {
    const nexus = toNexusError(error);
    logRejection(request, nexus, error);
    return send(request, reply, nexus);
  });
  app.setNotFoundHandler((request, reply) => sendError(request, reply, commonError('route_not_found')));
}
