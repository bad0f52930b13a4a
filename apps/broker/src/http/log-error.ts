import { NexusError } from '../errors/nexus-error.ts';

/**
 * What of a thrown value goes into a log line: its class, message, stack, short codes (`code`,
 * `status`, the OAuth `error`), a NexusError's `detail` (written by the broker for its operators:
 * "sealed with key k2, not in the ring"), then the same of its `cause` when that is an Error, a few
 * levels deep. Nothing else: pino's standard serializer copies every enumerable property, and
 * errors carry what they were made from (oauth4webapi's `ResponseBodyError` holds a provider's
 * whole answer as `cause`, new tokens included), which the exact-path redaction list cannot reach.
 */
const CODE = /^[\w.:-]{1,64}$/;
const MAX_DEPTH = 4;
const MAX_AGGREGATED = 5;

export interface LoggedError {
  type: string;
  message: string;
  stack?: string;
  code?: string | number;
  status?: number;
  error?: string;
  detail?: string;
  cause?: LoggedError;
  errors?: LoggedError[];
}

export function errorForLog(value: unknown, depth = 0): LoggedError {
  if (!(value instanceof Error)) {
    // A plain object made for the log (`{ type, message }`) keeps those two; nothing else does.
    const o = typeof value === 'object' && value !== null ? (value as Record<string, unknown>) : {};
    return {
      type: typeof o.type === 'string' && CODE.test(o.type) ? o.type : typeof value,
      message: typeof o.message === 'string' ? o.message : '[not an Error]',
    };
  }
  const e = value as Error & Record<string, unknown>;
  const logged: LoggedError = { type: e.constructor?.name || 'Error', message: e.message };
  if (e.stack !== undefined) logged.stack = e.stack;
  if ((typeof e.code === 'string' && CODE.test(e.code)) || typeof e.code === 'number') logged.code = e.code;
  const status = e.status ?? e.statusCode;
  if (typeof status === 'number') logged.status = status;
  if (typeof e.error === 'string' && CODE.test(e.error)) logged.error = e.error;
  if (value instanceof NexusError && value.detail !== undefined) logged.detail = value.detail;
  if (depth < MAX_DEPTH && e.cause instanceof Error) logged.cause = errorForLog(e.cause, depth + 1);
  if (depth < MAX_DEPTH && value instanceof AggregateError)
    logged.errors = value.errors.slice(0, MAX_AGGREGATED).map((inner) => errorForLog(inner, depth + 1));
  return logged;
}
