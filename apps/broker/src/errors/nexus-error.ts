/**
 * The one error type of the broker. `code` is the stable wire contract, `message` is written
 * for the caller, `detail` is internal (logged, never sent). Mapping to HTTP happens once, in
 * `http/error-handler.ts`.
 */
export interface ErrorSpec {
  readonly status: number;
  readonly message: string;
}

export type ErrorCatalog = Readonly<Record<string, ErrorSpec>>;

export interface NexusErrorOptions {
  /** Replaces the catalogue message; must stay safe to show to the caller. */
  message?: string;
  /** Internal explanation: logged with the request id, never sent. */
  detail?: string;
  /** Structured, caller-safe details (validation paths, allowed values). */
  details?: unknown;
  cause?: unknown;
}

export class NexusError extends Error {
  readonly code: string;
  readonly status: number;
  readonly detail: string | undefined;
  readonly details: unknown;

  constructor(code: string, status: number, message: string, options: NexusErrorOptions = {}) {
    super(options.message ?? message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'NexusError';
    this.code = code;
    this.status = status;
    this.detail = options.detail;
    this.details = options.details;
  }

  /**
   * Whether `message` may reach the caller: everything but 500 (an unexpected failure, whose
   * message may describe internals). 502/503 are deliberate answers with caller-safe messages.
   */
  get expose(): boolean {
    return this.status !== 500;
  }
}

/** Declares a module's error catalogue; `registry.ts` merges them and checks codes are unique. */
export function defineErrors<const C extends ErrorCatalog>(catalog: C): C {
  return catalog;
}

/** Builds a `NexusError` from a catalogue entry. */
export function errorFrom<C extends ErrorCatalog>(
  catalog: C,
  code: keyof C & string,
  options: NexusErrorOptions = {},
): NexusError {
  const spec = catalog[code];
  if (spec === undefined) throw new Error(`unknown error code ${code}`);
  return new NexusError(code, spec.status, spec.message, options);
}

/**
 * A code that never answers a request: it travels to an application in a redirect (the consent
 * callback's `status=failed&error=<code>` on the caller's return_url). The application branches on
 * it, so it is catalogued and documented like an HTTP code; `message` says what happened.
 */
export interface ReturnUrlErrorSpec {
  readonly message: string;
}

export type ReturnUrlErrorCatalog = Readonly<Record<string, ReturnUrlErrorSpec>>;

/** Declares the codes a module sends to a return_url; `registry.ts` merges and documents them. */
export function defineReturnUrlErrors<const C extends ReturnUrlErrorCatalog>(catalog: C): C {
  return catalog;
}
