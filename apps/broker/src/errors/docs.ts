import { allErrorCodes } from './registry.ts';

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
  lines.push('');
  return lines.join('\n');
}
