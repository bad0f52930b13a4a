import * as z from 'zod';

/** The error envelope, documented on every route. */
export const errorSchema = z
  .object({
    error: z.string().describe('Stable error code'),
    message: z.string().describe('Explanation for people; may change between versions'),
    details: z
      .unknown()
      .optional()
      .describe('Structured details, e.g. `[{path, message}]` for validation errors'),
    request_id: z.string().describe('Identifies the request in the broker logs'),
  })
  .meta({ id: 'Error' });

type Status = 400 | 401 | 403 | 404 | 409 | 412 | 413 | 422 | 429 | 503;

/** Error responses for the OpenAPI document; authentication errors are added for non-public routes. */
export function errorResponses<const S extends Status>(
  ...statuses: S[]
): Record<S | 401 | 403, typeof errorSchema> {
  const out = {} as Record<S | 401 | 403, typeof errorSchema>;
  for (const status of [...statuses, 401, 403] as (S | 401 | 403)[]) out[status] = errorSchema;
  return out;
}

export const publicErrorResponses = <const S extends Status>(...statuses: S[]) => {
  const out = {} as Record<S, typeof errorSchema>;
  for (const status of statuses) out[status] = errorSchema;
  return out;
};

/** Identifiers the broker generates (UUIDs), validated at the edge so bad ids never reach SQL. */
export const uuidParam = z.uuid().describe('Identifier assigned by the broker');

export const isoTimestamp = z.iso.datetime({ offset: true }).describe('RFC 3339 timestamp');
