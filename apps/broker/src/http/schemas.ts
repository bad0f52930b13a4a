import * as z from 'zod';

/** The error envelope, documented on every route. */
export const errorSchema = z
  .object({
    error: z.string().describe('Stable error code'),
    code: z
      .string()
      .describe('The same value as `error`, for clients of the original Go SDK, which read `code`'),
    message: z.string().describe('Explanation for people; may change between versions'),
    details: z
      .unknown()
      .optional()
      .describe('Structured details, e.g. `[{path, message}]` for validation errors'),
    request_id: z.string().describe('Identifies the request in the broker logs'),
  })
  .meta({ id: 'Error' });

type Status = 404 | 409 | 410 | 412 | 413 | 422 | 429 | 502 | 503;
type Always = 400 | 401 | 403;

/**
 * Error responses of an authenticated route for the OpenAPI document: 400 (a malformed request),
 * 401 and 403 on every route, plus the route's own.
 */
export function errorResponses<const S extends Status>(
  ...statuses: S[]
): Record<S | Always, typeof errorSchema> {
  const out = {} as Record<S | Always, typeof errorSchema>;
  for (const status of [...statuses, 400, 401, 403] as (S | Always)[]) out[status] = errorSchema;
  return out;
}
