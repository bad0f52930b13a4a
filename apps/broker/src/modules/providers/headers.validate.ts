import { PLACEHOLDER, templateFields } from '../strategies/headers.ts';
import type { Problem } from './provider-url-rules.ts';

/*
 * `params.auth_strategy.config` of the `headers` strategy (strategies/headers.ts): header names to
 * value templates. Each problem has its own stable message; the fields the templates name are
 * checked against `params.credential_schema` with it (capture-params.validate.ts), and without one
 * they are what the capture form asks for.
 */

export const MAX_HEADERS = 20;
export const MAX_TEMPLATE = 512;
const MAX_NAME = 128;
/** RFC 9110 §5.1: a field name is a token. */
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
/** Printable ASCII: what every HTTP client sends unchanged (no line break, no control character). */
const PRINTABLE = /^[\x20-\x7e]*$/;

/**
 * Headers the broker and the proxy set or strip themselves (hop-by-hop ones, RFC 9110 §7.6.1, the
 * framing of the body, the upstream's host) and the proxy's own `X-Nexus-*` ones: a strategy that
 * wrote one would change where or how a request is sent, not who sends it.
 */
const RESERVED = new Set([
  'host',
  'content-length',
  'transfer-encoding',
  'connection',
  'keep-alive',
  'proxy-authenticate',
  'proxy-authorization',
  'proxy-connection',
  'te',
  'trailer',
  'upgrade',
  'expect',
]);

/** Whether a strategy may not write the header `name` (any case): see RESERVED. */
export const isReservedHeader = (name: string): boolean => {
  const lower = name.toLowerCase();
  return RESERVED.has(lower) || lower.startsWith('x-nexus-');
};

export function checkHeadersConfig(problems: Problem[], config: Record<string, unknown>): void {
  const base = 'params.auth_strategy.config';
  const before = problems.length;
  const entries = Object.entries(config);
  if (entries.length === 0 || entries.length > MAX_HEADERS) {
    problems.push({ path: base, message: `must map 1 to ${MAX_HEADERS} header names to value templates` });
    if (entries.length === 0) return;
  }
  const seen = new Map<string, string>();
  let fields = 0;
  for (const [name, template] of entries.slice(0, MAX_HEADERS)) {
    const path = `${base}.${name.slice(0, MAX_NAME)}`;
    const lower = name.toLowerCase();
    if (name.length > MAX_NAME || !TOKEN.test(name)) {
      problems.push({ path, message: `must be a valid HTTP header name of at most ${MAX_NAME} characters` });
      continue;
    }
    if (isReservedHeader(name)) {
      problems.push({ path, message: 'is a header the broker and the proxy set themselves' });
      continue;
    }
    const other = seen.get(lower);
    if (other !== undefined) {
      problems.push({ path, message: `is the same header as ${other} (header names ignore case)` });
      continue;
    }
    seen.set(lower, name);
    if (typeof template !== 'string' || template.length === 0 || template.length > MAX_TEMPLATE) {
      problems.push({ path, message: `must be a string of 1 to ${MAX_TEMPLATE} characters` });
      continue;
    }
    if (!PRINTABLE.test(template) || template.trim() !== template) {
      problems.push({
        path,
        message:
          'must be printable ASCII (no line break or control character), without leading or trailing spaces',
      });
      continue;
    }
    if (/[{}]/.test(template.replace(PLACEHOLDER, ''))) {
      problems.push({
        path,
        message:
          'has a { or } outside a {field} placeholder (field names: letters, digits, dot, dash, underscore)',
      });
      continue;
    }
    fields += templateFields(template).length;
  }
  if (fields === 0 && problems.length === before)
    problems.push({
      path: base,
      message: 'no header names a {field}: the strategy would send no credential',
    });
}
