/**
 * The admin API as the console calls it. The admin key lives in this module's memory only: never
 * in a cookie, localStorage or sessionStorage, so reloading the page or closing the tab signs out,
 * and no other site can make the browser send it. It travels in the X-API-Key header.
 */

export type Scope = 'full' | 'read';

let key: string | undefined;
let scope: Scope = 'read';

/** The signed-in key as `GET /admin/v1/admin-keys/current` describes it (never its value). */
export interface CurrentKey {
  id: string;
  name: string;
  scope: Scope | 'agent';
  source: 'stored' | 'environment';
}

/** An error answer of the API: its stable code, message and field details. */
export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  readonly details: readonly { path: string; message: string }[];
  constructor(status: number, code: string, message: string, details: ApiError['details'] = []) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details;
  }
}

export type Query = Record<string, string | number | undefined>;

/** Calls the API with the key; the parsed JSON answer (undefined for 204), or throws ApiError. */
export async function api<T>(
  method: string,
  path: string,
  options: { query?: Query; body?: unknown; headers?: Record<string, string> } = {},
) {
  return call<T>(key, method, path, options);
}

async function call<T>(
  credential: string | undefined,
  method: string,
  path: string,
  options: { query?: Query; body?: unknown; headers?: Record<string, string> },
): Promise<T> {
  const url = new URL(path, location.origin);
  // The path the page built is the path called: a value from the page's address that carries
  // `..` (or `%2e%2e`) must not move the call to another route of the admin API.
  if (url.pathname !== path.split('?')[0] || url.origin !== location.origin)
    throw new ApiError(0, 'invalid_path', 'That address does not name anything the console can open.');
  for (const [name, value] of Object.entries(options.query ?? {}))
    if (value !== undefined && value !== '') url.searchParams.set(name, String(value));
  const headers: Record<string, string> = { ...options.headers, accept: 'application/json' };
  if (credential !== undefined) headers['x-api-key'] = credential;
  if (options.body !== undefined) headers['content-type'] = 'application/json';
  let response: Response;
  try {
    response = await fetch(url, {
      method,
      headers,
      body: options.body === undefined ? undefined : JSON.stringify(options.body),
      credentials: 'omit',
      cache: 'no-store',
    });
  } catch {
    throw new ApiError(0, 'network_error', 'The broker did not answer. Is it running?');
  }
  if (response.status === 204) return undefined as T;
  const text = await response.text();
  let body: unknown;
  try {
    body = text === '' ? undefined : JSON.parse(text);
  } catch {
    body = undefined;
  }
  if (!response.ok) {
    const e = (body ?? {}) as {
      error?: string;
      message?: string;
      details?: { path: string; message: string }[];
    };
    throw new ApiError(
      response.status,
      e.error ?? `http_${response.status}`,
      e.message ?? `The broker answered ${response.status}.`,
      Array.isArray(e.details) ? e.details : [],
    );
  }
  return body as T;
}

/**
 * Checks a key and learns what it is (`GET /admin/v1/admin-keys/current`: its name and scope).
 * A key of scope `agent` is refused there (403): it cannot use the admin API.
 */
export async function signIn(candidate: string): Promise<CurrentKey> {
  let found: CurrentKey;
  try {
    found = await call<CurrentKey>(candidate, 'GET', '/admin/v1/admin-keys/current', {});
  } catch (error) {
    if (error instanceof ApiError && error.status === 403)
      throw new ApiError(
        403,
        'forbidden',
        'This key cannot read the admin API: use a key of scope "read" or "full".',
      );
    throw error;
  }
  if (found.scope !== 'read' && found.scope !== 'full')
    throw new ApiError(
      403,
      'forbidden',
      'This key cannot read the admin API: use a key of scope "read" or "full".',
    );
  key = candidate;
  scope = found.scope;
  return found;
}

export function signOut(): void {
  key = undefined;
  scope = 'read';
}

/** Whether the signed-in key may change things (buttons that would are not shown otherwise). */
export const canWrite = (): boolean => key !== undefined && scope === 'full';
