/**
 * Typed errors. Every failure the SDK reports is a `NexusError` carrying the broker's stable error
 * `code`, the HTTP `status` (undefined when no answer arrived) and the broker's `requestId`.
 * Messages come from the broker (caller-safe by its contract) or from the SDK; never a secret.
 */

export interface NexusErrorInit {
  status?: number | undefined;
  code: string;
  requestId?: string | undefined;
  details?: unknown;
  cause?: unknown;
}

/** Base class of every error the SDK throws about a broker call. */
export class NexusError extends Error {
  /** HTTP status of the broker's answer; undefined when none arrived (network failure, timeout). */
  readonly status: number | undefined;
  /** The broker's stable error code (`attention_required`, `not_found`, …) or an SDK code. */
  readonly code: string;
  /** The broker's request id (`x-request-id`), to find the request in its logs. */
  readonly requestId: string | undefined;
  /** Structured details from the broker, when it sent any. */
  readonly details: unknown;

  constructor(message: string, init: NexusErrorInit) {
    super(message, init.cause === undefined ? undefined : { cause: init.cause });
    this.name = new.target.name;
    this.status = init.status;
    this.code = init.code;
    this.requestId = init.requestId;
    this.details = init.details;
  }
}

/** 400: the request was refused as invalid (see `details`). */
export class InvalidRequestError extends NexusError {}
/** 401: the API key or agent credentials were missing or refused. */
export class AuthenticationError extends NexusError {}
/** 403: this credential may not do that. */
export class PermissionDeniedError extends NexusError {}
/** 404: no such object, or not visible to this credential. */
export class NotFoundError extends NexusError {}
/** 409: the request conflicts with the object's state. */
export class ConflictError extends NexusError {}
/** 422: understood but not processable (e.g. unresolved secrets). */
export class UnprocessableError extends NexusError {}
/** 429: rate limited; `retryAfterMs` is the broker's `Retry-After` when it sent one. */
export class RateLimitedError extends NexusError {
  readonly retryAfterMs: number | undefined;
  constructor(message: string, init: NexusErrorInit & { retryAfterMs?: number | undefined }) {
    super(message, init);
    this.retryAfterMs = init.retryAfterMs;
  }
}
/** 5xx answered by the broker (502 when the provider failed, 503 when a dependency is down). */
export class ServerError extends NexusError {}

/**
 * The connection's grant is no longer accepted by the provider (409 `attention_required`): the user
 * must reconnect the account (a new consent through `requestConnection`). Retrying will not help.
 */
export class AttentionRequiredError extends ConflictError {
  readonly connectionId: string | undefined;
  constructor(message: string, init: NexusErrorInit & { connectionId?: string | undefined }) {
    super(message, init);
    this.connectionId = init.connectionId;
  }
}

/** No answer from the broker (connection refused or reset, DNS failure, timeout) after the retries. */
export class BrokerUnavailableError extends NexusError {}

/** The bridge cannot apply a strategy (unknown type, missing credential field or config key). */
export class StrategyError extends NexusError {}

/** `resolveSecrets` found references it could not resolve (names only, never values). */
export class UnresolvedSecretsError extends UnprocessableError {
  readonly unresolved: { name: string; reason: string }[];
  constructor(message: string, init: NexusErrorInit & { unresolved: { name: string; reason: string }[] }) {
    super(message, init);
    this.unresolved = init.unresolved;
  }
}

/** Fails at construction: no credential given and none in the environment. */
export class ConfigurationError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigurationError';
  }
}

/** The sentence every attention-required error starts with, so callers and logs say what to do. */
export function attentionMessage(connectionId: string | undefined, brokerMessage?: string): string {
  const which = connectionId ? `connection ${connectionId}` : 'this connection';
  const why = brokerMessage ? ` (${brokerMessage})` : '';
  return `The user must reconnect: the provider no longer accepts the grant of ${which}${why}. Start a new consent with requestConnection.`;
}

/** Builds the typed error for a broker answer with a non-2xx status. */
export function errorFromResponse(
  status: number,
  body: unknown,
  requestId: string | undefined,
  context: { connectionId?: string | undefined; retryAfterMs?: number | undefined } = {},
): NexusError {
  const parsed = isErrorBody(body) ? body : undefined;
  const code = parsed?.error ?? codeForStatus(status);
  const brokerMessage = parsed?.message ?? parsed?.error_description;
  const message = brokerMessage ?? `The broker answered HTTP ${status}.`;
  const init: NexusErrorInit = {
    status,
    code,
    requestId: requestId ?? parsed?.request_id,
    details: parsed?.details,
  };
  if (code === 'attention_required') {
    return new AttentionRequiredError(attentionMessage(context.connectionId, brokerMessage), {
      ...init,
      connectionId: context.connectionId,
    });
  }
  if (code === 'unresolved_secrets' && isUnresolvedDetails(parsed?.details)) {
    return new UnresolvedSecretsError(message, { ...init, unresolved: parsed.details.unresolved });
  }
  if (status === 400) return new InvalidRequestError(message, init);
  if (status === 401) return new AuthenticationError(message, init);
  if (status === 403) return new PermissionDeniedError(message, init);
  if (status === 404) return new NotFoundError(message, init);
  if (status === 409) return new ConflictError(message, init);
  if (status === 422) return new UnprocessableError(message, init);
  if (status === 429) return new RateLimitedError(message, { ...init, retryAfterMs: context.retryAfterMs });
  if (status >= 500) return new ServerError(message, init);
  return new NexusError(message, init);
}

function codeForStatus(status: number): string {
  const codes: Record<number, string> = {
    400: 'invalid_request',
    401: 'unauthorized',
    403: 'forbidden',
    404: 'not_found',
    409: 'conflict',
    422: 'unprocessable',
    429: 'rate_limited',
    502: 'bad_gateway',
    503: 'service_unavailable',
    504: 'gateway_timeout',
  };
  return codes[status] ?? (status >= 500 ? 'internal_error' : 'http_error');
}

interface LooseErrorBody {
  error: string;
  message?: string;
  error_description?: string;
  details?: unknown;
  request_id?: string;
}

function isErrorBody(body: unknown): body is LooseErrorBody {
  return typeof body === 'object' && body !== null && typeof (body as { error?: unknown }).error === 'string';
}

function isUnresolvedDetails(
  details: unknown,
): details is { unresolved: { name: string; reason: string }[] } {
  return (
    typeof details === 'object' &&
    details !== null &&
    Array.isArray((details as { unresolved?: unknown }).unresolved)
  );
}
