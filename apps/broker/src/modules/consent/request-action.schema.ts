import * as z from 'zod';

/** The original's `action`: a caller's label, recorded in the audit event (REST and gRPC alike). */
export const requestAction = z
  .string()
  .max(256)
  // The C0 and C1 ranges spelled out (what \p{Cc} means), so that tools reading the OpenAPI
  // pattern with other regex engines (Python's, in the fuzzing step) can use it too.
  // biome-ignore lint/suspicious/noControlCharactersInRegex: refusing them is the point
  .regex(/^[^\u0000-\u001f\u007f-\u009f]*$/, 'no control characters')
  .describe("A caller's label for the request (the original's `action`); recorded in the audit event");
