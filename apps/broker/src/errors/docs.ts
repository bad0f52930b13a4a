import { allErrorCodes, allReturnUrlCodes } from './registry.ts';

/** Renders `docs/errors.md` from the error catalogues. */
export function renderErrorDocs(): string {
  const lines = [
    '# Error codes',
    '',
    '<!-- Generated from the error catalogues (apps/broker/src/errors/registry.ts) by `npm run docs:config`. Do not edit by hand. -->',
    '',
    'Every error answer is JSON: `{"error": "<code>", "code": "<code>", "message": "<text>", "details"?: ..., "request_id": "<id>"}`.',
    '`code` repeats `error` (the original Go SDK reads `code`, the original gateway wrote `error`).',
    'The `error` code is stable: clients branch on it, never on `message`. 5xx answers carry a generic',
    'message; the cause is in the broker log under the same `request_id`.',
    '',
    '| code | HTTP | meaning | module |',
    '|---|---|---|---|',
  ];
  const codes = [...allErrorCodes()].sort(([a, x], [b, y]) => x.status - y.status || a.localeCompare(b));
  // A 500 goes out as `internal_error` (http/error-handler.ts, grpc/errors.ts); its own code is logged only.
  const logged = (code: string, status: number) => status === 500 && code !== 'internal_error';
  for (const [code, spec] of codes)
    if (!logged(code, spec.status))
      lines.push(`| \`${code}\` | ${spec.status} | ${spec.message} | ${spec.module} |`);
  lines.push(
    '',
    '## In the broker log only',
    '',
    'These codes name internal failures. Callers receive `500 internal_error` (gRPC `INTERNAL` with',
    'reason `internal_error`); the log line with the same `request_id` carries the code below.',
    '',
    '| code | meaning | module |',
    '|---|---|---|',
  );
  for (const [code, spec] of codes)
    if (logged(code, spec.status)) lines.push(`| \`${code}\` | ${spec.message} | ${spec.module} |`);
  lines.push(
    '',
    '## In a consent return_url',
    '',
    "A consent that fails after the user left for the provider ends in a redirect to the caller's",
    '`return_url` with `status=failed&error=<code>`, never in a JSON answer. `error` is one of the codes',
    'below, or a code the provider itself sent back to the callback, passed on when it is one of the',
    'standard ones (RFC 6749 §4.1.2.1, OpenID Connect Core §3.1.2.6: `access_denied`,',
    '`consent_required`, `login_required`, `server_error`, …); any other becomes',
    "`authorization_failed`, so that no one can answer with one of the broker's own codes. The audit",
    'event `connection.failed` records the same code in `details.error`.',
    '',
    '| code | meaning | also an HTTP code | module |',
    '|---|---|---|---|',
  );
  const http = allErrorCodes();
  const returned = [...allReturnUrlCodes()].sort(([a], [b]) => a.localeCompare(b));
  for (const [code, spec] of returned) {
    const status = http.get(code)?.status;
    lines.push(
      `| \`${code}\` | ${spec.message} | ${status === undefined ? '' : String(status)} | ${spec.module} |`,
    );
  }
  lines.push('');
  return lines.join('\n');
}
